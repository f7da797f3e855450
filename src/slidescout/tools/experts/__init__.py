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
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:  # what the names are, for type checkers; at run time they load lazily
    from slidescout.tools.experts.cards import Card, ModelCard, load_card
    from slidescout.tools.experts.checks import check_model
    from slidescout.tools.experts.kinds import EXPERT_KINDS, ExpertKind, get_kind
    from slidescout.tools.experts.loading import load_runner, resolve_device
    from slidescout.tools.experts.nuclei import NucleiStats, outline_overlay, segment_nuclei
    from slidescout.tools.experts.pool import ModelPool, device_lock, model_pool
    from slidescout.tools.experts.runtime import PatchRun, RuntimeStats, run_patches
    from slidescout.tools.experts.stain import stain_stats
    from slidescout.tools.experts.tiling import PatchLimitExceeded, PatchPlan, plan_patches
    from slidescout.tools.experts.tissue import find_tissue

# spelled out for type checkers; a test keeps it equal to the keys of _LAZY
__all__ = [
    "Card",
    "EXPERT_KINDS",
    "ExpertKind",
    "ModelCard",
    "ModelPool",
    "NucleiStats",
    "PatchLimitExceeded",
    "PatchPlan",
    "PatchRun",
    "RuntimeStats",
    "check_model",
    "device_lock",
    "find_tissue",
    "get_kind",
    "load_card",
    "load_runner",
    "model_pool",
    "outline_overlay",
    "plan_patches",
    "resolve_device",
    "run_patches",
    "segment_nuclei",
    "stain_stats",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
