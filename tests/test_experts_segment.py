"""Segmentation experts: tiled inference with overlap, stitching checked against a hand-stitched
direct forward pass, HoVer-Net-style decoding, measurements, the ``segment`` tool, MCP and CLI."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap

import numpy as np
import pytest
from slidefactory import make_tiff
from test_experts_support import blobs_pattern, write_card
from typer.testing import CliRunner

import slidescout.cli.experts_cmd  # noqa: F401  (registers the commands)
from slidescout.cli.app import app
from slidescout.core.types import Box
from slidescout.errors import ToolError
from slidescout.slides import open_slide
from slidescout.tools.context import ToolContext
from slidescout.tools.experts import catalog, decoders
from slidescout.tools.experts.cards import load_card
from slidescout.tools.experts.checks import check_model
from slidescout.tools.experts.loading import load_runner
from slidescout.tools.experts.pool import ModelPool
from slidescout.tools.experts.segment import run_segmentation

torch = pytest.importorskip("torch")
pytest.importorskip("skimage")

EVERY, RADIUS = 32, 12  # purple nuclei on a 32 px grid, radius 12 px, at 0.5 µm/px
REGION = Box(64, 64, 448, 448)  # 14 x 14 whole nuclei
P, OVERLAP = 64, 16


@pytest.fixture(scope="module")
def nuclei_slide(tmp_path_factory):
    path = make_tiff(
        tmp_path_factory.mktemp("seg") / "nuclei.tiff",
        640,
        640,
        mpp=0.5,
        quality=95,
        pattern=blobs_pattern([(320, 320, 600, 600)], nuclei_every=EVERY, radius=RADIUS),
    )
    return open_slide(path)


def unet():
    from torch import nn

    class TinyUNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.enc = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
            self.down = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU())
            self.up = nn.Upsample(scale_factor=2, mode="nearest")
            self.dec = nn.Conv2d(24, 3, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            e = self.enc(x)
            return self.dec(torch.cat([e, self.up(self.down(e))], dim=1))

    torch.manual_seed(3)
    return TinyUNet().eval()


NUCLEI_NET = '''
import torch
from torch import nn


class DarkNuclei(nn.Module):
    """np: dark pixels are nuclei; hv: the x and y slopes of the brightness smoothed by a Gaussian
    (sigma 4 px), squashed to -1..1 and kept where np says nucleus (0 elsewhere): they run from -1
    to 1 across a dark disc as HoVer-Net's maps do; tp: a random 1x1 conv."""

    def __init__(self, types: int = 2, k: float = 20.0):
        super().__init__()
        self.np_head = nn.Conv2d(3, 2, 1)
        self.hv_head = nn.Conv2d(3, 2, 17, padding=8, padding_mode="replicate", bias=False)
        self.tp_head = nn.Conv2d(3, types, 1)
        with torch.no_grad():
            self.np_head.weight.zero_()
            self.np_head.weight[1] = -k / 3
            self.np_head.bias.copy_(torch.tensor([0.0, 0.55 * k]))
            u = torch.arange(-8, 9, dtype=torch.float32)
            g = torch.exp(-(u[None, :] ** 2 + u[:, None] ** 2) / 32)
            self.hv_head.weight[0] = (u[None, :] * g / 3).expand(3, 17, 17)
            self.hv_head.weight[1] = (u[:, None] * g / 3).expand(3, 17, 17)

    def forward(self, x):
        np_logits = self.np_head(x)
        nucleus = torch.sigmoid(np_logits[:, 1:2] - np_logits[:, :1])
        hv = torch.tanh(self.hv_head(x) / 20) * nucleus
        return {"np": np_logits, "hv": hv, "tp": self.tp_head(x)}
