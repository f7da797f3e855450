"""Load a checkpoint named by a model card and wrap it as a *runner*: uint8 patches in, one row of
float32 values per patch out.

- ``torchscript``: ``torch.jit.load(path, map_location=device)``.
- ``state_dict``: ``torch.load(path, weights_only=True)`` into a built-in architecture
  (``archs.py``) or a timm model (only when timm is installed). Wrappers such as
  ``{"state_dict": ...}`` / ``{"model": ...}`` and ``module.`` prefixes are undone.
- ``onnx``: an ``onnxruntime`` session (CUDA provider when asked for and available), when
  onnxruntime is installed.

A runner normalises on the device (``x / 255``, then the card's mean/std), runs under
``torch.inference_mode`` in channels-last layout, with bf16 autocast on CUDA when enabled, and
returns a NumPy array ``(N, K)``. ``checks.check_model`` runs two blank patches through a fresh
load and compares the output width with the card.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import numpy as np

from slidescout.errors import ConfigError
from slidescout.tools.experts.builders import (
    BUILTIN_ARCHITECTURES,
    build_architecture,
    builtin_architectures,
)
from slidescout.tools.experts.cards import Card
from slidescout.tools.experts.cpuform import Progress, cache_key, optimize_for_cpu
from slidescout.tools.experts.zeroshot import load_zero_shot


class Runner(Protocol):
    """A loaded model on one device."""

    device: str
    card: Card

    def __call__(self, batch: Any) -> np.ndarray:
        """``batch``: uint8 (N, P, P, 3) NumPy array or torch tensor -> float32 (N, K)."""
        ...


# ---------------------------------------------------------------------------------------------
# devices
# ---------------------------------------------------------------------------------------------
def resolve_device(device: str | None = None) -> str:
    """``None``/``""``/``"auto"``: ``cuda`` when torch sees a GPU, else ``cpu``; otherwise the
    device string as given (``cuda`` is checked)."""
    d = (device or "auto").strip().lower()
    if d in ("auto", "best"):
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    if d.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {device!r} was requested but torch sees no CUDA GPU; "
                "use device 'cpu' or 'auto'"
            )
        return "cuda" if d == "cuda:0" else d
    if d in ("cpu", "mps") or d.startswith("xpu"):
        return d
    raise ConfigError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")


def device_kind(device: str) -> str:
    """Name of the limiter a device's work runs under: ``gpu`` for accelerators, else ``cpu``."""
    return "cpu" if device == "cpu" else "gpu"


