"""Pick the fastest CPU form of a torch module, quickly, and remember the choice per checkpoint.

Candidates: the module in channels-last (``eager``); its frozen TorchScript graph, batch norms
folded into convolutions, in channels-last (``frozen``); that graph optimised for inference with
oneDNN, on NCHW (``optimized``). A candidate that cannot be built or whose outputs differ from the
module's is dropped. The rest are timed on one small batch: the correctness check is each one's
warm-up, then one timed call (two when a call is under 0.25 s) of one patch, timed in CPU seconds
(wall time on a machine other jobs load ranks the forms at random), so the choice costs a
few forward passes, not dozens. Modules without batch norms (ViTs) skip the choice: freezing has
nothing to fold there, and scripting and freezing a large transformer costs a minute and a second
copy of its weights (on 2 cores, 61 s of an 85 s `experts add` of a ViT-L).

The winner is stored in ``$SLIDESCOUT_HOME/cpu_forms.json`` under the checkpoint's key (card,
weights size and mtime, torch version, core count); the next load builds only that form.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from slidescout.core.home import slidescout_home

FORMS = ("eager", "frozen", "optimized")
TIME_BATCH = 1
_LOCK = threading.Lock()

Progress = Callable[[str], None]


def _cache_file() -> Path:
    return slidescout_home() / "cpu_forms.json"


def _cpus() -> int:
    return (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    )


def run_threads() -> int:
    """Torch threads the runtime's CPU path uses: the cores its reader threads leave free (one
    reader per 4 cores, at least one; ``SLIDESCOUT_TORCH_THREADS`` overrides), as in
    ``runtime._leave_cores_for_readers``."""
    cpus = _cpus()
    env = int(os.environ.get("SLIDESCOUT_TORCH_THREADS", "0") or 0)
    return env or max(1, cpus - max(1, min(8, cpus // 4)))


def cache_key(card_key: str) -> str:
    import hashlib

    import torch

    raw = f"{card_key}|torch {torch.__version__}|{_cpus()} cpus|{run_threads()} threads"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def cached_form(key: str) -> str | None:
    try:
        data = json.loads(_cache_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    form = data.get(key) if isinstance(data, dict) else None
    return form if form in FORMS else None


def remember_form(key: str, form: str) -> None:
    """Store the choice (atomic write; a failure only loses the cache)."""
    path = _cache_file()
    with _LOCK:
        try:
            data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
            data = data if isinstance(data, dict) else {}
            data[key] = form
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".cpu_forms-", dir=path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=1, sort_keys=True)
            os.replace(tmp, path)
        except (OSError, ValueError):
            pass


def _first(y: Any) -> Any:
    if isinstance(y, (tuple, list)):
        return y[0]
    if isinstance(y, dict):
        return next(iter(y.values()))
    return y


def _graph(module: Any, size: int) -> Any:
    import torch

    if isinstance(module, torch.jit.ScriptModule):
        return module
    try:
        return torch.jit.script(module)
    except Exception:  # noqa: BLE001 - many modules are not scriptable; tracing works for CNNs
        with warnings.catch_warnings():  # shape checks frozen at the card's patch size
            warnings.simplefilter("ignore")
            return torch.jit.trace(module, torch.rand(2, 3, size, size), check_trace=False)


def foldable(module: Any) -> bool:
    """Whether freezing can fold anything: the module has batch norms (after convolutions). A
    transformer has none (linear layers and layer norms, already oneDNN GEMMs in eager mode), and
    scripting and freezing a 300M-parameter ViT costs a minute and a second copy of its weights,
    so such modules skip the choice and run eager."""
    for m in module.modules():
        name = str(getattr(m, "original_name", "") or type(m).__name__)
        if "BatchNorm" in name:
            return True
    return False


def build_form(module: Any, form: str, size: int, graph: Any = None) -> tuple[Any, bool]:
    """``module`` in one of :data:`FORMS`, and whether it wants channels-last input (``graph``:
    its TorchScript graph when already made)."""
    import torch

    if form == "eager":
        try:
            return module.to(memory_format=torch.channels_last), True
        except Exception:  # noqa: BLE001
            return module, False
    graph = (graph if graph is not None else _graph(module, size)).eval()
    if form == "frozen":
        return torch.jit.freeze(graph), True
    return torch.jit.optimize_for_inference(torch.jit.freeze(graph)), False


def optimize_for_cpu(
    module: Any, patch_size: int, *, key: str | None = None, progress: Progress | None = None
) -> tuple[Any, bool]:
    """The fastest CPU form of ``module`` and whether it wants channels-last input (see the module
    docstring). With ``key``, a remembered choice is built directly and a new one is remembered."""
    import torch

    say = progress or (lambda _msg: None)
    size = min(int(patch_size), 512)
    if not foldable(module):
        say("CPU form: eager (no batch norm to fold; frozen forms not tried)")
        return build_form(module, "eager", size)
    if key is not None and (form := cached_form(key)) is not None:
        try:
            with torch.no_grad():
                built = build_form(module, form, size)
            say(f"CPU form: {form} (remembered for this checkpoint)")
            return built
        except Exception:  # noqa: BLE001 - rebuild the choice below
            pass
    x = torch.rand(TIME_BATCH, 3, size, size)
    threads = torch.get_num_threads()
    torch.set_num_threads(
        min(threads, run_threads())
    )  # time the forms as the runtime will run them
    try:
        return _choose(module, x, size, key, say)
    finally:
        torch.set_num_threads(threads)


def _choose(module: Any, x: Any, size: int, key: str | None, say: Progress) -> tuple[Any, bool]:
    import torch

    with torch.inference_mode(False), torch.no_grad():
        t0 = time.process_time()
        want = _first(module(x)).float()
        eager_s = time.process_time() - t0
        candidates: list[tuple[str, Any, bool]] = []
        graph = None
        for form in FORMS:
            try:
                if form != "eager" and graph is None:
                    graph = _graph(module, size)
                m, cl = build_form(module, form, size, graph)
            except Exception:  # noqa: BLE001 - optimisation is best effort
                continue
            candidates.append((form, m, cl))
        timed: list[tuple[float, str, Any, bool]] = []
        for form, m, cl in candidates:
            xin = x.contiguous(memory_format=torch.channels_last) if cl else x
            try:
                if form != "eager" or cl:  # eager in NCHW is the reference, already run once
                    got = _first(m(xin))  # also the warm-up
                    if not (
                        isinstance(got, torch.Tensor)
                        and got.shape == want.shape
                        and torch.allclose(got.float(), want, rtol=1e-3, atol=1e-3)
                    ):
                        continue
                reps = 2 if eager_s < 0.25 else 1
                best = float("inf")
                for _ in range(reps):
                    t0 = time.process_time()
                    m(xin)
                    best = min(best, time.process_time() - t0)
            except Exception:  # noqa: BLE001
                continue
            timed.append((best, form, m, cl))
    if not timed:
        say("CPU form: eager (no faster form passed the output check)")
        return candidates[0][1:] if candidates else (module, False)  # type: ignore[return-value]
    timed.sort(key=lambda t: t[0])
    say(
        "CPU form: "
        + ", ".join(f"{f} {1000 * s / TIME_BATCH:.0f} ms/patch" for s, f, _, _ in timed)
        + f" -> {timed[0][1]}"
    )
    if key is not None:
        remember_form(key, timed[0][1])
    return timed[0][2], timed[0][3]


__all__ = [
    "FORMS",
    "build_form",
    "cache_key",
    "cached_form",
    "foldable",
    "optimize_for_cpu",
    "remember_form",
    "run_threads",
]
