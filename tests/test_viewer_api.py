"""The viewer's HTTP API over a run directory: rows, traces, blobs, DeepZoom, and what it refuses."""

from __future__ import annotations

import io
import json
import re
import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image
from slidefactory import is_label_colour, is_macro_colour, make_svs
from starlette.testclient import TestClient
from test_viewer_fixtures import SLIDE_H, SLIDE_W, ZOOM_2, build_run

from slidescout.core.trace import SlideRef, Trace
from slidescout.traces.rundir import RunDir
from slidescout.traces.viewer.app import create_app
from slidescout.traces.viewer.dzi import DeepZoom


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build_run(tmp_path_factory.mktemp("viewer"))


@pytest.fixture()
def client(built):
    return TestClient(create_app(built["run"]))


def _key(client, sample="case-1", image=0) -> str:
    return client.get(f"/api/samples/{sample}").json()["images"][image]["key"]


# -- run and samples ------------------------------------------------------------------------------


def test_run_summary_lists_finished_and_running_samples(client):
    d = client.get("/api/run").json()
    rows = {r["sample_id"]: r for r in d["samples"]}
    assert set(rows) == {"case-1", "case-2", "case-3", "set-1"}
    assert rows["case-1"]["correct"] is True and rows["case-1"]["truth"] == "tumour"
    assert rows["case-2"]["correct"] is False and rows["case-2"]["answer"] == "no"
    assert rows["set-1"]["correct"] is True  # eval-style record: predicted / parsed_ok / truth
    assert rows["case-3"]["status"] == "running" and rows["case-3"]["correct"] is None
    assert rows["case-1"]["question"].startswith("Which tissue") and rows["case-1"]["steps"] == 3
    assert (
        d["n_samples"] == 4 and d["n_running"] == 1 and d["n_scored"] == 3 and d["n_correct"] == 2
    )
    assert d["tasks"] == ["medframeqa", "other", "synth"] and d["model"] == "openai:gpt-test"
    assert d["deep_zoom"] is False
    assert client.get("/api/samples").json() == d["samples"]


def test_home_page_and_static_files(client):
    r = client.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/viewer.css").status_code == 200
    assert (
        client.get("/vendor/openseadragon/openseadragon.min.js").status_code == 404
    )  # not installed here


def test_sample_payload_timeline_regions_truth(client):
    d = client.get("/api/samples/case-1").json()
    assert d["sample_id"] == "case-1" and d["status"] == "answered" and d["truth"] == "tumour"
    assert [r["box"] for r in d["regions"]] == [[1000, 800, 2000, 1500], list(ZOOM_2)]
    assert [r["n"] for r in d["regions"]] == [1, 2] and [r["step"] for r in d["regions"]] == [0, 1]
    assert len(d["overlays"]) == 1 and d["overlays"][0]["label"] == "heatmap"
    assert d["truth_regions"] == [{"label": "tumour", "box": [3800, 2400, 1000, 800], "image": 0}]
    steps = d["steps"]
    assert [s["step"] for s in steps] == [0, 1, 2]
    s0 = steps[0]
    assert s0["rethink"]["confidence"] == 0.4 and s0["reasoning"] == [
        "Look at the dense area first."
    ]
    assert (
        s0["calls"][0]["name"] == "slide_zoom"
        and s0["calls"][0]["result"]["images"][0]["region"] == 1
    )
    assert s0["shown"][0]["purpose"] == "overview" and s0["shown"][0]["url"].startswith("/blobs/")
    assert s0["usage"]["input_tokens"] == 1500 and s0["latency_s"] == pytest.approx(1.2)
    assert steps[1]["notes"] == ["context pruned to 4 images"]
    assert steps[2]["answer"]["text"] == "Answer: 1 (tumour)"
    img = d["images"][0]
    assert (img["width"], img["height"]) == (SLIDE_W, SLIDE_H) and img[
        "dzi"
    ] == f"/slides/{img['key']}.dzi"
    assert "path" not in json.dumps(img) or str(img.get("file")) == "case.tiff"
    assert d["row"]["correct"] is True


def test_sample_with_tool_error_and_image_set(client):
    d = client.get("/api/samples/case-2").json()
    assert d["steps"][0]["calls"][0]["result"]["error"].startswith("a box needs")
    s = client.get("/api/samples/set-1").json()
    assert [i["name"] for i in s["images"]] == ["Image 1", "Image 2"]
    assert all(i["dzi"] for i in s["images"]) and s["images"][0]["key"] != s["images"][1]["key"]
    assert s["regions"][0]["image"] == 1 and s["regions"][0]["box"] == [200, 100, 200, 200]


def test_unknown_sample_is_404(client):
    assert client.get("/api/samples/nope").status_code == 404
    assert client.get("/api/samples/..%2Fmanifest").status_code == 404


# -- blobs ------------------------------------------------------------------------------------------