# ---------------------------------------------------------------------------------------------
# torch
# ---------------------------------------------------------------------------------------------
def _unwrap_state_dict(obj: Any, card: Card) -> dict[str, Any]:
    import torch

    for key in ("state_dict", "model", "model_state_dict", "net", "weights"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    if (
        not isinstance(obj, dict)
        or not obj
        or not all(isinstance(v, torch.Tensor) for v in obj.values())
    ):
        raise ConfigError(
            f"model card {card.file.name}: {card.weights.name} is not a state_dict "
            "(a mapping of parameter names to tensors); for a whole saved model use "
            "format 'torchscript'"
        )
    for prefix in ("module.", "model.", "_orig_mod."):
        if all(k.startswith(prefix) for k in obj):
            obj = {k[len(prefix) :]: v for k, v in obj.items()}
    return obj


class HostNormalizer:
    """The card's normalisation done on the host, one patch at a time, into planar float32.

    ``prepare(tile, out)`` writes ``(tile / 255 - mean) / std`` of a uint8 (P, P, 3) tile into a
    float32 (3, P, P) slice. Per patch and per channel this stays in cache and costs a fraction of
    a batched tensor op; the runtime's reader threads call it, off the model's thread.
    """

    def _init_host(self, card: Card) -> None:
        c = card.card
        std = np.asarray(c.std, np.float32)
        self._host_scale = (1.0 / (255.0 * std)).astype(np.float32)
        self._host_shift = (-np.asarray(c.mean, np.float32) / std).astype(np.float32)

    def prepare(self, tile: np.ndarray, out: np.ndarray) -> None:
        for ch in range(3):
            np.multiply(tile[..., ch], self._host_scale[ch], out=out[ch])
            out[ch] += self._host_shift[ch]

    def prepared(self, batch: np.ndarray) -> np.ndarray:
        """A whole uint8 (N, P, P, 3) batch prepared (N, 3, P, P)."""
        out = np.empty((batch.shape[0], 3, batch.shape[1], batch.shape[2]), np.float32)
        for i in range(batch.shape[0]):
            self.prepare(batch[i], out[i])
        return out


class TorchRunner(HostNormalizer):
    """A torch module on one device.

    Takes uint8 patches (N, P, P, 3) (normalised on the device: one multiply-add) or, from the
    runtime's CPU path, float32 (N, 3, P, P) already normalised by :meth:`prepare`.
    """

    def __init__(
        self,
        module: Any,
        card: Card,
        device: str,
        *,
        autocast: bool | None = None,
        channels_last: bool = True,
    ) -> None:
        import torch

        self.card = card
        self.device = device
        self.module = module
        self.channels_last = channels_last
        self.autocast = device.startswith("cuda") if autocast is None else autocast
        if self.autocast and device.startswith("cuda") and not torch.cuda.is_bf16_supported():
            self.autocast = False
        c = card.card
        std = torch.tensor(c.std, dtype=torch.float32)
        mean = torch.tensor(c.mean, dtype=torch.float32)
        self._scale = (1.0 / (255.0 * std)).view(1, 3, 1, 1).to(device)
        self._shift = (-mean / std).view(1, 3, 1, 1).to(device)
        self._init_host(card)
        self.host_prepare = device == "cpu"  # the runtime hands over prepared float batches
        self.spatial = card.card.spatial
        params = [p for p in getattr(module, "parameters", list)() if p.is_floating_point()]
        self.dtype = params[0].dtype if params else torch.float32

    def __call__(self, batch: Any) -> np.ndarray:
        import torch

        x = (
            batch
            if isinstance(batch, torch.Tensor)
            else torch.from_numpy(np.ascontiguousarray(batch))
        )
        with torch.inference_mode():
            if (
                x.dtype == torch.float32 and x.ndim == 4 and x.shape[1] == 3
            ):  # prepared (N, 3, P, P)
                x = x.to(self.device, non_blocking=True)
            elif x.ndim == 4 and x.shape[-1] == 3:
                x = x.to(self.device, non_blocking=True).permute(
                    0, 3, 1, 2
                )  # channels-last strides
                x = x.float() * self._scale + self._shift
            else:
                raise ValueError(f"expected uint8 patches (N, H, W, 3), got shape {tuple(x.shape)}")
            if x.dtype != self.dtype and not self.autocast:
                x = x.to(self.dtype)  # bf16 weights on a GPU take bf16 input
            x = x.contiguous(
                memory_format=torch.channels_last if self.channels_last else torch.contiguous_format
            )
            if self.autocast:
                with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
                    y = self.module(x)
            else:
                y = self.module(x)
            if self.spatial:
                return maps_of(y).cpu().numpy()
            y = _first(y)
            y = y.float().reshape(y.shape[0], -1)
            return y.cpu().numpy()


def weights_dtype(device: str, dtypes: set[Any], bf16_ok: bool | None = None) -> Any:
    """The dtype a checkpoint's floating tensors (``dtypes``) are run in on ``device``: float32 on
    the CPU (half-precision kernels are slow or missing there); on a GPU, a half-precision
    checkpoint (fp16 or bf16) runs in bf16 where the GPU supports it (``bf16_ok``; asked of
    torch when None), else in float32."""
    import torch

    half = {torch.float16, torch.bfloat16}
    if not device.startswith("cuda") or not (set(dtypes) & half):
        return torch.float32
    if bf16_ok is None:
        bf16_ok = bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    return torch.bfloat16 if bf16_ok else torch.float32


def _floating_dtypes(tensors: Any) -> set[Any]:
    return {t.dtype for t in tensors if t.is_floating_point()}


def _load_torch(
    card: Card, device: str, progress: Progress | None = None, **kw: Any
) -> TorchRunner:
    import torch

    say = progress or (lambda _msg: None)
    path = card.check_weights()
    c = card.card
    t0 = time.perf_counter()
    if c.format == "torchscript":
        try:
            module = torch.jit.load(str(path), map_location=device)
        except Exception as exc:
            raise ConfigError(
                f"model card {card.file.name}: {path.name} is not a TorchScript file "
                f"({_first_line(exc)}); save it with torch.jit.save(torch.jit.script(m)) "
                "or torch.jit.trace, or use format 'state_dict'"
            ) from None
        dtype = weights_dtype(device, _floating_dtypes(module.parameters()))
    else:
        module, dtype = _load_state_dict(card, path, device)
        module = module.to(device)
    if _floating_dtypes(module.parameters()) - {dtype}:
        module = module.to(dtype)
        say(f"weights cast to {str(dtype).removeprefix('torch.')} for {device}")
    if dtype != torch.float32:
        kw["autocast"] = False  # already in bf16: the runner feeds bf16 input
    module.eval()
    say(
        f"loaded {path.name} ({path.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t0:.1f} s"
    )
    optimize = kw.pop("optimize", None)
    if device == "cpu" and optimize is not False and kw.get("channels_last", True):
        module, kw["channels_last"] = optimize_for_cpu(
            module, c.patch_size, key=cache_key(card.key()), progress=say
        )
        return TorchRunner(module, card, device, **kw)
    if kw.get("channels_last", True):
        try:
            module = module.to(memory_format=torch.channels_last)
        except Exception:  # noqa: BLE001 - some scripted modules refuse; NCHW still works
            kw["channels_last"] = False
    return TorchRunner(module, card, device, **kw)


def _load_state_dict(card: Card, path: Any, device: str = "cpu") -> tuple[Any, Any]:
    """The card's architecture with the checkpoint's weights, and the dtype it runs in. Built-in
    architectures are built on the meta device and take the checkpoint's tensors (no random
    initialisation, which costs seconds for a ViT-g); half-precision tensors are cast to the dtype
    :func:`weights_dtype` chooses for ``device``."""
    import torch

    c = card.card
    if _is_torchscript_archive(path):
        raise ConfigError(
            f"model card {card.file.name}: {path.name} is a TorchScript file, not a "
            "state_dict; set format: torchscript"
        )
    arch = (c.architecture or "").strip()
    on_meta = arch in builtin_architectures()
    if on_meta:
        with torch.device("meta"):
            module = build_architecture(card)
    else:
        module = build_architecture(card)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj = load_file(str(path), device="cpu")
        else:
            obj = _torch_load(path)
    except Exception as exc:
        raise ConfigError(
            f"model card {card.file.name}: cannot read {path.name} as a state_dict "
            f"({_first_line(exc)})"
        ) from None
    state = _unwrap_state_dict(obj, card)
    dtype = weights_dtype(device, _floating_dtypes(state.values()))
    state = {
        k: (v.to(dtype) if v.is_floating_point() and v.dtype != dtype else v)
        for k, v in state.items()
    }
    missing, unexpected = _key_mismatch(module, state)
    if missing or unexpected:
        detail = []
        if missing:
            detail.append(f"missing {len(missing)} (e.g. {', '.join(missing[:3])})")
        if unexpected:
            detail.append(f"unexpected {len(unexpected)} (e.g. {', '.join(unexpected[:3])})")
        raise ConfigError(
            f"model card {card.file.name}: the weights in {path.name} do not fit "
            f"architecture {c.architecture!r}: {'; '.join(detail)} parameter names"
        )
    _check_shapes(card, path, module, state)
    try:
        module.load_state_dict(state, strict=not on_meta, assign=on_meta)
    except RuntimeError as exc:  # anything _check_shapes did not foresee
        msg = " ".join(str(exc).split())
        raise ConfigError(
            f"model card {card.file.name}: the weights in {path.name} do not fit "
            f"architecture {c.architecture!r} ({msg[:300]})"
        ) from None
    if on_meta:
        _materialise_leftovers(module)
    return module, dtype


def _check_shapes(card: Card, path: Any, module: Any, state: dict[str, Any]) -> None:
    """A ConfigError naming the card field to fix when a tensor's shape differs: the output layer's
    width against the labels ("fix field 'labels'"), anything else against the architecture."""
    c = card.card
    want = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    bad = [
        (k, want[k], tuple(v.shape))
        for k, v in state.items()
        if k in want and want[k] != tuple(v.shape)
    ]
    if not bad:
        return
    n_out = c.head_outputs
    head = [(k, w, g) for k, w, g in bad if n_out and w[:1] == (n_out,) and g[1:] == w[1:] and g]
    if len(head) == len(bad):
        k, _, got = head[0]
        layer = k.rsplit(".", 1)[0]
        raise ConfigError(
            f"model card {card.file.name}: the checkpoint's output layer ({layer}) gives "
            f"{got[0]} values per patch but the card lists {len(c.labels)} labels "
            f"({', '.join(c.labels)}); fix field 'labels'"
        )
    k, w, g = bad[0]
    raise ConfigError(
        f"model card {card.file.name}: the weights in {path.name} do not fit architecture "
        f"{c.architecture!r}: {k} is {list(g)} in the checkpoint but {list(w)} in the model "
        f"({len(bad)} tensor{'s' if len(bad) != 1 else ''} differ); check fields "
        "'architecture' and 'architecture_args'"
    )


def _torch_load(path: Any) -> Any:
    """``torch.load`` memory-mapped (a 1 GB checkpoint is not copied into memory first), falling
    back to a plain read for files in the legacy (non-zip) format."""
    import torch

    try:
        return torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as exc:
        if "mmap" not in str(exc) and "zip" not in str(exc):
            raise
    return torch.load(str(path), map_location="cpu", weights_only=True)


def _materialise_leftovers(module: Any) -> None:
    """Buffers a checkpoint may leave out (BatchNorm's ``num_batches_tracked``) get their defaults."""
    import torch

    for sub in module.modules():
        for name, buf in list(sub.named_buffers(recurse=False)):
            if buf is not None and buf.is_meta:
                sub.register_buffer(name, torch.zeros(buf.shape, dtype=buf.dtype))
        for name, par in list(sub.named_parameters(recurse=False)):
            if par.is_meta:
                raise ConfigError(
                    f"parameter {name} of {type(sub).__name__} has no weights in the checkpoint"
                )


MAP_KEYS = ("np", "nuclei", "hv", "tp", "type")


def maps_of(y: Any) -> Any:
    """A segmentation model's output as one float (N, C, h, w) tensor: a tensor as it is; a tuple or
    list, or a dict (``np``, ``hv``, ``tp`` first, as HoVer-Net names them), concatenated on the
    channels; (N, h, w) parts get a channel axis."""
    import torch

    if isinstance(y, dict):
        keys = sorted(y, key=lambda k: MAP_KEYS.index(k) if k in MAP_KEYS else len(MAP_KEYS))
        parts = [y[k] for k in keys]
    elif isinstance(y, (tuple, list)):
        parts = list(y)
    else:
        parts = [y]
    parts = [p.unsqueeze(1) if p.ndim == 3 else p for p in parts]
    return (parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)).float()


