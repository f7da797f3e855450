"""The self-contained HTML report, the front-end assets set-up, and the CLI commands."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import socket
import stat
import threading
import time
import urllib.request

import pytest
from test_viewer_fixtures import build_run
from typer.testing import CliRunner

from slidescout.errors import SlidescoutError
from slidescout.traces.viewer import assets
from slidescout.traces.viewer.report import write_report


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build_run(tmp_path_factory.mktemp("viewer-report"))


@pytest.fixture(scope="module")
def report(built, tmp_path_factory):
    return write_report(built["run"], tmp_path_factory.mktemp("out") / "report.html")


def test_report_is_self_contained(report):
    text = report.read_text(encoding="utf-8")
    assert text.startswith("<!doctype html>")
    # nothing to fetch: no http(s) URL anywhere, no src/href other than data URIs and in-page anchors
    assert not re.search(r"https?://", text)
    for m in re.finditer(r'\b(?:src|href)\s*=\s*"([^"]*)"', text):
        assert m.group(1).startswith(("data:", "#")), m.group(1)[:80]
    assert not re.search(r"<link\b|@import|url\(", text)
    assert "Content-Security-Policy" in text and "default-src 'none'" in text


def _stored_images(text: str) -> dict[str, bytes]:
    block = re.search(
        r'<script type="application/json" id="report-images">(.*?)</script>', text, re.S
    )
    assert block is not None
    return {k: base64.b64decode(v.split(",", 1)[1]) for k, v in json.loads(block.group(1)).items()}


def test_report_embeds_the_images_the_model_saw(report, built):
    from PIL import Image

    text = report.read_text(encoding="utf-8")
    stored = _stored_images(text)
    for name in ("overview", "zoom1", "zoom2", "heat", "crop"):
        sha = built["blobs"][name]
        assert sha in stored and f'data-img="{sha}"' in text, name
        side = max(Image.open(io.BytesIO(stored[sha])).size)
        if name in ("heat", "crop"):  # small enough: the stored bytes as they are
            assert hashlib.sha256(stored[sha]).hexdigest() == sha
        else:  # 800-1000 px: downscaled to the embedding side
            assert side == 512, (name, side)
    # plus one thumbnail per slide file (not a blob), stored once: case.tiff (3 samples), 2 frames (1 each)
    thumbs = [k for k in stored if k.startswith("t")]
    assert sorted(text.count(f'data-img="{k}"') for k in thumbs) == [1, 1, 3]
    assert "@@img" not in text


def test_report_content(report):
    text = report.read_text(encoding="utf-8")
    for s in (
        "Which tissue is shown?",
        "Is there necrosis?",
        "Which frame shows the lesion?",
        "Still thinking about this one?",
        "dense cellular area, maybe tumour",
        "slide_zoom",
        "a box needs a positive width and height",
        "Answer: 1 (tumour)",
        "badge-ok",
        "badge-bad",
    ):
        assert s in text, s
    assert text.count('class="report-sample"') == 4
    assert text.count('<g class="sv-region" data-n="') == 4  # 2 zooms + 1 running + 1 crop
    assert text.count('<g class="sv-truth"><rect') == 1
    assert 'data-box="3900,2500,800,600"' in text


def test_report_of_one_trace_and_limit(built, tmp_path):
    one = write_report(built["run"] / "traces" / "case-2.json", tmp_path / "one.html")
    assert one.read_text().count('class="report-sample"') == 1
    lim = write_report(built["run"], tmp_path / "lim.html", limit=2)
    t = lim.read_text()
    assert t.count('class="report-sample"') == 2 and "Showing the first 2 of 4" in t


def test_report_without_slide_files_uses_the_overview(built, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(built["run"], run)
    text = write_report(run, tmp_path / "r.html").read_text()
    # the slide still exists here; now hide it: the overview blob the model saw takes its place
    moved = tmp_path / "elsewhere.tiff"
    shutil.move(built["slide"], moved)
    try:
        text2 = write_report(run, tmp_path / "r2.html").read_text()
    finally:
        shutil.move(moved, built["slide"])
    assert text2.count('class="sv-img"') >= 3 and text2 != text


# -- CLI -----------------------------------------------------------------------------------------------


def test_cli_report_html(built, tmp_path):
    from slidescout.cli import app

    out = tmp_path / "r.html"
    res = CliRunner().invoke(app, ["report-html", str(built["run"]), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert out.is_file() and "wrote" in res.output


def test_cli_view_errors_are_one_line(tmp_path):
    from slidescout.cli import app

    res = CliRunner().invoke(app, ["view", str(tmp_path / "missing")])
    assert isinstance(res.exception, SlidescoutError) and "no such run directory" in str(
        res.exception
    )
    res = CliRunner().invoke(app, ["view"])
    assert isinstance(res.exception, SlidescoutError)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_view_serves_on_loopback(built, monkeypatch):
    """``slidescout view RUN --port N`` prints its address and answers there (and opens nothing)."""
    from slidescout.cli import app
    from slidescout.traces.viewer import server

    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", lambda url: opened.append(url))
    monkeypatch.setenv("SLIDESCOUT_VIEWER_ASSETS", "/nonexistent")
    monkeypatch.setattr(assets, "WEB_DIR", assets.WEB_DIR.parent / "no-web")  # as if npm never ran
    started: list = []
    real = server._server

    def capture(*a, **kw):
        srv = real(*a, **kw)
        started.append(srv)
        return srv

    monkeypatch.setattr(server, "_server", capture)
    port = _free_port()
    runner = CliRunner()
    result: dict = {}
    t = threading.Thread(
        target=lambda: result.update(
            r=runner.invoke(app, ["view", str(built["run"]), "--port", str(port), "--no-install"])
        ),
        daemon=True,
    )
    t.start()
    for _ in range(300):
        if started and getattr(started[0], "started", False):
            break
        time.sleep(0.02)
    assert started, result.get("r") and (result["r"].output, result["r"].exception)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/run", timeout=5) as r:
            assert b'"n_samples":4' in r.read()
    finally:
        started[0].should_exit = True
        t.join(10)
    assert f"http://127.0.0.1:{port}/" in result["r"].output
    assert opened == []
    assert started[0].config.app is not None


def test_bind_reports_a_busy_port():
    from slidescout.traces.viewer.server import bind

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        with pytest.raises(SlidescoutError, match="cannot listen"):
            bind("127.0.0.1", s.getsockname()[1])


# -- npm assets ------------------------------------------------------------------------------------


def test_package_json_pins_openseadragon():
    import json

    pkg = json.loads((assets.WEB_DIR / "package.json").read_text())
    lock = json.loads((assets.WEB_DIR / "package-lock.json").read_text())
    version = pkg["dependencies"]["openseadragon"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    assert lock["packages"]["node_modules/openseadragon"]["version"] == version
    assert lock["packages"]["node_modules/openseadragon"]["integrity"].startswith("sha512-")


def test_assets_found_from_override(tmp_path, monkeypatch):
    (tmp_path / "openseadragon.min.js").write_text("/* osd */")
    monkeypatch.setenv("SLIDESCOUT_VIEWER_ASSETS", str(tmp_path))
    assert assets.find_openseadragon() == tmp_path


def test_assets_install_without_npm_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setattr(assets.shutil, "which", lambda name: None)
    with pytest.raises(assets.AssetsError) as exc:
        assets.install(tmp_path / "cache")
    msg = str(exc.value)
    assert "npm is not installed" in msg and "\n" not in msg
    monkeypatch.setenv("SLIDESCOUT_VIEWER_ASSETS", "/nonexistent")
    monkeypatch.setattr(assets, "WEB_DIR", tmp_path / "web-missing")
    lines: list[str] = []
    (tmp_path / "web-missing").mkdir()
    (tmp_path / "web-missing" / "package-lock.json").write_text("{}")
    assert assets.ensure_openseadragon(log=lines.append) is None
    assert any("static thumbnails" in ln for ln in lines)


def test_assets_install_failure_and_success_with_a_fake_npm(tmp_path):
    bad = tmp_path / "npm-bad"
    bad.write_text("#!/bin/sh\necho 'npm ERR! network request failed' >&2\nexit 1\n")
    bad.chmod(bad.stat().st_mode | stat.S_IEXEC)
    with pytest.raises(assets.AssetsError, match="network request failed"):
        assets.install(tmp_path / "c1", npm=str(bad))
    good = tmp_path / "npm-good"
    good.write_text(
        "#!/bin/sh\nmkdir -p node_modules/openseadragon/build/openseadragon/images\n"
        "echo '/* osd */' > node_modules/openseadragon/build/openseadragon/openseadragon.min.js\n"
    )
    good.chmod(good.stat().st_mode | stat.S_IEXEC)
    found = assets.install(tmp_path / "c2", npm=str(good))
    assert (found / "openseadragon.min.js").is_file() and str(found).startswith(
        str(tmp_path / "c2")
    )
    assert not list(tmp_path.glob(".install-*"))
