"""A shareable report: 150 samples stay under the size budget, images stored once and downscaled."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from slidescout.core.messages import ImageRef, ToolCallPart
from slidescout.core.trace import AnswerEvent, ImageEvent, SlideRef, ToolEvent, Trace
from slidescout.traces.rundir import RunDir
from slidescout.traces.viewer.report import render_report_info, write_report


def _jpeg(rng: np.random.Generator, w: int, h: int) -> bytes:
    """A textured image that JPEG cannot shrink much (like H&E at 40x)."""
    base = rng.integers(0, 255, (h // 8, w // 8, 3), dtype=np.uint8)
    img = Image.fromarray(base).resize((w, h), Image.Resampling.BILINEAR)
    noise = rng.integers(-40, 40, (h, w, 3))
    buf = io.BytesIO()
    Image.fromarray(np.clip(np.asarray(img, np.int16) + noise, 0, 255).astype(np.uint8)).save(
        buf, "JPEG", quality=85
    )
    return buf.getvalue()


def make_big_run(
    root: Path, n_samples: int = 150, images_per_sample: int = 1, side: int = 720, seed: int = 0
) -> Path:
    """A run of ``n_samples`` traces, each with an overview and distinct zoom images of ``side`` px."""
    rng = np.random.default_rng(seed)
    run = RunDir.create(
        root / "run", {"model": "openai:gpt-test", "preset": "giant"}, {"system": "abc"}
    )
    h = side * 3 // 4
    for i in range(n_samples):
        sref = SlideRef(
            path=str(root / "missing" / f"slide-{i % 50}.svs"),
            slide_id=f"slide-{i % 50}",
            width=40000,
            height=30000,
            mpp=0.25,
        )
        refs = []
        for k in range(images_per_sample):
            sha = run.blobs.put(_jpeg(rng, side, h))
            refs.append(
                ImageRef(
                    sha256=sha,
                    width=side,
                    height=h,
                    box=(k * 4000, 0, 4000, 3000),
                    level=0,
                    mpp=0.25,
                    source=sref.slide_id,
                    label="slide_zoom",
                )
            )
        sid = f"tcga__a-very-long-sample-identifier-prefix-{i:04d}"
        t = Trace(
            sample_id=sid,
            run_id="run",
            task="tcga",
            question="Which cancer?",
            options=["A", "B"],
            slide=sref,
            model="openai:gpt-test",
            preset="giant",
            status="answered",
            answer="A",
        )
        t.events = [ImageEvent(id="i0", step=0, image=refs[0], purpose="overview")]
        for k, ref in enumerate(refs[1:], start=1):
            t.events.append(
                ToolEvent(
                    id=f"t{k}",
                    step=k,
                    call=ToolCallPart(id=f"c{k}", name="slide_zoom", arguments={}),
                    text="zoom",
                    images=[ref],
                )
            )
        t.events.append(AnswerEvent(id="a", step=len(refs), text="A"))
        run.write_trace(t)
        run.append_result(
            {
                "sample_id": sid,
                "repeat": 0,
                "task": "tcga",
                "status": "answered",
                "answer_text": "A",
                "choice": "A",
                "truth": "A",
                "n_steps": len(refs),
            }
        )
    return run.path


@pytest.fixture(scope="module")
def big_run(tmp_path_factory) -> Path:
    return make_big_run(tmp_path_factory.mktemp("big"))


def test_150_samples_fit_the_budget(big_run: Path, tmp_path: Path) -> None:
    blobs = sum(p.stat().st_size for p in (big_run / "blobs").iterdir())
    assert blobs > 12_000_000  # embedding them as they are would take more than 16 MB of base64
    text, info = render_report_info(big_run, max_bytes=4_000_000)
    assert text.count('class="report-sample"') == 150
    assert len(text.encode("utf-8")) <= 4_000_000
    assert info.n_images == 150 and info.n_downscaled == 150 and 96 <= info.side < 512
    assert (
        f"up to {info.side} px" in text and "blobs/" in text
    )  # the page says where the full-size images are
    assert "@@img" not in text
    assert (
        len(re.findall(r'data-img="', text)) == 300
    )  # 150 overviews, each also standing in for its slide


def test_images_within_the_side_are_kept_as_they_are(big_run: Path) -> None:
    text, info = render_report_info(big_run, limit=3)
    assert info.side == 512 and info.n_images == 3
    assert "downscaled" in text


def test_cli_warns_when_the_report_is_over_the_budget(big_run: Path, tmp_path: Path) -> None:
    from slidescout.cli import app

    out = tmp_path / "r.html"
    res = CliRunner().invoke(
        app, ["report-html", str(big_run), "-o", str(out), "--max-mb", "1", "--limit", "40"]
    )
    assert res.exit_code == 0, res.output
    size_mb = out.stat().st_size / 1e6
    assert 1 < size_mb and f"wrote {out} ({size_mb:.1f} MB)" in res.output.replace("\n", "")
    assert "warning: the report is over 1 MB" in res.output
    ok = CliRunner().invoke(app, ["report-html", str(big_run), "-o", str(out), "--limit", "5"])
    assert ok.exit_code == 0 and "warning" not in ok.output
    write_report(big_run, out, limit=1)
    assert out.stat().st_size < 1_000_000
