"""Model cards: a small YAML or TOML file that says how to run a checkpoint on slide patches.

    name: tiny-tumor
    format: torchscript          # torchscript | state_dict | onnx
    path: tiny_tumor.pt          # relative to the card
    mpp: 0.5                     # input resolution, µm per pixel (0.5 ≈ 20x)
    patch_size: 224
    mean: [0.485, 0.456, 0.406]  # on pixels scaled to [0, 1]
    std: [0.229, 0.224, 0.225]
    labels: [normal, tumor]
    output: logits               # an expert kind: logits | probabilities | score | embedding | mask | instances | zero_shot | a plugin's
    heatmap_label: tumor

A ``state_dict`` card also names its ``architecture``: a built-in one (``tiny_cnn``, ``resnet18``,
``resnet34``, ``resnet50``, timm-named ViTs such as ``vit_large_patch16_224``; see ``archs.py`` and
``vit.py``), an author's own class (``package.module:Class``, called with ``architecture_args``),
or a timm model (``timm:<name>``, or any other name), used only when timm is installed.

Outputs:
- ``logits`` / ``probabilities`` / ``score``: one value per label and patch.
- ``embedding``: the model's pooled features; built-in and timm architectures get *no head*
  (``num_classes=0``), and ``embedding_dim``, when given, is checked against the output width.
- ``mask``: per-pixel class logits ``(N, len(labels), h, w)``; ``background`` names the label that
  is not tissue of interest (left out of the overlay).
- ``instances``: maps decoded to nuclei. ``decoder: hovernet``: channels [NP background, NP
  foreground, H, V] then optional type logits, one per label (or a dict/tuple ``np, hv[, tp]``);
  ``decoder: foreground``: [background, foreground] logits, split by a distance watershed;
  ``decoder: stardist``: [object probability (0-1), then ``rays`` distances in px];
  ``decoder: label_map``: one channel of instance ids per patch (0 = background), merged across
  patch borders.
  Output maps the size of the input, or smaller and centred (valid convolutions), at the same mpp.
  ``postprocess`` holds every threshold of the decoders (``threshold``, ``min_area``, ``edge``,
  ``sobel_size``, ``opening``, ``blur``, ``nms_overlap``, ``min_distance``); a hovernet card may
  name its background type channel in ``background``.
- ``slide``: a slide-level head (``architecture: abmil`` or ``linear``) over the cached tile
  features of ``encoder`` (``slidescout experts train-head`` writes one); one row of class
  probabilities per slide and an attention value per patch.
- ``zero_shot``: ``format: transformers``, a CLIP or SigLIP folder (or ``hub: org/name``);
  ``prompts`` are templates such as "an H&E image of {}." and ``labels`` the default classes.

Every error names the card file and the bad field.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from slidescout.errors import ConfigError
from slidescout.tools.experts.kinds import EXPERT_KINDS, ExpertKind, get_kind

CARD_SUFFIXES = (".yaml", ".yml", ".toml", ".json")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Triple = Annotated[list[float], Field(min_length=3, max_length=3)]


class PostProcess(BaseModel):
    """Thresholds of the instance decoders (card field ``postprocess``); the defaults are
    HoVer-Net's published post-processing and StarDist's usual values."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    threshold: float = Field(
        default=0.5,
        gt=0,
        lt=1,
        description="Foreground (or object) probability that counts as nucleus.",
    )
    min_area: int = Field(
        default=10,
        ge=0,
        description="Parts and markers smaller than this (px at the model's mpp) go.",
    )
    edge: float = Field(
        default=0.4,
        gt=0,
        lt=1,
        description="hovernet: gradient energy that marks a border between nuclei.",
    )
    sobel_size: int = Field(
        default=21, ge=3, le=31, description="hovernet: Sobel kernel taps (odd)."
    )
    opening: int = Field(
        default=5,
        ge=0,
        le=31,
        description="hovernet: elliptical opening of the markers, px (0: none).",
    )
    blur: int = Field(
        default=3, ge=0, le=31, description="hovernet: Gaussian taps on the distance map (0: none)."
    )
    nms_overlap: float = Field(
        default=0.4,
        gt=0,
        le=1,
        description="stardist: share of a polygon already drawn that drops it.",
    )
    min_distance: int = Field(
        default=3, ge=1, description="foreground: px between the centres the watershed starts from."
    )

    @field_validator("sobel_size", "blur", "opening")
    @classmethod
    def _odd(cls, v: int) -> int:
        if v > 1 and v % 2 == 0:
            raise ValueError("use an odd number of pixels")
        return v