'''


def hand_stitch(slide, plan, forward, channels):
    """Every patch read at level 0 and run alone; each canvas pixel from the patch whose centre is
    nearest (independent of the runtime's core-trimming code)."""
    s = P - OVERLAP
    reader = slide.patch_reader(0)
    ox, oy = (round(v) for v in plan.origin)
    outs = {}
    for r in range(plan.rows):
        for c in range(plan.cols):
            tile = reader.fetch(ox + c * s, oy + r * s, P, P)
            x = torch.from_numpy(np.ascontiguousarray(tile)).permute(2, 0, 1)[None].float() / 255
            with torch.no_grad():
                outs[r, c] = forward(x)[0].numpy()
    side_y, side_x = (plan.rows - 1) * s + P, (plan.cols - 1) * s + P
    canvas = np.zeros((channels, side_y, side_x), np.float32)
    for yy in range(side_y):
        r = int(np.clip(round((yy + 0.5 - P / 2) / s), 0, plan.rows - 1))
        for c in range(plan.cols):
            x0 = c * s + (P - s) // 2 if c else 0
            x1 = c * s + P - (P - s) // 2 if c < plan.cols - 1 else side_x
            canvas[:, yy, x0:x1] = outs[r, c][:, yy - r * s, x0 - c * s : x1 - c * s]
    return canvas


def test_mask_card_matches_hand_stitched_unet(tmp_path, nuclei_slide):
    model = unet()
    torch.jit.save(torch.jit.script(model), str(tmp_path / "unet.pt"))
    path = write_card(
        tmp_path,
        "unet",
        "unet.pt",
        format="torchscript",
        output="mask",
        patch_size=P,
        overlap=OVERLAP,
        labels=["background", "tumour", "stroma"],
        background="background",
    )
    card = load_card(path)
    assert check_model(card).output_width == 3
    seg = run_segmentation(nuclei_slide, card, REGION, device="cpu", batch_size=5)
    assert (seg.plan.rows, seg.plan.cols) == (9, 9) and seg.box == REGION
    want = hand_stitch(nuclei_slide, seg.plan, model, 3).argmax(axis=0)
    assert seg.classes.shape == want.shape == (448, 448)
    assert (seg.classes == want).mean() > 0.999  # 1.0 here; argmax ties may differ in the last bit
    s = seg.summary()
    areas = {k: v["area_um2"] for k, v in s["classes"].items()}
    counts = np.bincount(want.ravel(), minlength=3)
    for i, lab in enumerate(["background", "tumour", "stroma"]):
        assert areas[lab] == pytest.approx(counts[i] * 0.25, rel=0.01, abs=1)
    assert sum(areas.values()) == pytest.approx(448 * 448 * 0.25, rel=1e-5)
    over = seg.overlay(max_side=300)
    assert (
        over.image.shape == (300, 300, 3)
        and "tumour" in over.legend
        and "background" not in over.legend
    )


@pytest.fixture()
def nuclei_card(tmp_path, monkeypatch):
    pkg = tmp_path / "labnets"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "hover.py").write_text(textwrap.dedent(NUCLEI_NET))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("labnets", None)
    sys.modules.pop("labnets.hover", None)
    from labnets.hover import DarkNuclei  # type: ignore[import-not-found]

    torch.manual_seed(5)
    net = DarkNuclei().eval()
    torch.save(net.state_dict(), tmp_path / "hover.pth")
    path = write_card(
        tmp_path,
        "darknuclei",
        "hover.pth",
        format="state_dict",
        architecture="labnets.hover:DarkNuclei",
        output="instances",
        decoder="hovernet",
        labels=["epithelial", "lymphocyte"],
        patch_size=P,
        overlap=OVERLAP,
    )
    return net, load_card(path)


def test_instances_card_stitches_decodes_and_measures(nuclei_slide, nuclei_card):
    net, card = nuclei_card
    seg = run_segmentation(nuclei_slide, card, REGION, device="cpu", batch_size=7)

    def forward(x):
        y = net(x)
        return torch.cat([y["np"], y["hv"], y["tp"]], dim=1)

    maps = hand_stitch(nuclei_slide, seg.plan, forward, 6)
    fg = decoders.softmax(maps[:2], axis=0)[1]
    want = decoders.hovernet_instances(fg, maps[2], maps[3])
    assert int(want.max()) == 14 * 14  # every painted nucleus, none cut at a patch border
    assert int(seg.instances.max()) == 14 * 14
    assert (seg.instances > 0).sum() == (want > 0).sum()
    s = seg.summary()
    assert s["count"] == 196
    assert s["analysed_mm2"] == pytest.approx(448 * 448 * 0.25 / 1e6)
    assert s["density_per_mm2"] == pytest.approx(196 / (448 * 448 * 0.25 / 1e6), rel=1e-3)
    assert s["tissue_mm2"] == pytest.approx(
        s["analysed_mm2"], rel=0.02
    )  # all of it is (pink) tissue
    assert s["density_per_mm2_tissue"] == pytest.approx(s["density_per_mm2"], rel=0.02)
    disc = np.pi * RADIUS**2 * 0.25  # µm²
    m = s["morphometry"]
    assert m["mean_area_um2"] == pytest.approx(disc, rel=0.15)
    assert m["mean_eccentricity"] < 0.4 and m["mean_solidity"] > 0.9
    assert sum(s["types"].values()) == 196
    types = decoders.majority_type(want, maps[4:].argmax(axis=0))
    assert sorted(np.bincount(types, minlength=2).tolist()) == sorted(s["types"].values())


def test_hovernet_decoder_splits_touching_nuclei():
    yy, xx = np.mgrid[0:60, 0:80].astype(np.float32)
    fg = np.zeros((60, 80), np.float32)
    h = np.zeros_like(fg)
    v = np.zeros_like(fg)
    for cx in (28, 50):  # two discs of radius 12 whose centres are 22 px apart: they overlap
        d = ((xx - cx) ** 2 + (yy - 30) ** 2) <= 144
        mine = d & ((xx < 39) if cx == 28 else (xx >= 39))
        fg[mine] = 1
        h[mine] = (xx[mine] - cx) / 12
        v[mine] = (yy[mine] - 30) / 12
    from scipy import ndimage as ndi

    assert ndi.label(fg > 0.5)[0].max() == 1  # one connected blob
    labels = decoders.hovernet_instances(fg, h, v)
    assert labels.max() == 2
    assert labels[30, 20] != labels[30, 58] and labels[30, 20] > 0 and labels[30, 58] > 0
    assert decoders.foreground_instances(fg).max() == 2


def test_segment_tool_mcp_and_cli(tmp_path, nuclei_slide, nuclei_card, monkeypatch):
    monkeypatch.setenv("SLIDESCOUT_HOME", str(tmp_path / "home"))
    _, card = nuclei_card
    catalog.add(card)
    from slidescout.tools.experts.model_tools import segment
    from slidescout.tools.registry import ToolRegistry

    assert "segment" in ToolRegistry(plugins=False).names()
    ctx = ToolContext(slide=nuclei_slide, device="cpu")
    res = asyncio.run(
        segment.invoke({"x": 64, "y": 64, "w": 448, "h": 448, "model": "darknuclei"}, ctx)
    )
    assert res.data["count"] == 196 and "196 nuclei in 0.0502 mm²" in res.text
    assert (
        res.images[0].label == "segmentation overlay"
        and "epithelial" in res.data["overlay"]["legend"]
    )
    from slidescout.tools.experts.segment import plan_segmentation

    with pytest.raises(
        ToolError,
        match=r"choose a box of at most 160 x 160 level-0 pixels, e.g. \(240,240,160,160\)",
    ):
        plan_segmentation(nuclei_slide, card, Box(0, 0, 640, 640), max_side=200)
    with pytest.raises(ToolError, match="is a logits model, not a segmentation model"):
        run_segmentation(
            nuclei_slide,
            load_card(write_card(tmp_path, "cls", "hover.pth", format="torchscript", labels=["a"])),
            REGION,
        )
    out = tmp_path / "overlay.png"
    result = CliRunner().invoke(
        app,
        [
            "experts",
            "run",
            "darknuclei",
            str(nuclei_slide.path),
            "--box",
            "64,64,448,448",
            "--device",
            "cpu",
            "--out",
            str(out),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["segmentation"]["count"] == 196 and out.is_file()


async def test_segment_tool_is_served_over_mcp(tmp_path, nuclei_slide, nuclei_card, monkeypatch):
    pytest.importorskip("mcp")
    from mcp import Client

    from slidescout.tools.mcp_server import SlidescoutMCP

    monkeypatch.setenv("SLIDESCOUT_HOME", str(tmp_path / "home"))
    catalog.add(nuclei_card[1])
    server = SlidescoutMCP(nuclei_slide.path.parent)
    async with Client(server.server) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        assert "segment" in tools and "zero_shot" in tools
        res = await client.call_tool(
            "segment",
            {
                "slide_id": nuclei_slide.path.name,
                "x": 64,
                "y": 64,
                "w": 448,
                "h": 448,
                "model": "darknuclei",
            },
        )
    assert not res.is_error
    assert res.structured_content["data"]["count"] == 196


def test_map_cards_are_checked(tmp_path):
    model = unet()
    torch.jit.save(torch.jit.script(model), str(tmp_path / "unet.pt"))
    path = write_card(
        tmp_path,
        "unet4",
        "unet.pt",
        format="torchscript",
        output="mask",
        patch_size=P,
        labels=["a", "b", "c", "d"],
    )
    from slidescout.errors import ConfigError

    with pytest.raises(ConfigError, match="returns 3 channels but the card needs 4"):
        check_model(load_card(path))
    runner = load_runner(load_card(path), "cpu", optimize=False)
    assert runner(np.zeros((2, P, P, 3), np.uint8)).shape == (2, 3, P, P)
    assert ModelPool  # the pool loads map models like any other


def test_patch_classifier_points_segmentation_models_to_segment(
    tmp_path, nuclei_slide, nuclei_card, monkeypatch
):
    from slidescout.tools.experts.tools import patch_classifier

    monkeypatch.setenv("SLIDESCOUT_HOME", str(tmp_path / "home"))
    catalog.add(nuclei_card[1])
    with pytest.raises(ToolError, match="has output 'instances'; use the segment tool for it"):
        asyncio.run(
            patch_classifier.invoke(
                {"x": 0, "y": 0, "w": 100, "h": 100, "model": "darknuclei"},
                ToolContext(slide=nuclei_slide, device="cpu"),
            )
        )
    listed = CliRunner().invoke(app, ["experts", "list", "--json"])
    assert json.loads(listed.output)["experts"][0]["status"] == "ok"


def star_net(rays: int = 8, radius: float = 12.0):
    from torch import nn

    class StarNuclei(nn.Module):
        """Object probability peaks at the centre of dark discs (a 25 px mean of darkness); every
        ray is ``radius`` long."""

        def __init__(self) -> None:
            super().__init__()
            self.rays = rays
            self.radius = radius

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            dark = 0.55 - x.mean(dim=1, keepdim=True)
            smooth = torch.nn.functional.avg_pool2d(
                dark, 25, stride=1, padding=12, count_include_pad=False
            )
            prob = torch.sigmoid(smooth * 60.0)
            dist = torch.full((x.shape[0], self.rays, x.shape[2], x.shape[3]), self.radius)
            return torch.cat([prob, dist], dim=1)

    return StarNuclei().eval()


def test_stardist_decoder_on_synthetic_maps():
    yy, xx = np.mgrid[0:80, 0:120].astype(np.float32)
    prob = np.zeros((80, 120), np.float32)
    centres = [(20, 20), (20, 60), (60, 40), (60, 90)]
    for cy, cx in centres:
        prob = np.maximum(prob, np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 50))
    dist = np.full((16, 80, 120), 10.0, np.float32)
    pts, pr, d = decoders.stardist_candidates(prob, dist, slice(0, 80), slice(0, 120))
    assert sorted(map(tuple, pts.tolist())) == sorted(centres)
    labels = decoders.star_instances(prob.shape, pts, pr, d)
    assert labels.max() == 4
    area = np.bincount(labels.ravel())[1:]
    assert np.all(np.abs(area - np.pi * 100) < 0.1 * np.pi * 100)  # a 16-gon of radius 10 ≈ a disc


def test_stardist_card_through_the_runtime(tmp_path, nuclei_slide):
    model = star_net()
    torch.jit.save(torch.jit.script(model), str(tmp_path / "star.pt"))
    path = write_card(
        tmp_path,
        "star",
        "star.pt",
        format="torchscript",
        output="instances",
        decoder="stardist",
        rays=8,
        patch_size=P,
        overlap=OVERLAP,
    )
    card = load_card(path)
    assert check_model(card).output_width == 9
    seg = run_segmentation(nuclei_slide, card, REGION, device="cpu")
    s = seg.summary()
    assert s["count"] == 196  # each painted nucleus once, whichever patch its centre fell in
    octagon = 0.5 * 8 * 12**2 * np.sin(2 * np.pi / 8) * 0.25  # µm²
    assert s["morphometry"]["mean_area_um2"] == pytest.approx(octagon, rel=0.15)
    maps = hand_stitch(nuclei_slide, seg.plan, model, 9)
    pts, pr, d = decoders.stardist_candidates(maps[0], maps[1:], slice(0, 448), slice(0, 448))
    want = decoders.star_instances((448, 448), pts, pr, d)
    assert int(want.max()) == 196 and ((want > 0) == (seg.instances > 0)).mean() > 0.999


def label_net():
    from torch import nn

    class PatchLabels(nn.Module):
        """Instance ids per patch from the dark pixels: the id of each 32 px cell of the *patch*
        (so one nucleus gets a different id in each patch, and in one patch whenever it crosses a
        cell line); the runtime must merge the pieces that meet across patch borders."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            dark = (x.mean(dim=1, keepdim=True) < 0.55).float()
            h, w = x.shape[2], x.shape[3]
            ys = torch.arange(h).view(1, 1, h, 1) // 32
            xs = torch.arange(w).view(1, 1, 1, w) // 32
            return dark * (ys * 8 + xs + 1).float()

    return PatchLabels().eval()


def test_label_map_card_merges_pieces_across_patch_borders(tmp_path, nuclei_slide):
    from skimage.measure import label

    from slidescout.tools.experts.segment import Stitcher, plan_segmentation

    torch.jit.save(torch.jit.script(label_net()), str(tmp_path / "ids.pt"))
    # patches 64 px apart (overlap 0) starting on the 32 px nucleus grid: the per-patch cells hold
    # whole nuclei, so the network's ids are right and nothing needs merging
    card = load_card(
        write_card(
            tmp_path,
            "ids",
            "ids.pt",
            format="torchscript",
            output="instances",
            decoder="label_map",
            patch_size=P,
            overlap=OVERLAP,
        )
    )
    aligned = load_card(
        write_card(
            tmp_path,
            "ids0",
            "ids.pt",
            format="torchscript",
            output="instances",
            decoder="label_map",
            patch_size=P,
            overlap=0,
        )
    )
    assert run_segmentation(nuclei_slide, aligned, REGION, device="cpu").summary()["count"] == 196
    # true per-patch instance ids (connected components of each patch) on a grid whose borders cut
    # through nuclei: the seams must rejoin every cut nucleus, and nothing else
    box = Box(REGION.x + 8, REGION.y + 8, 424, 424)
    plan = plan_segmentation(nuclei_slide, card, box)
    stitch = Stitcher(plan, card)
    reader = nuclei_slide.patch_reader(0)
    ox, oy = (round(v) for v in plan.origin)
    s = card.card.stride
    for i, (r, c) in enumerate(plan.cells):
        tile = reader.fetch(ox + int(c) * s, oy + int(r) * s, P, P)
        ids = label(tile.mean(axis=2) < 0.55 * 255).astype(np.float32)
        stitch.add(i, ids[None, None])
    merged = stitch.merged_ids((0, stitch.shape[0], 0, stitch.shape[1]))
    truth = label(stitch.maps[0] > 0)
    assert len(np.unique(stitch.ids)) - 1 > truth.max() + 20  # before merging: many cut pieces
    assert (
        merged.max() == truth.max() > 196
    )  # every nucleus whole (and the partial ones at the edge)
    assert ((merged > 0) == (truth > 0)).all()
    ids = decoders.merge_at_seams(np.array([[1, 2, 0], [3, 4, 0]]), seam_rows=[1], seam_cols=[1])
    assert ids.max() == 1 and ids[0, 2] == 0
