"""Slide-level heads: an attention-MIL (gated ABMIL, Ilse et al., ICML 2018, the attention
network CLAM uses) or a linear head over one slide's cached tile features; class probabilities for
the slide and an attention value per patch, which the ``slide_classifier`` tool paints as a heatmap
in level-0 coordinates.

    name: tcga-subtype                # a card (``slidescout experts train-head`` writes it)
    format: state_dict
    path: tcga-subtype.pt
    architecture: abmil               # or linear (mean of the features, one linear layer)
    architecture_args: {in_dim: 1024, hidden: 256, attention: 128, dropout: 0.25}
    output: slide
    encoder: uni                      # the registered tile encoder whose features it reads
    labels: [LUAD, LUSC]
    mpp: 0.5                          # the encoder's
    patch_size: 224

This module is the kind's one registration point: the head's modules, loading, training
(``train_head``) and the tool.
"""

from __future__ import annotations

import csv
import functools
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio.to_thread
import numpy as np

from slidescout.errors import ConfigError, ToolError
from slidescout.slides.factory import SLIDE_SUFFIXES
from slidescout.tools.base import ToolImage, ToolResult, tool
from slidescout.tools.context import ToolContext
from slidescout.tools.experts import catalog
from slidescout.tools.experts import features as feats
from slidescout.tools.experts.cards import Card, card_from_dict
from slidescout.tools.experts.runtime import PatchRun, RuntimeStats
from slidescout.tools.experts.tools import MODEL_TOOL_TIMEOUT_S, _expert_card

KINDS = ("abmil", "linear")
ON_THE_FLY_PATCHES = 2000  # a tool embeds a slide itself only up to this many tissue patches