def _first(y: Any) -> Any:
    if isinstance(y, (tuple, list)):
        return y[0]
    if isinstance(y, dict):
        return next(iter(y.values()))
    return y


def _is_torchscript_archive(path: Any) -> bool:
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("constants.pkl") or "/code/" in n for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _key_mismatch(module: Any, state: dict[str, Any]) -> tuple[list[str], list[str]]:
    expected = set(module.state_dict())
    given = set(state)
    skip = ("num_batches_tracked",)
    missing = sorted(k for k in expected - given if not k.endswith(skip))
    unexpected = sorted(k for k in given - expected if not k.endswith(skip))
    return missing, unexpected


# ---------------------------------------------------------------------------------------------
# ONNX
# ---------------------------------------------------------------------------------------------
class OnnxRunner(HostNormalizer):
    """An onnxruntime session on NCHW float32 input, normalised on the host."""

    host_prepare = True

    def __init__(self, session: Any, card: Card, device: str) -> None:
        self.session = session
        self.card = card
        self.device = device
        self.input_name = session.get_inputs()[0].name
        self._init_host(card)

    def __call__(self, batch: Any) -> np.ndarray:
        arr = np.asarray(
            batch.numpy()
            if hasattr(batch, "numpy") and not isinstance(batch, np.ndarray)
            else batch
        )
        x = arr if arr.dtype == np.float32 and arr.shape[1] == 3 else self.prepared(arr)
        outs = self.session.run(None, {self.input_name: np.ascontiguousarray(x)})
        if self.card.card.spatial:
            parts = [np.asarray(o, np.float32) for o in outs]
            return np.concatenate([o[:, None] if o.ndim == 3 else o for o in parts], axis=1)
        y = outs[0]
        return np.asarray(y, np.float32).reshape(y.shape[0], -1)


