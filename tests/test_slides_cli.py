"""CLI: slidescout info / render / thumbnail, and one-line errors with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import slidefactory as sf
from cli_helpers import run_cli
from PIL import Image


@pytest.fixture(scope="module")
def svs(tmp_path_factory):
    return sf.make_svs(tmp_path_factory.mktemp("cli") / "case.svs", 3000, 2000)


def test_info_text(monkeypatch, capsys, svs):
    code, out, err = run_cli(capsys, "info", str(svs))
    assert code == 0, err
    for needle in (
        "aperio",
        "3000 x 2000 px",
        "0.252",
        "metadata",
        "40x",
        "label, macro, thumbnail",
        "downsample",
    ):
        assert needle in out


def test_info_json(monkeypatch, capsys, svs):
    code, out, _ = run_cli(capsys, "info", str(svs), "--json")
    assert code == 0
    data = json.loads(out)
    assert data["format"] == "aperio" and data["width"] == 3000 and data["level_count"] == 2
    assert data["mpp_source"] == "metadata" and sorted(data["associated_images"]) == [
        "label",
        "macro",
        "thumbnail",
    ]


def test_render(monkeypatch, capsys, svs, tmp_path):
    out_path = tmp_path / "view.jpg"
    code, out, err = run_cli(
        capsys,
        "render",
        str(svs),
        "--box",
        "100,200,2000,1500",
        "--max-side",
        "500",
        "--guides",
        "-o",
        str(out_path),
    )
    assert code == 0, err
    img = Image.open(out_path)
    assert img.size == (500, 375) and img.format == "JPEG"
    assert "region with top-left (100,200) and size 2000 x 1500" in out
    arr = np.asarray(img)
    assert arr[0, 250, 0] > 200 and arr[0, 250, 1] < 60  # red border survived JPEG


def test_render_mpp_png(monkeypatch, capsys, svs, tmp_path):
    out_path = tmp_path / "view.png"
    code, out, err = run_cli(
        capsys,
        "render",
        str(svs),
        "--box",
        "0,0,1000,1000",
        "--mpp",
        "1.008",
        "-o",
        str(out_path),
    )
    assert code == 0, err
    assert Image.open(out_path).size == (250, 250)
    assert "1.008 µm/px" in out


def test_thumbnail(monkeypatch, capsys, svs, tmp_path):
    out_path = tmp_path / "thumb.jpg"
    code, out, err = run_cli(
        capsys, "thumbnail", str(svs), "--max-side", "300", "-o", str(out_path)
    )
    assert code == 0, err
    img = np.asarray(Image.open(out_path))
    assert img.shape == (200, 300, 3)
    assert not sf.is_label_colour(img).any()


@pytest.mark.parametrize(
    "args,needle",
    [
        (["info", "{missing}"], "not found"),
        (
            ["render", "{svs}", "--box", "9000,0,10,10", "-o", "{tmp}/x.jpg"],
            "lies outside the slide",
        ),
        (["render", "{svs}", "--box", "1,2,3", "-o", "{tmp}/x.jpg"], "needs 4 numbers"),
        (
            ["render", "{svs}", "--box", "0,0,100,100", "--max-side", "99999", "-o", "{tmp}/x.jpg"],
            "max_side",
        ),
        (
            [
                "render",
                "{svs}",
                "--box",
                "0,0,3000,2000",
                "--mpp",
                "0.3",
                "--max-side",
                "500",
                "-o",
                "{tmp}/x.jpg",
            ],
            "the most is 500 px",
        ),
        (
            ["render", "{svs}", "--box", "0,0,10,10", "-o", "{tmp}/x.gifx"],
            "cannot tell the image format",
        ),
        (["thumbnail", "{text}"], "unsupported format"),
    ],
)
def test_user_errors_are_one_line_exit_2(monkeypatch, capsys, svs, tmp_path, args, needle):
    text = tmp_path / "notes.svs"
    text.write_text("not a slide\n")
    args = [a.format(svs=svs, tmp=tmp_path, missing=tmp_path / "nope.svs", text=text) for a in args]
    code, out, err = run_cli(capsys, *args)
    assert code == 2
    assert err.startswith("error:") and needle in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_real_entry_point_subprocess(svs, tmp_path):
    bad = tmp_path / "empty.svs"
    bad.write_bytes(b"")
    proc = subprocess.run(
        [sys.executable, "-c", "from slidescout.cli import main; main()", "info", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "empty" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_info_names_backend_reason_and_channels(monkeypatch, capsys, tmp_path):
    p = sf.make_ome_tiff(tmp_path / "fl.ome.tif", 800, 600, ["DAPI", "CD8", "PanCK"], tile=128)
    code, out, err = run_cli(capsys, "info", str(p))
    assert code == 0, err
    for needle in (
        "ome-tiff",
        "SubIFD pyramid",
        "reading with pyvips",
        "DAPI, CD8, PanCK",
        "DAPI as blue, CD8 as green, PanCK as red",
    ):
        assert needle in out
    code, out, _ = run_cli(capsys, "info", "--json", str(p))
    info = json.loads(out)
    assert info["channel_mapping"] == {"DAPI": "blue", "CD8": "green", "PanCK": "red"}
    assert "tifffile" in info["backend_reason"]