def build_head(kind: str, in_dim: int, n_classes: int, **args: Any) -> Any:
    """The untrained head: ``forward(features (N, D)) -> (logits (K,), attention (N,))``."""
    import torch
    from torch import nn

    class GatedABMIL(nn.Module):
        def __init__(self, hidden: int = 256, attention: int = 128, dropout: float = 0.25) -> None:
            super().__init__()
            self.fc = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout))
            self.attn_a = nn.Sequential(
                nn.Linear(hidden, attention), nn.Tanh(), nn.Dropout(dropout)
            )
            self.attn_b = nn.Sequential(
                nn.Linear(hidden, attention), nn.Sigmoid(), nn.Dropout(dropout)
            )
            self.attn_w = nn.Linear(attention, 1)
            self.classifier = nn.Linear(hidden, n_classes)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            h = self.fc(x)
            a = self.attn_w(self.attn_a(h) * self.attn_b(h)).squeeze(-1)
            att = torch.softmax(a, dim=0)
            return self.classifier(att @ h), att

    class LinearHead(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.classifier = nn.Linear(in_dim, n_classes)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            logits = self.classifier(x.mean(dim=0))
            per_patch = self.classifier(x)[:, int(logits.argmax())]  # what each patch pushes
            return logits, torch.softmax(per_patch, dim=0)

    if kind == "abmil":
        return GatedABMIL(**args)
    if kind == "linear":
        return LinearHead()
    raise ConfigError(f"unknown slide head {kind!r}; use {' or '.join(KINDS)}")


@dataclass
class HeadRunner:
    """A loaded head: features (N, D) -> class probabilities (K,) and attention (N,)."""

    card: Card
    module: Any
    device: str = "cpu"

    def __call__(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(features, np.float32))
        with torch.inference_mode():
            logits, att = self.module(x)
            probs = torch.softmax(logits.float(), dim=-1)
        return probs.numpy(), att.float().numpy()


def load_head(card: Card, device: str = "cpu", **_: Any) -> HeadRunner:
    """Load a slide head's weights (a ``ConfigError`` names what does not fit)."""
    import torch

    c = card.card
    path = card.check_weights()
    args = dict(c.architecture_args)
    in_dim = int(args.pop("in_dim", 0) or 0)
    if c.architecture not in KINDS or in_dim < 1:
        raise ConfigError(
            f"model card {card.file.name}: a slide head needs architecture abmil or linear and "
            "architecture_args.in_dim (the width of the encoder's features)"
        )
    try:
        module = build_head(c.architecture, in_dim, len(c.labels), **args)
        state = torch.load(str(path), map_location="cpu", weights_only=True)
        module.load_state_dict({k: v.float() for k, v in state.items()})
    except (RuntimeError, TypeError, OSError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ConfigError(
            f"model card {card.file.name}: the weights in {path.name} do not fit a "
            f"{c.architecture} head with in_dim {in_dim} and {len(c.labels)} labels ({first})"
        ) from None
    return HeadRunner(card, module.eval())


_HEADS: dict[str, HeadRunner] = {}
_HEADS_LOCK = threading.Lock()


def head_runner(card: Card) -> HeadRunner:
    """One loaded instance per head (keyed by its card and weights), loaded on first use."""
    key = card.key()
    with _HEADS_LOCK:
        if key not in _HEADS:
            _HEADS[key] = load_head(card)
        return _HEADS[key]


def check_head(card: Card) -> int:
    """Load the head and run it on random features; the number of labels (ConfigError if unfit)."""
    runner = load_head(card)
    dim = int(card.card.architecture_args.get("in_dim", 0))
    probs, att = runner(np.random.default_rng(0).normal(size=(8, dim)).astype(np.float32))
    if probs.shape != (len(card.card.labels),) or att.shape != (8,):
        raise ConfigError(f"model card {card.file.name}: the head returns {probs.shape}")
    return int(probs.shape[0])


# ---------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------
@dataclass
class HeadReport:
    card: Card
    kind: str
    encoder: str
    labels: list[str]
    train: dict[str, Any]
    val: dict[str, Any]
    split: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.card.name,
            "card": str(self.card.file),
            "kind": self.kind,
            "encoder": self.encoder,
            "labels": self.labels,
            "train": self.train,
            "held_out": self.val,
            "split": self.split,
        }


def read_labels(path: Path) -> dict[str, str]:
    """``{slide stem: label}`` from a CSV with columns ``slide`` and ``label``."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError as exc:
        raise ConfigError(f"labels CSV {path}: {exc.strerror or exc}") from None
    if not rows or not {"slide", "label"} <= set(rows[0]):
        raise ConfigError(f"labels CSV {path}: needs a header with columns slide,label")
    out: dict[str, str] = {}
    for r in rows:
        slide, label = (r.get("slide") or "").strip(), (r.get("label") or "").strip()
        if slide and label:
            out[Path(slide).stem if Path(slide).suffix in SLIDE_SUFFIXES else slide] = label
    return out


def split_slides(labels: dict[str, str], val_fraction: float, seed: int) -> tuple[list, list]:
    """A stratified split: per class, ``val_fraction`` of the slides held out (at least one, and
    at least one left to train on)."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for cls in sorted(set(labels.values())):
        names = sorted(s for s, lab in labels.items() if lab == cls)
        if len(names) < 2:
            raise ConfigError(f"class {cls!r} has {len(names)} slide; each class needs two or more")
        rng.shuffle(names)
        k = min(len(names) - 1, max(1, round(len(names) * val_fraction)))
        val += names[:k]
        train += names[k:]
    return sorted(train), sorted(val)


def metrics(y: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
    """Accuracy, balanced accuracy and (one-vs-rest, macro) AUC."""
    pred = probs.argmax(axis=1)
    recalls = [float((pred[y == k] == k).mean()) for k in np.unique(y)]
    aucs = []
    for k in range(probs.shape[1]):
        pos, neg = probs[y == k, k], probs[y != k, k]
        if len(pos) and len(neg):
            aucs.append(
                float(((pos[:, None] > neg[None]) + 0.5 * (pos[:, None] == neg[None])).mean())
            )
    return {
        "n": int(len(y)),
        "accuracy": float((pred == y).mean()) if len(y) else 0.0,
        "balanced_accuracy": float(np.mean(recalls)) if recalls else 0.0,
        "auc": float(np.mean(aucs)) if aucs else None,
    }


def train_head(
    features_dir: Path,
    labels_csv: Path,
    out: Path,
    *,
    name: str | None = None,
    kind: str = "abmil",
    val_fraction: float = 0.3,
    epochs: int = 60,
    lr: float = 1e-3,
    seed: int = 0,
) -> HeadReport:
    """Fit a head on the features in ``features_dir`` for the slides of ``labels_csv``; writes
    ``out/<name>.pt`` and ``out/<name>.yaml`` and returns the train and held-out metrics."""
    import torch
    import yaml

    if kind not in KINDS:
        raise ConfigError(f"--kind: use {' or '.join(KINDS)} (got {kind!r})")
    wanted = read_labels(labels_csv)
    bags, encoders = _read_bags(features_dir, wanted)
    labels = {s: lab for s, lab in wanted.items() if s in bags}
    if len(labels) < 4:
        raise ConfigError(
            f"only {len(labels)} of the {len(wanted)} slides in {labels_csv.name} have features "
            f"in {features_dir} (run `slidescout experts embed ENCODER SLIDES -o {features_dir}`)"
        )
    if len(encoders) != 1 or not next(iter(encoders)):
        raise ConfigError(f"the features in {features_dir} come from several encoders: {encoders}")
    encoder = catalog.get(next(iter(encoders)))
    classes = sorted(set(labels.values()))
    if len(classes) < 2:
        raise ConfigError(f"{labels_csv.name}: the slides have one label only ({classes[0]})")
    train, val = split_slides(labels, val_fraction, seed)
    dim = int(next(iter(bags.values())).shape[1])
    y = {s: classes.index(labels[s]) for s in labels}
    module = _fit(kind, dim, len(classes), bags, y, train, epochs=epochs, lr=lr, seed=seed)
    m_train, m_val = _evaluate(module, bags, y, train), _evaluate(module, bags, y, val)
    name = name or out.name.lower()
    out.mkdir(parents=True, exist_ok=True)
    torch.save(module.state_dict(), out / f"{name}.pt")
    args = {"in_dim": dim} | (
        {"hidden": 256, "attention": 128, "dropout": 0.25} if kind == "abmil" else {}
    )
    card = {
        "name": name,
        "format": "state_dict",
        "path": f"{name}.pt",
        "architecture": kind,
        "architecture_args": args,
        "output": "slide",
        "encoder": encoder.name,
        "labels": classes,
        "mpp": encoder.card.mpp,
        "patch_size": encoder.card.patch_size,
        "description": f"{kind} slide head on {encoder.name} features; held-out balanced "
        f"accuracy {m_val['balanced_accuracy']:.3f} on {m_val['n']} slides",
        "source": f"slidescout experts train-head on {len(labels)} slides of {labels_csv.name}",
    }
    card_path = out / f"{name}.yaml"
    card_path.write_text(yaml.safe_dump(card, sort_keys=False), encoding="utf-8")
    c = card_from_dict(card, card_path)
    return HeadReport(
        c, kind, encoder.name, classes, m_train, m_val, {"train": train, "held_out": val}
    )


def _read_bags(
    features_dir: Path, wanted: dict[str, str]
) -> tuple[dict[str, np.ndarray], set[str]]:
    """The non-empty feature bag of each wanted slide found in ``features_dir``, and the
    encoders that made them."""
    bags: dict[str, np.ndarray] = {}
    encoders: set[str] = set()
    for slide in wanted:
        path = features_dir / f"{slide}{feats.SUFFIX}"
        if path.is_file():
            fs = feats.read_features(path)
            if len(fs):
                bags[slide] = fs.features
                encoders.add(str(fs.meta.get("model", "")))
    return bags, encoders


def _fit(
    kind: str,
    dim: int,
    n_classes: int,
    bags: dict[str, np.ndarray],
    y: dict[str, int],
    train: list[str],
    *,
    epochs: int,
    lr: float,
    seed: int,
) -> Any:
    """A fresh head trained with Adam on the training slides, one bag per step; in eval mode."""
    import torch

    torch.manual_seed(seed)
    module = build_head(kind, dim, n_classes)
    opt = torch.optim.Adam(module.parameters(), lr=lr, weight_decay=1e-4)
    rng = np.random.default_rng(seed)
    module.train()
    for _ in range(epochs):
        for s in rng.permutation(train):
            logits, _att = module(torch.from_numpy(bags[s]))
            loss = torch.nn.functional.cross_entropy(logits[None], torch.tensor([y[s]]))
            opt.zero_grad()
            loss.backward()
            opt.step()
    module.eval()
    return module


def _evaluate(
    module: Any, bags: dict[str, np.ndarray], y: dict[str, int], names: list[str]
) -> dict[str, Any]:
    import torch

    with torch.inference_mode():
        probs = np.stack(
            [torch.softmax(module(torch.from_numpy(bags[s]))[0], -1).numpy() for s in names]
        )
    return metrics(np.array([y[s] for s in names]), probs)


# ---------------------------------------------------------------------------------------------
# the tool
# ---------------------------------------------------------------------------------------------
def slide_features(slide: Any, encoder: Card, max_patches: int, cancel: Any = None) -> Any:
    """The slide's cached features of ``encoder``; embedded now (and cached) when the slide has
    at most ``max_patches`` tissue patches, else a ToolError naming the command that caches them."""
    found = feats.find_cached(slide, encoder)
    if found is not None:
        return found, True
    out = feats.cache_folder(encoder.name) / f"{slide.slide_id}{feats.SUFFIX}"
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        feats.embed_slide(slide, encoder, out, max_patches=max_patches, cancel=cancel)
    except ToolError as exc:
        raise ToolError(
            f"no cached {encoder.name} features for this slide, and embedding it now is too "
            f"large for one call ({exc}); cache them first: slidescout experts embed "
            f"{encoder.name} {slide.path} -o FOLDER"
        ) from None
    return feats.read_features(out), False


def _classify_slide(slide: Any, card: Card, max_patches: int, max_side: int, cancel: Any) -> Any:
    encoder = catalog.get(card.card.encoder or "")
    fs, cached = slide_features(slide, encoder, max_patches, cancel)
    if not len(fs):
        return fs, cached, None, None, None
    head = head_runner(card)
    probs, att = head(fs.features)
    plan, keep = fs.plan(slide)
    rank = np.argsort(np.argsort(att, kind="stable"), kind="stable")
    values = ((rank + 1) / len(att)).astype(
        np.float32
    )  # attention as a percentile, as CLAM shows it
    stats = RuntimeStats(patches=len(fs), batches=1, batch_size=len(fs), workers=0, device="cpu")
    run = PatchRun(
        plan=plan,
        outputs=values[keep][:, None],
        output_kind="score",
        labels=["attention"],
        stats=stats,
        model_name=card.name,
        score_range=(0.0, 1.0),
    )
    heat = run.heatmap(slide, "attention", max_side=max_side)
    return fs, cached, probs, att, heat


@tool(timeout_s=MODEL_TOOL_TIMEOUT_S)
async def slide_classifier(model: str, ctx: ToolContext) -> ToolResult:
    """Ask a registered slide-level model (an attention-MIL or linear head trained on a tile
    encoder's features of whole slides, e.g. for cancer type) about the whole slide: class
    probabilities, and a heatmap of the patches its attention weighed most.

    Args:
        model: Name of a registered slide-level head (output 'slide').
    """
    slide = ctx.require_slide()
    card = _expert_card(model)
    if card.card.kind.tool != "slide_classifier":
        raise ToolError(
            f"model {card.name!r} is a {card.card.output} model, not a slide-level head; use "
            f"{'segment' if card.card.spatial else 'patch_classifier'} for it"
        )
    if not slide.mpp:
        raise ToolError(f"this slide's resolution is unknown; {card.name!r} cannot be run on it")
    max_patches = int(ctx.extras.get("experts.max_patches", ON_THE_FLY_PATCHES))
    call = functools.partial(
        _classify_slide, slide, card, max_patches, ctx.max_side, ctx.cancel_event
    )
    try:
        fs, cached, probs, att, heat = await anyio.to_thread.run_sync(
            call, limiter=ctx.limiters.get("cpu", ctx.limiter)
        )
    except ConfigError as exc:
        raise ToolError(f"slide head {card.name!r} cannot be used: {exc}") from None
    source = "cached" if cached else "just computed (now cached)"
    head = (
        f"Slide-level {card.card.architecture} head {card.name} over {len(fs)} tissue patches "
        f"of {card.card.encoder} features ({source})"
    )
    if probs is None:
        return ToolResult(
            text=head + ": no tissue patches on this slide.", data={"model": card.name}
        )
    labels = list(card.card.labels)
    order = np.argsort(-probs)
    best = labels[int(order[0])]
    top = np.argsort(-att)[:3]
    boxes = [
        [int(fs.coords[i, 0]), int(fs.coords[i, 1]), round(fs.patch_l0), round(fs.patch_l0)]
        for i in top
    ]
    text = (
        f"{head}: "
        + ", ".join(f"P({labels[i]}) {probs[i]:.2f}" for i in order)
        + f". Most probable: {best}. Most attended patches: "
        + "; ".join(f"({b[0]},{b[1]},{b[2]},{b[3]})" for b in boxes)
        + f". Heatmap: {heat.legend} (attention as a percentile of this slide's patches)."
    )
    data = {
        "model": card.name,
        "encoder": card.card.encoder,
        "patches": len(fs),
        "features": str(fs.path),
        "cached": cached,
        "probabilities": {lab: round(float(p), 4) for lab, p in zip(labels, probs, strict=True)},
        "best": best,
        "top_patches": boxes,
        "heatmap": {"box": list(heat.box.as_tuple()), "mpp": heat.mpp, "legend": heat.legend},
    }
    img = ToolImage(
        image=heat.image, box=heat.box, level=heat.level, mpp=heat.mpp, label="attention heatmap"
    )
    return ToolResult(text=text, images=[img], data=data)


TOOLS = [slide_classifier]

__all__ = [
    "KINDS",
    "TOOLS",
    "HeadReport",
    "HeadRunner",
    "build_head",
    "check_head",
    "load_head",
    "metrics",
    "read_labels",
    "slide_classifier",
    "split_slides",
    "train_head",
]