class StainNorm(BaseModel):
    """Stain normalisation applied to every patch before the model (card field ``stain_norm``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["macenko", "vahadane", "reinhard"]
    target: str | None = Field(
        None,
        description="Image stained as the training data, relative to the card (Macenko and "
        "Vahadane default to Macenko's reference stains; Reinhard needs one).",
    )


class ModelCard(BaseModel):
    """How to run one checkpoint on slide patches (validated; unknown fields are errors)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Registry name: lowercase letters, digits, '.', '_' or '-'.")
    format: Literal["torchscript", "state_dict", "onnx", "transformers"]
    path: str = Field(min_length=1, description="Weights file (or folder), relative to the card.")
    hub: str | None = Field(default=None, description="Hugging Face repo id the weights come from.")
    architecture: str | None = Field(
        default=None, description="state_dict only: built-in, module:Class or timm name."
    )
    architecture_args: dict[str, Any] = Field(default_factory=dict)
    mpp: float = Field(gt=0.05, le=64, description="Input resolution in µm per pixel.")
    patch_size: int = Field(ge=16, le=4096, description="Input side in pixels.")
    mean: Triple = Field(default_factory=lambda: list(IMAGENET_MEAN))
    std: Triple = Field(default_factory=lambda: list(IMAGENET_STD))
    labels: list[str] = Field(default_factory=list)
    # an expert kind (``kinds.py``): built in, or a plugin's
    output: str = "logits"
    encoder: str | None = Field(
        default=None,
        description="slide heads: the registered tile encoder whose features they read.",
    )
    embedding_dim: int | None = Field(default=None, ge=1)
    decoder: Literal["hovernet", "foreground", "stardist", "label_map"] = "hovernet"
    rays: int = Field(default=32, ge=3, le=256, description="stardist: rays per pixel.")
    background: str | None = None
    overlap: int | None = Field(
        default=None, ge=0, description="mask/instances: px shared by neighbouring patches."
    )
    postprocess: PostProcess = Field(default_factory=PostProcess)
    stain_norm: StainNorm | None = None
    prompts: list[str] = Field(default_factory=lambda: ["an H&E image of {}."])
    heatmap_label: str | None = None
    score_range: Annotated[list[float], Field(min_length=2, max_length=2)] | None = None
    description: str = ""
    source: str = ""
    license: str = ""

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError(
                "use 1-64 lowercase letters, digits, '.', '_' or '-', starting with a "
                "letter or digit"
            )
        return v

    @field_validator("output")
    @classmethod
    def _output(cls, v: str) -> str:
        if v not in EXPERT_KINDS:
            raise ValueError(f"unknown output {v!r}; expected one of {', '.join(EXPERT_KINDS)}")
        return v

    @field_validator("std")
    @classmethod
    def _std(cls, v: list[float]) -> list[float]:
        if any(s <= 0 for s in v):
            raise ValueError("every std value must be > 0")
        return v

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: list[str]) -> list[str]:
        if any(not str(s).strip() for s in v):
            raise ValueError("labels must be non-empty strings")
        if len(set(v)) != len(v):
            raise ValueError("labels must be unique")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> ModelCard:
        if self.format == "state_dict" and not self.architecture:
            raise ValueError(
                "field 'architecture': a state_dict card must name its architecture "
                "(a built-in one such as resnet50, or a timm model name)"
            )
        kind = self.kind
        if kind.name == "slide" and not self.encoder:
            raise ValueError(
                "field 'encoder': a slide head (output 'slide') names the tile encoder whose "
                "features it reads (e.g. encoder: uni)"
            )
        if self.format == "transformers" and kind.card_format != "transformers":
            raise ValueError("field 'output': a 'transformers' card is a zero_shot model")
        if kind.card_format is not None and self.format != kind.card_format:
            raise ValueError(
                f"field 'format': {kind.name} models load with format {kind.card_format!r}"
                + (
                    " (a CLIP or SigLIP folder in Hugging Face format)"
                    if kind.card_format == "transformers"
                    else ""
                )
            )
        if any("{}" not in t for t in self.prompts) or not self.prompts:
            raise ValueError("field 'prompts': each template needs '{}' where the label goes")
        if self.background is not None and self.background not in self.labels:
            raise ValueError(f"field 'background': {self.background!r} is not one of the labels")
        if self.overlap is not None and self.overlap >= self.patch_size:
            raise ValueError("field 'overlap': must be smaller than patch_size")
        if kind.needs_labels and not self.labels:
            raise ValueError(
                f"field 'labels': a model with output '{self.output}' needs its labels, "
                "one per output value"
            )
        if self.heatmap_label is not None and self.heatmap_label not in self.labels:
            raise ValueError(
                f"field 'heatmap_label': {self.heatmap_label!r} is not one of the labels "
                f"{self.labels}"
            )
        if self.stain_norm and self.stain_norm.method == "reinhard" and not self.stain_norm.target:
            raise ValueError(
                "field 'stain_norm.target': Reinhard normalisation needs a target image"
            )
        if self.score_range is not None and self.score_range[1] <= self.score_range[0]:
            raise ValueError("field 'score_range': give [low, high] with low < high")
        return self

    # -- derived --------------------------------------------------------------------------------
    @property
    def kind(self) -> ExpertKind:
        """What ``output`` means (the expert-kind registry's entry)."""
        return get_kind(self.output)

    @property
    def num_outputs(self) -> int | None:
        """Values (or channels, for maps) per patch the model must produce (None: any)."""
        return self.kind.num_outputs(self)

    @property
    def head_outputs(self) -> int:
        """Head size a built-in or timm architecture gets: 0 (no head) for an embedding."""
        if self.kind.returns == "embedding":
            return 0
        return self.num_outputs or 0

    @property
    def spatial(self) -> bool:
        """The model returns maps (mask or instances) rather than one row per patch."""
        return self.kind.spatial

    @property
    def stride(self) -> int:
        """Patch step for maps: patch_size minus the overlap (even, default 1/8 of the patch)."""
        ov = self.overlap if self.overlap is not None else 2 * (self.patch_size // 16)
        return self.patch_size - ov

    @property
    def magnification(self) -> float:
        return 10.0 / self.mpp

    def describe(self) -> str:
        kind = self.kind
        what = (
            f"{len(self.labels)} classes ({', '.join(self.labels)})"
            if kind.is_classifier or (kind.spatial and kind.needs_labels)
            else f"{self.output} ({', '.join(self.labels) or 'vector'})"
        )
        return (
            f"{self.name}: {self.format}, {self.patch_size} px patches at {self.mpp:g} µm/px "
            f"(≈{self.magnification:.0f}x), {what}"
        )


class Card:
    """A validated card and the file it came from (weights resolve relative to it)."""

    def __init__(self, card: ModelCard, file: Path) -> None:
        self.card = card
        self.file = file.resolve()

    @property
    def name(self) -> str:
        return self.card.name

    def relative(self, value: str) -> Path:
        """A path named in the card, resolved relative to the card file."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.file.parent / p).resolve()

    @property
    def stain(self) -> tuple[str | None, Path | None]:
        """The card's stain normalisation: method (None: none) and target image."""
        sn = self.card.stain_norm
        if sn is None:
            return None, None
        return sn.method, self.relative(sn.target) if sn.target else None

    @property
    def weights(self) -> Path:
        p = Path(self.card.path).expanduser()
        return p if p.is_absolute() else (self.file.parent / p).resolve()

    def check_weights(self) -> Path:
        w = self.weights
        if self.card.format == "transformers":
            if (w / "config.json").is_file() or self.card.hub:
                return w
            raise ConfigError(
                f"model card {self.file.name}: no Hugging Face model folder at {w} (it needs "
                "config.json; or set field 'hub' to download it)"
            )
        if not w.is_file():
            raise ConfigError(
                f"model card {self.file.name}: checkpoint not found: {w} (field 'path' "
                "is resolved relative to the card)"
            )
        return w

    def key(self) -> str:
        """Changes whenever the card or its weights change (cache key of loaded models)."""
        w = self.weights
        stamp = f"{w.stat().st_mtime_ns}:{w.stat().st_size}" if w.exists() else "missing"
        return f"{self.file}:{self.card.model_dump_json()}:{stamp}"

    def __repr__(self) -> str:
        return f"Card({self.name!r}, {self.file})"


def _parse(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            try:
                import tomllib
            except ImportError:  # Python 3.10
                import tomli as tomllib  # type: ignore[no-redef]
            data: Any = tomllib.loads(text)
        elif suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # yaml.YAMLError, TOMLDecodeError, JSONDecodeError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"model card {path.name}: not valid {suffix.lstrip('.').upper()} ({first})"
        ) from None
    if isinstance(data, dict) and set(data) == {"model"} and isinstance(data["model"], dict):
        data = data["model"]  # TOML cards may put everything under [model]
    if not isinstance(data, dict):
        raise ConfigError(
            f"model card {path.name}: expected a mapping of fields (name, format, path, "
            f"mpp, patch_size, labels...), got {type(data).__name__}"
        )
    return data


def _format_errors(path: Path, exc: ValidationError) -> str:
    problems = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err.get("loc", ()))
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        kind = err.get("type", "")
        if kind == "missing":
            problems.append(f"missing field '{loc}'")
        elif kind == "extra_forbidden":
            problems.append(f"unknown field '{loc}'")
        elif loc:
            got = json.dumps(err.get("input"), default=str)
            got = got if len(got) <= 60 else got[:57] + "..."
            problems.append(f"field '{loc}': {msg} (got {got})")
        else:
            problems.append(msg)
    return f"model card {path.name}: " + "; ".join(problems)


def card_from_dict(data: dict[str, Any], file: Path) -> Card:
    """Validate ``data`` as the card stored in ``file`` (a ConfigError names the bad field)."""
    try:
        return Card(ModelCard.model_validate(data), Path(file))
    except ValidationError as exc:
        raise ConfigError(_format_errors(Path(file), exc)) from None


def load_card(path: str | Path) -> Card:
    """Read and validate a card file (YAML, TOML or JSON). Does not touch the weights."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ConfigError(f"model card not found: {p}")
    if p.is_dir():
        cards = sorted(c for c in p.iterdir() if c.suffix.lower() in CARD_SUFFIXES)
        if len(cards) != 1:
            raise ConfigError(
                f"{p} is a directory; give the model card file itself "
                f"({'found ' + ', '.join(c.name for c in cards) if cards else 'no card found'})"
            )
        p = cards[0]
    if p.suffix.lower() not in CARD_SUFFIXES:
        raise ConfigError(f"model card {p.name}: expected a .yaml, .yml, .toml or .json file")
    return card_from_dict(_parse(p), p)


__all__ = [
    "CARD_SUFFIXES",
    "Card",
    "ModelCard",
    "PostProcess",
    "StainNorm",
    "card_from_dict",
    "load_card",
]
