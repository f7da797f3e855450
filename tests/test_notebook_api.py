"""Notebook use: ``run`` inside a running loop, ``dir(slidescout)``, ``View`` repr and PNG, docstrings."""

from __future__ import annotations

import asyncio
import inspect
import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

import slidescout
from slidescout.core.types import Box, View
from slidescout.testing.scripted import FunctionModel, reply, script


def _png(path: Path) -> Path:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(120, 240, (300, 400, 3), dtype=np.uint8)).save(path)
    return path


def test_run_inside_a_running_event_loop(tmp_path: Path) -> None:
    slide = _png(tmp_path / "s.png")
    model = FunctionModel(
        script(
            reply("", ("slide_zoom", {"x0": 0, "y0": 0, "w": 200, "h": 200})),
            reply('Tumour. {"answer": 2}'),
        )
    )

    async def cell() -> slidescout.RunResult:  # what a Jupyter cell is: code inside a running loop
        return slidescout.run(
            slide, "What is it?", ["normal", "tumour"], model=model, out=tmp_path / "run"
        )

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "coroutine ... was never awaited" would fail here
        res = asyncio.run(cell())
    assert res.ok and res.choice == "tumour"
    assert (tmp_path / "run" / "results.jsonl").read_text().count("\n") == 1
    assert len(model.requests) == 2


def test_dir_lists_the_lazy_public_names() -> None:
    names = dir(slidescout)
    for n in (
        "Agent",
        "RunResult",
        "Slide",
        "View",
        "Box",
        "run",
        "arun",
        "make_agent",
        "__version__",
    ):
        assert n in names
    assert "_LAZY" not in names and "TYPE_CHECKING" not in names


def test_view_repr_is_short_and_png_shows_the_image() -> None:
    v = View(
        image=np.zeros((50, 80, 3), np.uint8),
        box=Box(100, 200, 800, 500),
        level=1,
        downsample=10.0,
        mpp=2.5,
        clamped=True,
    )
    text = repr(v)
    assert text == "View(box=(100,200,800,500), 80x50 px, level=1, downsample=10, mpp=2.5, clamped)"
    img = Image.open(io.BytesIO(v._repr_png_()))
    assert img.format == "PNG" and img.size == (80, 50)


def test_public_members_have_docstrings() -> None:
    skip: set[str] = set()
    missing = []
    for name in slidescout.__all__:
        obj = getattr(slidescout, name)
        if name.startswith("__"):
            continue
        if not inspect.getdoc(obj):
            missing.append(name)
        if inspect.isclass(obj) and name not in skip:
            for attr, value in vars(obj).items():
                fn = (
                    value.fget if isinstance(value, property) else getattr(value, "__func__", value)
                )
                if not attr.startswith("_") and callable(fn) and not (fn.__doc__ or "").strip():
                    missing.append(f"{name}.{attr}")
    assert missing == []
