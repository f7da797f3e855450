"""SynthPath questions in MultiPathQA's CSV columns, and ``generate_dataset``.

Three tasks, all multiple choice answered with the 1-based option number (metric ``accuracy``):

- ``synth_diagnosis``: the most significant finding (the slide's primary lesion class);
- ``synth_location``: the quadrant that holds the (single) primary lesion;
- ``synth_count``: how many foci of the primary class, and how many tissue pieces.

Prompts follow MultiPathQA's ``tcga`` template: ``{options}`` is replaced by the numbered
options and ``{{``/``}}`` are literal braces (``str.format``).
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np

from slidescout.errors import ConfigError
from slidescout.slides.synth.generator import DEFAULT_SIZE, SynthSlide, generate_slide
from slidescout.slides.synth.textures import CLASSES
from slidescout.slides.synth.truth import SynthTruth, load_truth

COLUMNS = [
    "benchmark_name",
    "benchmark_id",
    "image_path",
    "answer",
    "options",
    "image_exists",
    "patch_exists",
    "is_valid",
    "metric_type",
    "file_id",
    "prompt",
]

DIAGNOSIS_OPTIONS = {
    "tumor": "Carcinoma (tumor)",
    "lymphocytes": "Dense lymphocytic infiltrate",
    "necrosis": "Necrosis",
    "normal": "No significant abnormality",
}
FINDING = {
    "tumor": "carcinoma (tumor)",
    "lymphocytes": "dense lymphocytic infiltrate",
    "necrosis": "necrosis",
}
LOCATION_OPTIONS = ["Upper left", "Upper right", "Lower left", "Lower right"]
LESION_COUNT_OPTIONS = ["1", "2", "3", "4"]
PIECE_COUNT_OPTIONS = ["1", "2", "3", "4", "5"]

_TEMPLATE = (
    "\n{question}\n\nSelect from the following options:\n{{options}}\n\n"
    "Please choose the number of the correct option and respond in the following JSON format:\n"
    '```json\n{{{{"answer": YOUR_ANSWER}}}}\n```\n'
)


def _prompt(question: str) -> str:
    return _TEMPLATE.format(question=question)


def _row(
    task: str,
    truth: SynthTruth,
    kind: str,
    question: str,
    options: list[str],
    answer: int,
    image_path: str,
) -> dict[str, str]:
    return {
        "benchmark_name": task,
        "benchmark_id": f"{truth.slide_id}-{kind}",
        "image_path": image_path,
        "answer": str(answer),
        "options": repr(options),
        "image_exists": "True",
        "patch_exists": "True",
        "is_valid": "True",
        "metric_type": "accuracy",
        "file_id": truth.slide_id,
        "prompt": _prompt(question),
    }


def slide_questions(truth: SynthTruth, image_path: str | None = None) -> list[dict[str, str]]:
    """The questions one slide supports, as CSV rows (answers are 1-based option numbers)."""
    path = image_path or truth.image
    rows = []
    diag = list(DIAGNOSIS_OPTIONS.values())
    rows.append(
        _row(
            "synth_diagnosis",
            truth,
            "diagnosis",
            "What is the most significant finding in this slide?",
            diag,
            list(DIAGNOSIS_OPTIONS).index(truth.primary) + 1,
            path,
        )
    )
    if truth.primary != "normal":
        found = truth.lesions_of(truth.primary)
        finding = FINDING[truth.primary]
        if len(found) == 1 and found[0].quadrant is not None:
            quadrant = found[0].quadrant.capitalize()
            rows.append(
                _row(
                    "synth_location",
                    truth,
                    "location",
                    f"Where on the whole slide image is the focus of {finding}?",
                    LOCATION_OPTIONS,
                    LOCATION_OPTIONS.index(quadrant) + 1,
                    path,
                )
            )
        if 1 <= len(found) <= len(LESION_COUNT_OPTIONS):
            rows.append(
                _row(
                    "synth_count",
                    truth,
                    "count-lesions",
                    f"How many separate foci of {finding} are present on this slide?",
                    LESION_COUNT_OPTIONS,
                    len(found),
                    path,
                )
            )
    if 1 <= len(truth.tissue) <= len(PIECE_COUNT_OPTIONS):
        rows.append(
            _row(
                "synth_count",
                truth,
                "count-pieces",
                "How many separate pieces of tissue are on the slide?",
                PIECE_COUNT_OPTIONS,
                len(truth.tissue),
                path,
            )
        )
    return rows


def write_questions(rows: list[dict[str, str]], path: str | Path) -> Path:
    p = Path(path)
    with p.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return p


def slide_seed(seed: int, index: int) -> int:
    """The seed of slide ``index`` of a dataset generated with ``seed``."""
    return int(np.random.SeedSequence([int(seed), 1, int(index)]).generate_state(1)[0])


def _existing(out: Path, slide_id: str, seed: int, params: dict) -> SynthTruth | None:
    """The truth of a slide already generated with these settings (so a rerun skips it)."""
    try:
        truth = load_truth(out / f"{slide_id}.json")
    except Exception:
        return None
    if not (out / truth.image).is_file() or truth.seed != seed:
        return None
    same = all(truth.params.get(k) == v for k, v in params.items())
    return truth if same else None


def generate_dataset(
    out_dir: str | Path,
    n: int = 20,
    *,
    size: tuple[int, int] = DEFAULT_SIZE,
    seed: int = 0,
    n_lesions: int | None = None,
    lesion_size: tuple[float, float] | None = None,
    stain_jitter: float = 0.1,
    mpp: float = 0.25,
    prefix: str = "synth",
    overwrite: bool = False,
    on_slide: Callable[[int, str], Callable[[float], None] | None] | None = None,
    on_done: Callable[[SynthSlide | SynthTruth], None] | None = None,
) -> Path:
    """Generate ``n`` slides (primary classes balanced across tumor, lymphocytes, necrosis and
    normal) and one ``questions.csv`` whose ``image_path`` is relative to ``out_dir``.

    Slides already there with the same seed and settings are kept unless ``overwrite``.
    ``on_slide(i, slide_id)`` may return a progress callback for that slide's TIFF writing;
    ``on_done`` receives each slide (or, for a kept one, its truth).
    """
    if n < 1:
        raise ConfigError(f"n={n}: generate at least one slide")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if seed < 0:
        raise ConfigError(f"seed {seed} is negative: use 0 or more")
    order = np.random.default_rng(np.random.SeedSequence([int(seed), 0])).permutation(n)
    primaries = [CLASSES[int(k) % len(CLASSES)] for k in order]
    rows: list[dict[str, str]] = []
    for i in range(n):
        slide_id = f"{prefix}-{i:03d}"
        s = slide_seed(seed, i)
        wanted = {
            "size": [int(size[0]), int(size[1])],
            "n_lesions": n_lesions,
            "stain_jitter": stain_jitter,
            "mpp": mpp,
            "primary": primaries[i],
            "lesion_size": None if lesion_size is None else [float(v) for v in lesion_size],
        }
        kept = None if overwrite else _existing(out, slide_id, s, wanted)
        if kept is not None:
            truth = kept
            if on_done:
                on_done(kept)
        else:
            progress = on_slide(i, slide_id) if on_slide else None
            slide = generate_slide(
                out,
                slide_id,
                size=size,
                seed=s,
                n_lesions=n_lesions,
                lesion_size=lesion_size,
                stain_jitter=stain_jitter,
                mpp=mpp,
                primary=primaries[i],
                progress=progress,
            )
            truth = slide.truth
            if on_done:
                on_done(slide)
        rows.extend(slide_questions(truth, truth.image))
    return write_questions(rows, out / "questions.csv")
