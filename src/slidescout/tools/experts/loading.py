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
returns a NumPy array ``(N, K)``. :func:`check_model` runs two blank patches through a fresh load
and compares the output width with the card (labels count or embedding size).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
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
    else:
        module = _load_state_dict(card, path)
        module = module.to(device)
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


def _load_state_dict(card: Card, path: Any) -> Any:
    """The card's architecture with the checkpoint's weights. Built-in architectures are built on
    the meta device and take the checkpoint's tensors as they are (no random initialisation, which
    costs seconds for a ViT-g)."""
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
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigError(
            f"model card {card.file.name}: cannot read {path.name} as a state_dict "
            f"({_first_line(exc)})"
        ) from None
    state = _unwrap_state_dict(obj, card)
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
    try:
        module.load_state_dict(state, strict=not on_meta, assign=on_meta)
    except RuntimeError as exc:  # shape mismatches
        msg = " ".join(str(exc).split())
        raise ConfigError(
            f"model card {card.file.name}: the weights in {path.name} do not fit "
            f"architecture {c.architecture!r} ({msg[:300]})"
        ) from None
    if on_meta:
        _materialise_leftovers(module)
    return module


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


@dataclass(frozen=True)
class CheckReport:
    """What :func:`check_model` found."""

    output_width: int
    load_s: float
    forward_s: float


def check_model(
    card: Card, device: str = "cpu", runner: Runner | None = None, progress: Progress | None = None
) -> CheckReport:
    """Load once and run two blank patches; ``ConfigError`` when the output does not fit the card."""
    t0 = time.perf_counter()
    runner = runner or load_runner(card, device, progress)
    t1 = time.perf_counter()
    c = card.card
    blank = np.full((2, c.patch_size, c.patch_size, 3), 230, np.uint8)
    try:
        y = runner(blank)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(
            f"model card {card.file.name}: the model fails on a batch of "
            f"{c.patch_size}×{c.patch_size} RGB patches ({_first_line(exc)}); check "
            "'patch_size' and that the model takes (N, 3, H, W) input"
        ) from None
    t2 = time.perf_counter()
    if c.spatial:
        return _check_maps(card, y, t1 - t0, t2 - t1)
    if c.kind.tool == "zero_shot":
        labels = list(c.labels) or ["tumor", "normal tissue"]
        try:
            probs = runner.classifier(labels)(blank)  # type: ignore[attr-defined]
        except Exception as exc:
            raise ConfigError(
                f"model card {card.file.name}: the text side fails on the prompts "
                f"{c.prompts} ({_first_line(exc)})"
            ) from None
        if probs.shape != (2, len(labels)) or not np.all(np.isfinite(probs)):
            raise ConfigError(
                f"model card {card.file.name}: label probabilities of shape {probs.shape} "
                f"(want (2, {len(labels)})) or not finite"
            )
    if y.ndim != 2 or y.shape[0] != 2:
        raise ConfigError(
            f"model card {card.file.name}: the model returned shape {tuple(y.shape)} for "
            "2 patches; it must return one row of values per patch"
        )
    k = int(y.shape[1])
    if c.kind.returns == "embedding":
        if c.embedding_dim is not None and k != c.embedding_dim:
            raise ConfigError(
                f"model card {card.file.name}: the model outputs {k} values per patch but "
                f"field 'embedding_dim' says {c.embedding_dim}"
            )
    elif k != len(c.labels):
        raise ConfigError(
            f"model card {card.file.name}: the model outputs {k} values per patch but the "
            f"card lists {len(c.labels)} labels ({', '.join(c.labels)}); fix field 'labels'"
        )
    if not np.all(np.isfinite(y)):
        raise ConfigError(
            f"model card {card.file.name}: the model returned NaN or infinite values on "
            "blank patches"
        )
    return CheckReport(k, t1 - t0, t2 - t1)


def _check_maps(card: Card, y: np.ndarray, load_s: float, forward_s: float) -> CheckReport:
    c = card.card
    name = card.file.name
    if y.ndim != 4 or y.shape[0] != 2:
        raise ConfigError(
            f"model card {name}: output '{c.output}' needs maps (N, C, h, w), but the model "
            f"returned shape {tuple(y.shape)} for 2 patches"
        )
    k, h, w = (int(v) for v in y.shape[1:])
    want = c.num_outputs
    if k != want:
        layout = (
            "one channel per label"
            if c.output == "mask"
            else "NP background, NP foreground, H, V, then one type channel per label"
            if c.decoder == "hovernet"
            else f"object probability, then {c.rays} ray distances"
            if c.decoder == "stardist"
            else "one channel of instance ids"
            if c.decoder == "label_map"
            else "background and foreground"
        )
        raise ConfigError(
            f"model card {name}: the model returns {k} channels but the card needs {want} "
            f"({layout})"
        )
    if h != w or h > c.patch_size or (c.patch_size - h) % 2:
        raise ConfigError(
            f"model card {name}: output maps of {h}x{w} for {c.patch_size} px patches; they "
            "must be square, as large as the input, or smaller and centred (an even margin)"
        )
    if h < c.stride:
        raise ConfigError(
            f"model card {name}: output maps of {h} px leave gaps between patches {c.stride} px "
            f"apart; set field 'overlap' to at least {c.patch_size - h}"
        )
    if not np.all(np.isfinite(y)):
        raise ConfigError(
            f"model card {name}: the model returned NaN or infinite values on blank patches"
        )
    return CheckReport(k, load_s, forward_s)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


__all__ = [
    "BUILTIN_ARCHITECTURES",
    "CheckReport",
    "OnnxRunner",
    "Runner",
    "TorchRunner",
    "build_architecture",
    "check_model",
    "optimize_for_cpu",
    "device_kind",
    "load_runner",
    "resolve_device",
]
