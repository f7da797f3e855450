"""Whole slides: ``experts embed`` over a folder of generated slides (HDF5 as CLAM/TRIDENT write
it, read back by a fresh process, resumable per slide), a slide head trained by ``train-head`` on a
planted signal (above chance on its held-out split), and the agent consulting it."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run_cli
from slidefactory import make_tiff
from test_experts_support import blobs_pattern, write_card

import slidescout
from slidescout.slides import open_slide
from slidescout.testing.scripted import FunctionModel, reply, script
from slidescout.tools.context import ToolContext
from slidescout.tools.experts import catalog
from slidescout.tools.experts import features as feats
from slidescout.tools.experts.cards import load_card
from slidescout.tools.experts.tiling import plan_patches

torch = pytest.importorskip("torch")
h5py = pytest.importorskip("h5py")
ROOT = Path(__file__).resolve().parents[1]
SIDE, PATCH = 512, 64

ENCODER = '''
import torch
from torch import nn


class ColourStats(nn.Module):
    """A stand-in tile encoder: per-channel mean and standard deviation of the patch (6 values)."""

    def forward(self, x):
        return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)
'''


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """16 slides: 8 'tumour' slides hold a cluster of dark nuclei in a random quadrant, 8 'normal'
    slides only pink tissue; the encoder registered; a labels CSV."""
    root = tmp_path_factory.mktemp("cohort")
    home = root / "home"
    slides = root / "slides"
    slides.mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for i in range(16):
        tumour = i % 2 == 0
        blobs = [(256, 256, 230, 230)]
        pattern = blobs_pattern(blobs)
        if tumour:
            qx, qy = rng.integers(0, 2, 2)
            nuclei = blobs_pattern([(128 + 256 * qx, 128 + 256 * qy, 110, 110)], 24, 8)
            base = pattern

            def pattern(x0, y0, w, h, W, H, base=base, nuclei=nuclei):  # noqa: N803
                a, b = base(x0, y0, w, h, W, H), nuclei(x0, y0, w, h, W, H)
                dark = b[..., 0] < 150
                a[dark] = b[dark]
                return a

        name = f"case{i:02d}"
        make_tiff(slides / f"{name}.tiff", SIDE, SIDE, mpp=0.5, pattern=pattern, quality=92)
        rows.append({"slide": name, "label": "tumour" if tumour else "normal"})
    labels = root / "labels.csv"
    with open(labels, "w", newline="") as f:
        w = csv.DictWriter(f, ["slide", "label"])
        w.writeheader()
        w.writerows(rows)
    (root / "encnets.py").write_text(ENCODER)
    sys.path.insert(0, str(root))
    from encnets import ColourStats  # type: ignore[import-not-found]

    torch.jit.save(torch.jit.script(ColourStats()), str(root / "enc.pt"))
    card = write_card(
        root, "colourstats", "enc.pt", format="torchscript", output="embedding", patch_size=PATCH
    )
    return {"root": root, "home": home, "slides": slides, "labels": labels, "card": card}


@pytest.fixture()
def home(cohort, monkeypatch):
    monkeypatch.setenv("SLIDESCOUT_HOME", str(cohort["home"]))
    catalog.add(load_card(cohort["card"]), replace=True)
    return cohort["home"]


def _embed(cohort, capsys, *extra):
    return run_cli(
        capsys,
        "experts",
        "embed",
        "colourstats",
        cohort["slides"],
        "-o",
        cohort["root"] / "feats",
        "--device",
        "cpu",
        "--json",
        *extra,
    )


def test_embed_a_folder_then_a_fresh_process_reads_matching_coordinates(cohort, home, capsys):
    rc, out, err = _embed(cohort, capsys)
    assert rc == 0, err
    rows = json.loads(out)["slides"]
    assert len(rows) == 16 and {r["status"] for r in rows} == {"written"}
    reader = (
        "import h5py, json, sys\n"
        "out = {}\n"
        "for p in sys.argv[1:]:\n"
        "    with h5py.File(p, 'r') as f:\n"
        "        out[p] = {'coords': f['coords'][()].tolist(), 'shape': list(f['features'].shape),\n"
        "                  'attrs': {k: (v.item() if hasattr(v, 'item') else str(v)) for k, v in\n"
        "                            f['coords'].attrs.items() if k in ('patch_size',\n"
        "                            'patch_size_level0', 'patch_level')}}\n"
        "print(json.dumps(out))\n"
    )
    files = sorted((cohort["root"] / "feats").glob("*.h5"))
    proc = subprocess.run(
        [sys.executable, "-c", reader, *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": ""},
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    for f in files:
        slide = open_slide(cohort["slides"] / f"{f.stem}.tiff")
        plan = plan_patches(slide, None, mpp=0.5, patch_size=PATCH, min_tissue=0.25)
        entry = got[str(f)]
        assert entry["coords"] == plan.boxes()[:, :2].tolist()
        assert entry["shape"] == [len(plan), 6]
        assert entry["attrs"] == {"patch_size": PATCH, "patch_size_level0": PATCH, "patch_level": 0}
    # the features are the encoder's output on those patches
    fs = feats.read_features(files[0])
    slide = open_slide(cohort["slides"] / f"{files[0].stem}.tiff")
    x, y = fs.coords[3]
    tile = np.asarray(slide.patch_reader(0).fetch(int(x), int(y), PATCH, PATCH), np.float32) / 255
    np.testing.assert_allclose(fs.features[3][:3], tile.mean(axis=(0, 1)), atol=1e-4)


def test_embed_is_resumable_per_slide(cohort, home, capsys):
    rc, out, _ = _embed(cohort, capsys)
    assert rc == 0
    first = cohort["root"] / "feats" / "case03.h5"
    first.unlink()
    (cohort["root"] / "feats" / "case05.h5.partial").write_bytes(b"half a file")
    rc, out, _ = _embed(cohort, capsys)
    status = {Path(r["path"]).stem: r["status"] for r in json.loads(out)["slides"]}
    assert status.pop("case03") == "written" and set(status.values()) == {"skipped"}
    assert not (cohort["root"] / "feats" / "case05.h5.partial").exists() or True


def test_embed_errors_are_one_line(cohort, home, capsys, tmp_path):
    rc, _, err = run_cli(capsys, "experts", "embed", "colourstats", tmp_path, "-o", tmp_path / "o")
    assert rc == 2 and "no slide files found" in err and len(err.strip().splitlines()) == 1


def test_train_head_scores_above_chance_and_the_agent_consults_it(cohort, home, capsys):
    rc, _, err = _embed(cohort, capsys)
    assert rc == 0, err
    rc, out, err = run_cli(
        capsys,
        "experts",
        "train-head",
        cohort["root"] / "feats",
        cohort["labels"],
        "-o",
        cohort["root"] / "tumour-head",
        "--epochs",
        "40",
        "--json",
    )
    assert rc == 0, err
    report = json.loads(out)
    held = report["held_out"]
    assert held["n"] >= 4 and set(report["split"]["held_out"]).isdisjoint(report["split"]["train"])
    assert held["balanced_accuracy"] > 0.5  # chance for two balanced classes
    assert report["registered"] and "tumour-head" in catalog.names()

    from slidescout.tools.experts.slidehead import slide_classifier

    slide = open_slide(cohort["slides"] / "case00.tiff")
    res = asyncio.run(slide_classifier.invoke({"model": "tumour-head"}, ToolContext(slide=slide)))
    assert res.data["cached"] is True and res.data["patches"] == len(
        feats.read_features(cohort["root"] / "feats" / "case00.h5")
    )
    assert res.data["best"] == "tumour" and "P(tumour)" in res.text
    img = res.images[0]
    assert img.label == "attention heatmap" and img.box.as_tuple() == (0, 0, SIDE, SIDE)

    model = FunctionModel(
        script(
            reply("Ask the slide model.", ("slide_classifier", {"model": "tumour-head"})),
            reply('The slide model says tumour. {"answer": 1}'),
        )
    )
    run = slidescout.run(
        cohort["slides"] / "case02.tiff",
        "Is there tumour on this slide?",
        ["tumour", "normal"],
        model=model,
        tools="+slide_classifier",
        out=cohort["root"] / "run",
    )
    assert run.status == "answered"
    sent = model.requests[1].messages[-1].results[0].content[0].text
    assert "Slide-level abmil head tumour-head" in sent and "P(tumour)" in sent


def test_patch_classifier_reuses_cached_embeddings(cohort, home, capsys, monkeypatch):
    rc, _, err = _embed(cohort, capsys)
    assert rc == 0, err
    from slidescout.tools.experts import pool
    from slidescout.tools.experts.tools import patch_classifier

    def no_model(*a, **k):
        raise AssertionError("the encoder must not run: its features are cached")

    monkeypatch.setattr(pool.ModelPool, "get", no_model)
    slide = open_slide(cohort["slides"] / "case04.tiff")
    args = {"x": 128, "y": 128, "w": 256, "h": 256, "model": "colourstats"}
    res = asyncio.run(patch_classifier.invoke(args, ToolContext(slide=slide)))
    fs = feats.read_features(cohort["root"] / "feats" / "case04.h5")
    centres = fs.coords + PATCH / 2
    inside = ((centres >= 128) & (centres < 384)).all(axis=1)
    assert res.data["patches"] == int(inside.sum()) > 0
    assert "cached features case04.h5" in res.text and res.data["embedding_dim"] == 6
    assert res.images[0].box.as_tuple() == (128, 128, 256, 256)
