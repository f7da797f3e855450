"""Ground truth written beside each synthetic slide, and its loader."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from slidescout.errors import DatasetError

QUADRANTS = ("upper left", "upper right", "lower left", "lower right")


class LesionTruth(BaseModel):
    """One lesion: its class and level-0 box ``(x, y, w, h)``; the polygon is in the GeoJSON."""

    model_config = ConfigDict(populate_by_name=True)

    id: str
    # "class" in the JSON (a keyword in Python): read from either name, written as "class"
    cls: str = Field(validation_alias=AliasChoices("class", "cls"), serialization_alias="class")
    box: tuple[int, int, int, int]
    area: float = Field(description="polygon area in level-0 pixels squared")
    piece: str | None = Field(default=None, description="id of the tissue piece holding it")
    quadrant: str | None = Field(
        default=None, description="quadrant of the slide holding the whole box, if one"
    )


class TissueTruth(BaseModel):
    id: str
    box: tuple[int, int, int, int]
    area: float


class SynthTruth(BaseModel):
    """Everything known about one synthetic slide (``<id>.json``)."""

    model_config = ConfigDict(populate_by_name=True)

    version: int = 1
    generator: str = "slidescout.synthpath"
    slide_id: str
    image: str = Field(description="slide file name, beside this file")
    annotations: str = Field(description="GeoJSON file name (lesion polygons), beside this file")
    width: int
    height: int
    mpp: float
    objective_power: float
    levels: list[tuple[int, int]] = Field(default_factory=list)
    seed: int
    params: dict[str, Any] = Field(default_factory=dict)
    primary: str = Field(
        description="the most significant finding: a lesion class, 'normal' when none"
    )
    lesions: list[LesionTruth] = Field(default_factory=list)
    tissue: list[TissueTruth] = Field(default_factory=list)
    stain: dict[str, Any] = Field(default_factory=dict)
    colour_residual: float = Field(
        default=0.0,
        description="largest per-channel mean-colour mismatch of a lesion class (0-255)",
    )

    def lesions_of(self, cls: str) -> list[LesionTruth]:
        return [les for les in self.lesions if les.cls == cls]

    def dump(self) -> str:
        return self.model_dump_json(by_alias=True, indent=1)


def truth_path(path: str | Path) -> Path:
    """The ``.json`` truth file for a slide, truth or annotation path."""
    p = Path(path)
    return p if p.suffix.lower() == ".json" else p.with_suffix(".json")


def load_truth(path: str | Path) -> SynthTruth:
    """Load a slide's ground truth from its ``.json`` (or the ``.tiff``/``.geojson`` beside it)."""
    p = truth_path(path)
    if not p.is_file():
        raise DatasetError(
            f"no SynthPath ground truth at {p}; generate the slide with `slidescout synth`"
        )
    try:
        return SynthTruth.model_validate(json.loads(p.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(
            f"{p} is not valid JSON ({e}); regenerate it with `slidescout synth`"
        ) from None
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first.get("loc", ()))
        raise DatasetError(
            f"{p} is not a SynthPath truth file: {where}: {first.get('msg')}"
        ) from None
