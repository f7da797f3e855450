"""docs/plugins.md: the pyproject.toml is complete, and the offline drive through the agent works."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import slidescout
from slidescout.testing.scripted import FunctionModel, reply, script
from slidescout.tools import ToolContext, ToolRegistry, tool
from slidescout.traces.rundir import load_trace

DOC = (Path(__file__).resolve().parents[1] / "docs" / "plugins.md").read_text(encoding="utf-8")


def test_the_pyproject_in_the_docs_is_complete_and_matches_the_example() -> None:
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in Python 3.11+")
    block = next(b for b in re.findall(r"```toml\n(.*?)```", DOC, re.S) if "[build-system]" in b)
    doc = tomllib.loads(block)
    example = tomllib.loads(
        (
            Path(__file__).resolve().parents[1]
            / "examples"
            / "slidescout-plugin-example"
            / "pyproject.toml"
        ).read_text(encoding="utf-8")
    )
    assert doc["build-system"]["build-backend"] == "setuptools.build_meta"
    assert (
        doc["project"]["name"] == example["project"]["name"]
        and "slidescout" in doc["project"]["dependencies"]
    )
    assert (
        doc["project"]["entry-points"]["slidescout.tools"]
        == example["project"]["entry-points"]["slidescout.tools"]
    )
    assert doc["tool"]["setuptools"]["packages"]["find"]["where"] == ["src"]


@tool
def tissue_fraction(x: int, y: int, w: int, h: int, ctx: ToolContext) -> str:
    """Fraction of non-white pixels in a region.

    Args:
        x: Left edge, level-0 px.
        y: Top edge, level-0 px.
        w: Width, level-0 px.
        h: Height, level-0 px.
    """
    view = ctx.require_slide().read((x, y, w, h), max_side=256)
    return f"tissue fraction {float((view.image < 220).any(axis=2).mean()):.2f}"


def test_drive_a_new_tool_through_the_agent_offline(tmp_path: Path, monkeypatch) -> None:
    import slidescout.tools.registry as registry_mod

    reg = ToolRegistry()
    reg.register(tissue_fraction)
    monkeypatch.setattr(
        registry_mod, "default_registry", lambda: reg
    )  # as if the plugin were installed
    slide = tmp_path / "s.png"
    Image.fromarray(np.full((600, 800, 3), (230, 150, 190), np.uint8)).save(slide)
    model = FunctionModel(
        script(
            reply(
                "Measure the tissue in the top-left quarter.",
                ("tissue_fraction", {"x": 0, "y": 0, "w": 400, "h": 300}),
            ),
            reply('Mostly tissue. {"answer": 1}'),
        )
    )
    res = slidescout.run(
        slide,
        "Is there tissue in the top left?",
        ["yes", "no"],
        model=model,
        tools="+tissue_fraction",
        out=tmp_path / "run",
    )
    assert (res.status, res.choice) == ("answered", "yes")
    sent = model.requests[1].messages[-1].results[0].content[0].text
    assert sent.startswith("tissue fraction 1.00")
    trace = load_trace(res.trace_path)
    calls = [e for e in trace.events if e.kind == "tool"]
    assert [c.call.name for c in calls] == ["tissue_fraction"] and calls[
        0
    ].text == "tissue fraction 1.00"