def test_blob_served_with_its_bytes(client, built):
    sha = built["blobs"]["zoom1"]
    r = client.get(f"/blobs/{sha}")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert r.content == (built["run"] / "blobs" / f"{sha}.jpg").read_bytes()
    assert "immutable" in r.headers["cache-control"]
    assert Image.open(io.BytesIO(r.content)).size == (800, 600)


@pytest.mark.parametrize(
    "url",
    [
        "/blobs/" + "0" * 64,
        "/blobs/../manifest.json",
        "/blobs/..%2Fmanifest.json",
        "/blobs/%2e%2e%2fmanifest.json",
        "/blobs/%2Fetc%2Fpasswd",
        "/blobs//etc/passwd",
        "/blobs/manifest",
        "/static/..%2F..%2Fapp.py",
        "/static/%2e%2e/app.py",
        "/slides/..%2F..%2Fslides%2Fcase.tiff.dzi",
        "/slides/%2Ftmp%2Fcase.tiff.dzi",
        "/manifest.json",
        "/results.jsonl",
        "/traces/case-1.json",
    ],
)
def test_traversal_attempts_are_refused(client, url):
    r = client.get(url)
    assert r.status_code in (403, 404), (url, r.status_code)
    assert (
        b'"run_id"' not in r.content
        and b"root:" not in r.content
        and b"def create_app" not in r.content
    )


