"""Install examples/slidescout-plugin-example into a temp dir and use it through the registry."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from slidescout.core.types import Box, View
from slidescout.errors import ToolError
from slidescout.tools import ToolContext, ToolRegistry

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "slidescout-plugin-example"
NS = "slidescout-plugin-example"


class TissueSlide:
    """Left half tissue (pink), right half background (white); 2000 x 1000 at 0.5 µm/px."""

    dimensions = (2000, 1000)
    mpp = 0.5

    def read(self, box, max_side=1000, guides=False) -> View:
        req = Box.of(box)
        shown = req.intersect(Box(0, 0, *self.dimensions))
        if shown is None:
            from slidescout.errors import SlideError

            raise SlideError(f"box {req} is outside the slide")
        img = np.full((shown.h, shown.w, 3), 250, np.uint8)
        xs = np.arange(shown.x, shown.x2)
        img[:, xs < 1000] = (230, 150, 190)
        ds = max(1, max(shown.w, shown.h) // max_side)
        img = img[::ds, ::ds]
        return View(
            image=img,
            box=shown,
            level=0,
            downsample=float(ds),
            mpp=self.mpp * ds,
            requested=req,
            clamped=shown != req,
        )


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """pip install --no-deps --no-build-isolation --target TMP (from a copy: no build/ in the repo)."""
    tmp = tmp_path_factory.mktemp("plugin")
    src = tmp / "src"
    shutil.copytree(
        EXAMPLE, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    target = tmp / "site"
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--quiet",
            "--target",
            str(target),
            str(src),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    yield target
    sys.path.remove(str(target))
    for name in [m for m in sys.modules if m.startswith("slidescout_plugin_example")]:
        del sys.modules[name]


async def test_example_plugin_is_discovered_and_works(installed):
    reg = ToolRegistry(builtin_modules=["slidescout.tools.navigation"])
    names = reg.names()
    assert f"{NS}/tissue_fraction" in names and f"{NS}/color_histogram" in names, (
        names,
        reg.errors,
    )
    assert not [e for e in reg.errors if NS in e.name]
    tf = reg.get(f"{NS}/tissue_fraction")
    assert tf.source == f"{NS} 0.1.0"
    assert tf.spec.name == "slidescout-plugin-example__tissue_fraction"
    assert tf.parameters["required"] == ["x", "y", "w", "h"]
    assert tf.parameters["properties"]["threshold"]["default"] == 220
    assert "fraction of non-white pixels" in tf.description

    names = reg.resolve_toolset(["slide_zoom"], f"+{NS}/tissue_fraction,+{NS}/color_histogram")
    ts = reg.select(names)
    ctx = ToolContext(slide=TissueSlide(), max_side=1000)

    res = await ts.invoke(
        tf.wire_name, {"x": 500, "y": 0, "w": 1000, "h": 1000, "show_mask": True}, ctx
    )
    assert res.data["tissue_fraction"] == pytest.approx(0.5, abs=0.01)
    assert "Tissue covers 50.0%" in res.text
    assert len(res.images) == 1 and res.images[0].box == Box(500, 0, 1000, 1000)
    with pytest.raises(ToolError, match="outside"):
        await ts.invoke(tf.wire_name, {"x": 5000, "y": 0, "w": 10, "h": 10}, ctx)
    with pytest.raises(ToolError, match="'w'"):
        await ts.invoke(tf.wire_name, {"x": 0, "y": 0, "w": 0, "h": 10}, ctx)

    ch = reg.get(f"{NS}/color_histogram")
    inst = ch.origin
    assert inst.setup_calls == 0  # lazy: nothing loaded at discovery
    res = await ts.invoke(
        "slidescout-plugin-example__color_histogram", {"x": 0, "y": 0, "w": 800, "h": 800}, ctx
    )
    assert res.data["eosin_od"] > 0.05 and len(res.data["histogram"]["r"]) == 8
    await ts.invoke(ch.wire_name, {"x": 0, "y": 0, "w": 400, "h": 400, "bins": 4}, ctx)
    assert inst.setup_calls == 1
    with pytest.raises(ToolError, match="background only"):
        await ts.invoke(ch.wire_name, {"x": 1500, "y": 0, "w": 400, "h": 400}, ctx)
