"""``demo_sample``: one demo-sized slide and a diagnosis question, for ``slidescout demo``."""

from __future__ import annotations

from pathlib import Path

from slidescout.slides.synth.generator import DEMO_SIZE, generate_slide
from slidescout.slides.synth.questions import DIAGNOSIS_OPTIONS
from slidescout.slides.synth.truth import SynthTruth, load_truth

DEMO_QUESTION = "What is the most significant finding in this slide?"
_ABNORMAL = ("tumor", "lymphocytes", "necrosis")


def demo_sample(
    out_dir: str | Path,
    seed: int = 7,
    size: tuple[int, int] = DEMO_SIZE,
    primary: str | None = None,
) -> tuple[Path, str, list[str], str]:
    """Generate (or reuse) ``demo-<seed>.tiff`` in ``out_dir``.

    Returns ``(slide_path, question, options, answer)``; ``answer`` is the correct option's text.
    The primary finding is abnormal (tumor, lymphocytes or necrosis, by seed) unless given.
    """
    out = Path(out_dir)
    slide_id = f"demo-{seed}"
    primary = primary or _ABNORMAL[seed % len(_ABNORMAL)]
    truth = _reuse(out, slide_id, seed, size, primary)
    if truth is None:
        truth = generate_slide(
            out, slide_id, size=size, seed=seed, primary=primary, n_lesions=3
        ).truth
    options = list(DIAGNOSIS_OPTIONS.values())
    return out / truth.image, DEMO_QUESTION, options, DIAGNOSIS_OPTIONS[truth.primary]


def _reuse(
    out: Path, slide_id: str, seed: int, size: tuple[int, int], primary: str
) -> SynthTruth | None:
    try:
        truth = load_truth(out / f"{slide_id}.json")
    except Exception:
        return None
    ok = (
        truth.seed == seed
        and truth.params.get("size") == [int(size[0]), int(size[1])]
        and truth.params.get("primary") == primary
        and (out / truth.image).is_file()
    )
    return truth if ok else None