def test_blob_symlink_out_of_the_run_is_not_served(built, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(built["run"], run)
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(b"secret")
    sha = "a" * 64
    (run / "blobs" / f"{sha}.jpg").symlink_to(secret)
    assert TestClient(create_app(run)).get(f"/blobs/{sha}").status_code == 404


# -- DeepZoom -------------------------------------------------------------------------------------


def test_dzi_descriptor_and_tiles(client):
    key = _key(client)
    r = client.get(f"/slides/{key}.dzi")
    assert r.status_code == 200 and "xml" in r.headers["content-type"]
    root = ET.fromstring(r.text)
    assert (
        root.get("TileSize") == "254"
        and root.get("Overlap") == "1"
        and root.get("Format") == "jpeg"
    )
    size = root.find("{http://schemas.microsoft.com/deepzoom/2008}Size")
    assert (int(size.get("Width")), int(size.get("Height"))) == (SLIDE_W, SLIDE_H)
    dz = DeepZoom(SLIDE_W, SLIDE_H)
    assert dz.max_level == 13
    # an interior tile of the full-resolution level: 254 + 2 x overlap
    t = client.get(f"/slides/{key}_files/13/3_2.jpeg")
    assert t.status_code == 200 and t.headers["content-type"] == "image/jpeg"
    img = np.asarray(Image.open(io.BytesIO(t.content)))
    assert img.shape == (256, 256, 3) and img.std() > 5  # real content, not a blank
    # the first tile has no left/top overlap; the last one is cut by the image edge
    assert Image.open(io.BytesIO(client.get(f"/slides/{key}_files/13/0_0.jpeg").content)).size == (
        255,
        255,
    )
    cols, rows = dz.tile_count(13)
    last = Image.open(
        io.BytesIO(client.get(f"/slides/{key}_files/13/{cols - 1}_{rows - 1}.jpeg").content)
    )
    assert last.size == (SLIDE_W - (cols - 1) * 254 + 1, SLIDE_H - (rows - 1) * 254 + 1)
    # the top of the pyramid: the whole slide in one 1 x 1 pixel; a middle level in one tile
    assert Image.open(io.BytesIO(client.get(f"/slides/{key}_files/0/0_0.jpeg").content)).size == (
        1,
        1,
    )
    assert Image.open(io.BytesIO(client.get(f"/slides/{key}_files/8/0_0.jpeg").content)).size == (
        188,
        125,
    )
    # tiles outside the pyramid
    assert client.get(f"/slides/{key}_files/14/0_0.jpeg").status_code == 404
    assert client.get(f"/slides/{key}_files/13/{cols}_0.jpeg").status_code == 404
    thumb = client.get(f"/slides/{key}_thumb.jpeg")
    assert thumb.status_code == 200 and thumb.headers["x-slide-box"] == f"0,0,{SLIDE_W},{SLIDE_H}"


def test_tiles_match_the_slide(client, built):
    """A full-resolution tile shows the slide's own pixels at its place."""
    from slidescout.slides import open_slide

    key = _key(client)
    tile = np.asarray(
        Image.open(io.BytesIO(client.get(f"/slides/{key}_files/13/10_6.jpeg").content))
    ).astype(int)
    ref = open_slide(built["slide"]).read_level(0, 10 * 254 - 1, 6 * 254 - 1, 256, 256).astype(int)
    assert np.abs(tile - ref).mean() < 8


def test_unreferenced_or_malformed_slide_keys_are_404(client, built, tmp_path):
    assert client.get("/slides/" + "0" * 20 + ".dzi").status_code == 404
    assert client.get("/slides/" + "0" * 20 + "_files/0/0_0.jpeg").status_code == 404
    assert client.get("/slides/case.dzi").status_code == 404
    assert client.get(f"/slides/{built['slide']}.dzi").status_code == 404
    # a slide file on disk that no trace of this run references has no key at all
    other = shutil.copy(built["slide"], tmp_path / "other.tiff")
    keys = {
        i["key"]
        for s in ("case-1", "set-1")
        for i in client.get(f"/api/samples/{s}").json()["images"]
    }
    assert client.app.state.viewer.index.slide_key_for(str(other)) is None
    assert len(keys) == 3


def test_label_and_macro_never_served(tmp_path):
    """An SVS with label and macro images: no tile or thumbnail carries their colours."""
    slide = make_svs(tmp_path / "case.svs", 2048, 1536, with_label=True, with_macro=True)
    run = RunDir.create(tmp_path / "run", {})
    run.write_trace(
        Trace(
            sample_id="s",
            question="q",
            model="m",
            preset="p",
            slide=SlideRef(path=str(slide), width=2048, height=1536),
        )
    )
    c = TestClient(create_app(run.path))
    img = c.get("/api/samples/s").json()["images"][0]
    key = img["key"]
    dz = DeepZoom(2048, 1536)
    for level in (0, 4, 8, dz.max_level - 1):
        cols, rows = dz.tile_count(level)
        for col in range(cols):
            for row in range(rows):
                tile = np.asarray(
                    Image.open(
                        io.BytesIO(c.get(f"/slides/{key}_files/{level}/{col}_{row}.jpeg").content)
                    )
                )
                assert not is_label_colour(tile).any() and not is_macro_colour(tile).any()
    thumb = np.asarray(Image.open(io.BytesIO(c.get(f"/slides/{key}_thumb.jpeg").content)))
    assert not is_label_colour(thumb).any() and not is_macro_colour(thumb).any()
    paths = {getattr(r, "path", "") for r in c.app.routes}
    assert not any(re.search(r"label|macro|associated", p) for p in paths)


# -- a run still being written ----------------------------------------------------------------------


def test_refresh_shows_new_and_finished_samples(built, tmp_path):
    run_path = tmp_path / "run"
    shutil.copytree(built["run"], run_path)
    c = TestClient(create_app(run_path))
    assert c.get("/api/run").json()["n_samples"] == 4
    run = RunDir(run_path)
    # a new sample starts...
    t = run.read_trace("case-3").model_copy(
        update={"sample_id": "case-4", "question": "A new one?"}
    )
    run.write_trace(t)
    d = c.get("/api/run").json()
    assert d["n_samples"] == 5 and d["n_running"] == 2
    assert c.get("/api/samples/case-4").json()["question"] == "A new one?"
    # ...and case-3 finishes
    t3 = run.read_trace("case-3")
    t3.status = "answered"
    t3.answer = "stroma"
    run.write_trace(t3)
    run.append_result(
        {
            "sample_id": "case-3",
            "repeat": 0,
            "task": "other",
            "status": "answered",
            "choice": "stroma",
            "truth": "stroma",
            "n_steps": 1,
            "cost_usd": 0.001,
        }
    )
    rows = {r["sample_id"]: r for r in c.get("/api/run").json()["samples"]}
    assert rows["case-3"]["status"] == "answered" and rows["case-3"]["correct"] is True
    assert c.get("/api/samples/case-3").json()["status"] == "answered"
    # a torn trace (half-written by another process) is reported, not fatal
    (run_path / "traces" / "broken.json").write_text('{"sample_id": "x", "ev')
    d = c.get("/api/run").json()
    assert d["broken"] and d["broken"][0]["file"] == "broken.json" and d["n_samples"] == 5


def test_single_trace_file(built):
    c = TestClient(create_app(built["run"] / "traces" / "case-1.json"))
    d = c.get("/api/run").json()
    assert [r["sample_id"] for r in d["samples"]] == ["case-1"] and d["kind"] == "trace"
    s = c.get("/api/samples/case-1").json()
    assert s["regions"][0]["url"].startswith("/blobs/")
    assert c.get(s["regions"][0]["url"]).status_code == 200


def test_host_header_checked_when_serving(built):
    c = TestClient(
        create_app(built["run"], allowed_hosts=["127.0.0.1", "localhost"]),
        base_url="http://127.0.0.1",
    )
    assert c.get("/api/run").status_code == 200
    assert c.get("/api/run", headers={"host": "evil.example"}).status_code == 400


def test_not_a_run_directory(tmp_path):
    from slidescout.errors import SlidescoutError

    with pytest.raises(SlidescoutError, match="not a run directory"):
        create_app(tmp_path)
    with pytest.raises(SlidescoutError, match="no such"):
        create_app(tmp_path / "missing")
