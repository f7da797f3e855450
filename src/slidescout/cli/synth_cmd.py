"""``slidescout synth``: generate a SynthPath dataset (slides, ground truth, questions.csv)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import typer

from slidescout.cli.app import app, console
from slidescout.cli.paths import ensure_dir
from slidescout.cli.progress import slide_progress
from slidescout.errors import ConfigError
from slidescout.slides.synth import generate_dataset
from slidescout.slides.synth.generator import check_params

_SIZE = re.compile(r"^\s*(\d+)\s*[xX×,]\s*(\d+)\s*$")
# One default for `synth` and `eval synth`: about 15 s of one core per slide (time grows with the area)
DEFAULT_SIZE = "16000x12000"


def parse_size(text: str, what: str = "--size") -> tuple[int, int]:
    """``"40000x30000"`` to ``(40000, 30000)``; anything else is a :class:`ConfigError`."""
    m = _SIZE.match(text or "")
    if not m:
        raise ConfigError(f"bad {what} {text!r}: expected WIDTHxHEIGHT in pixels, e.g. 40000x30000")
    w, h = int(m.group(1)), int(m.group(2))
    if w <= 0 or h <= 0:
        raise ConfigError(f"bad {what} {text!r}: width and height must be positive")
    return w, h


def _parse_range(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    parts = [p for p in re.split(r"[-:,]", text.strip()) if p.strip()]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or not 0 < values[0] <= values[1]:
        raise ConfigError(
            f"bad --lesion-size {text!r}: expected MIN-MAX diameters in level-0 px, e.g. 1500-3000"
        )
    return values[0], values[1]


@app.command()
def synth(
    out_dir: Path = typer.Argument(
        ..., help="Folder for the slides, their ground truth and questions.csv."
    ),
    n: int = typer.Option(20, "--n", "-n", min=1, max=10000, help="Number of slides."),
    size: str = typer.Option(
        DEFAULT_SIZE,
        "--size",
        help="Level-0 size WIDTHxHEIGHT in pixels (time grows with the area).",
    ),
    data_seed: int = typer.Option(
        0, "--data-seed", help="Seed of the whole dataset (as for eval synth and demo)."
    ),
    seed: int | None = typer.Option(
        None, "--seed", hidden=True, help="Old spelling of --data-seed."
    ),
    lesions: int | None = typer.Option(
        None, "--lesions", min=0, max=12, help="Lesions per slide (default 2-4 at random)."
    ),
    lesion_size: str | None = typer.Option(
        None,
        "--lesion-size",
        help="Lesion diameters MIN-MAX in level-0 px (default from the slide size).",
    ),
    stain_jitter: float = typer.Option(
        0.1,
        "--stain-jitter",
        min=0.0,
        max=1.0,
        help="Stain variation between slides (0 none, 0.1 mild).",
    ),
    mpp: float = typer.Option(0.25, "--mpp", help="Microns per pixel at level 0 (0.25 is 40x)."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Regenerate slides that already exist."
    ),
) -> None:
    """Generate synthetic H&E slides with lesions visible only at high magnification, and questions."""
    width, height = parse_size(size)
    ensure_dir(out_dir, "output folder")
    diameters = _parse_range(lesion_size)

    check_params(
        "x", (width, height), mpp, lesions, diameters, stain_jitter, None, None
    )  # fail before any work
    t0 = time.monotonic()
    with slide_progress(console, n, f"{n} slides {width}x{height}") as prog:
        csv_path = generate_dataset(
            out_dir,
            n,
            size=(width, height),
            seed=data_seed if seed is None else seed,
            n_lesions=lesions,
            lesion_size=diameters,
            stain_jitter=stain_jitter,
            mpp=mpp,
            overwrite=overwrite,
            on_slide=prog.on_slide,
            on_done=prog.on_done,
        )
    import csv

    with csv_path.open(newline="", encoding="utf-8") as f:
        n_questions = sum(1 for _ in csv.DictReader(f))
    console.print(
        f"wrote {prog.done} slides (.tiff, .geojson, .json) to {out_dir} "
        f"in {time.monotonic() - t0:.1f} s",
        highlight=False,
    )
    console.print(f"questions: {csv_path} ({n_questions} rows)", highlight=False)
    console.print(
        f"evaluate: slidescout eval synth --data {csv_path.parent} --model expert", highlight=False
    )