def _load_onnx(card: Card, device: str) -> OnnxRunner:
    path = card.check_weights()
    try:
        import onnxruntime as ort
    except ImportError:
        raise ConfigError(
            f"model card {card.file.name}: format 'onnx' needs onnxruntime, which is not "
            "installed (pip install onnxruntime, or onnxruntime-gpu)"
        ) from None
    available = ort.get_available_providers()
    providers = ["CPUExecutionProvider"]
    if device.startswith("cuda") and "CUDAExecutionProvider" in available:
        providers.insert(0, "CUDAExecutionProvider")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as exc:
        raise ConfigError(
            f"model card {card.file.name}: onnxruntime cannot load {path.name} ({_first_line(exc)})"
        ) from None
    used = "cuda" if "CUDAExecutionProvider" in session.get_providers() else "cpu"
    return OnnxRunner(session, card, used)


# ---------------------------------------------------------------------------------------------
# entry points
# ---------------------------------------------------------------------------------------------
def load_runner(
    card: Card, device: str = "cpu", progress: Progress | None = None, **kw: Any
) -> Runner:
    """Load the card's checkpoint on ``device`` (a fresh instance; see :class:`ModelPool`);
    ``progress(message)`` hears each step."""
    if card.card.format == "onnx":
        return _load_onnx(card, device)
    if card.card.format == "transformers":
        return load_zero_shot(card, device)
    return _load_torch(card, device, progress, **kw)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


__all__ = [
    "BUILTIN_ARCHITECTURES",
    "OnnxRunner",
    "Runner",
    "TorchRunner",
    "build_architecture",
    "optimize_for_cpu",
    "device_kind",
    "load_runner",
    "resolve_device",
    "weights_dtype",
]
