"""Expert tools: a torch runtime, built-in experts that need no downloaded weights, checkpoint loading.

- ``tools.py``: the tools offered to models (``tissue_map``, ``nuclei_morphometry``,
  ``stain_summary``, ``patch_classifier``); ``model_tools.py``: ``segment`` and ``zero_shot``.
- ``runtime.py``: :func:`run_patches` tiles a region (or all the tissue) into patches at a model's
  mpp and runs them in batches on the best device with a reader thread pool.
- ``segment.py`` / ``decoders.py``: segmentation models tiled with overlap, stitched, decoded to
  nuclei (HoVer-Net style) and measured; ``zeroshot.py``: CLIP / SigLIP through transformers.
- ``cards.py`` / ``loading.py`` / ``builders.py`` / ``cpuform.py`` / ``catalog.py``: model cards,
  TorchScript / state_dict / ONNX loaders, architectures (``archs.py``, timm-named ViTs in
  ``vit.py``), the CPU-form choice, and the user's registry (``$SLIDESCOUT_HOME/experts.json``);
  ``named.py``: ready cards for published models (``experts catalog``); ``hub.py``: downloads.
- ``nuclei.py``, ``tissue.py``, ``stain.py``: the weight-free experts.
- Whole slides: ``features.py`` (tile features to HDF5, as CLAM/TRIDENT write them, and the cache
  the tools read), ``slidehead.py`` (attention-MIL / linear slide heads, their training and the
  ``slide_classifier`` tool: one module per expert kind), ``wholeslide.py`` (segmentation in tiles),
  ``geojson.py`` (QuPath exports), ``stainnorm.py`` (Macenko, Vahadane, Reinhard),
  ``checks.py`` (a card against its checkpoint), ``results.py`` (what a run returns),
  ``optional.py`` (a broken torchvision named in one line).
- ``kinds.py``: the expert-kind registry (what a card's ``output`` means; entry points
  ``slidescout.expert_kinds``).

Names are imported lazily, so ``import slidescout.tools.experts`` never imports torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Card": "cards",
    "ModelCard": "cards",
    "load_card": "cards",
    "check_model": "checks",
    "load_runner": "loading",
    "resolve_device": "loading",
    "ModelPool": "pool",
    "model_pool": "pool",
    "device_lock": "pool",
    "PatchPlan": "tiling",
    "PatchLimitExceeded": "tiling",
    "plan_patches": "tiling",
    "PatchRun": "runtime",
    "RuntimeStats": "runtime",
    "run_patches": "runtime",
    "NucleiStats": "nuclei",
    "segment_nuclei": "nuclei",
    "outline_overlay": "nuclei",
    "find_tissue": "tissue",
    "stain_stats": "stain",
    "EXPERT_KINDS": "kinds",
    "ExpertKind": "kinds",
    "get_kind": "kinds",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
