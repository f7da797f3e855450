"""End-to-end: the studio in headless Chromium against the fake OpenAI and Anthropic servers.

A user opens a slide, asks, sees the agent's boxes appear one by one before the answer, reloads
the page mid-run (it reattaches), draws a region hint and asks a follow-up (whose request carries
the first turn and the hint's box), starts a second conversation with another provider in another
tab, closes that tab while it runs, reopens it and stops it (status ``stopped``), and finds both
runs in ``slidescout view``. Every wait is on an event (a page state, or a request the fake server
holds behind a gate), never on a clock. Screenshots go to ``$SLIDESCOUT_SCREENSHOTS`` when set.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from slidefactory import make_tiff

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip

pytestmark = pytest.mark.browser
if not Path(CHROMIUM).exists():
    pytest.skip(
        f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the playwright Python package is not installed"
)

from slidescout.agents.config import AgentConfig  # noqa: E402
from slidescout.core.trace import load_trace  # noqa: E402
from slidescout.studio.server import start_in_thread  # noqa: E402
from slidescout.testing.fake_anthropic import FakeAnthropic  # noqa: E402
from slidescout.testing.fake_openai import FakeOpenAI, Reply, ToolCall  # noqa: E402
from slidescout.traces.viewer import start_in_thread as start_viewer  # noqa: E402
from slidescout.traces.viewer.assets import find_openseadragon  # noqa: E402

OSD = find_openseadragon()
KEYS = {"OPENAI_API_KEY": "sk-fake-studio-openai-0000", "ANTHROPIC_API_KEY": "sk-ant-fake-0000"}
WAIT = 120_000  # ms: a generous bound on a loaded machine; every wait is for an event


def zoom(x: int, y: int, w: int, h: int) -> Reply:
    return Reply(
        text=f"Looking at ({x}, {y}).",
        tool_calls=[ToolCall("slide_zoom", {"x0": x, "y0": y, "w": w, "h": h})],
    )


def shot(page, tmp_path: Path, name: str) -> Path:
    out = Path(os.environ.get("SLIDESCOUT_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.png"
    page.screenshot(path=str(path))
    assert path.stat().st_size > 10_000
    return path


@pytest.fixture()
def world(tmp_path, monkeypatch):
    slides = tmp_path / "slides"
    slides.mkdir()
    make_tiff(slides / "case-07.tiff", 6000, 4000, mpp=0.25, pattern="tissue")
    make_tiff(slides / "case-12.tiff", 4000, 3000, mpp=0.5, pattern="gradient")
    gates = [threading.Event() for _ in range(3)]
    openai = FakeOpenAI(
        [
            zoom(600, 500, 1600, 1200),
            zoom(2600, 900, 1200, 900),
            zoom(4100, 2400, 800, 600),
            Reply(text='Tumour.\n```json\n{"answer": 1}\n```', gate=gates[0]),
            Reply(text="The largest nucleus is about 14 µm across."),
        ]
    )
    anthropic = FakeAnthropic(
        [
            Reply(
                text="Start top left.",
                tool_calls=[ToolCall("slide_zoom", {"x0": 0, "y0": 0, "w": 2000, "h": 1500})],
            ),
            Reply(text="never sent", gate=gates[1]),
        ]
    )
    openai.start()
    anthropic.start()
    for k, v in KEYS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("OPENAI_BASE_URL", openai.base_url)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", anthropic.base_url)
    config = AgentConfig(
        model="openai:gpt-5", preset="scout", max_steps=8, price_in=1.25, price_out=10.0
    )
    srv = start_in_thread(slides, tmp_path / "runs", config, openseadragon_dir=OSD)
    yield {
        "url": srv.url,
        "runs": tmp_path / "runs",
        "openai": openai,
        "anthropic": anthropic,
        "gates": gates,
    }
    for g in gates:
        g.set()
    srv.stop()
    openai.stop()
    anthropic.stop()


@pytest.fixture()
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def new_page(ctx):
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.errors = errors  # type: ignore[attr-defined]
    return page


def wait_until(condition, page, bound_ms: int = WAIT) -> None:
    """Wait for something outside the page (a request the fake server received)."""
    waited = 0
    while not condition():
        assert waited < bound_ms, "timed out"
        page.wait_for_timeout(50)
        waited += 50


def test_studio_end_to_end(browser, world, tmp_path):
    ctx = browser.new_context(viewport={"width": 1440, "height": 900})
    page = new_page(ctx)
    page.goto(world["url"])
    page.get_by_role("link", name="Open case-07.tiff").click()
    page.wait_for_selector("#slide-view[data-mode]")
    shot(page, tmp_path, "studio-slide")

    # ask: the regions appear as they are requested, before the answer (held by the fake server)
    page.get_by_role("textbox", name="Question").fill("What is the diagnosis?")
    page.locator("details summary", has_text="Options").click()
    page.get_by_label("Options", exact=True).fill("Tumour\nNormal")
    page.get_by_role("button", name="Ask").click()
    page.wait_for_function(
        "() => document.querySelectorAll('#slide-view .ov-region').length >= 2", timeout=WAIT
    )
    assert "#/session/" in page.url
    page.reload()  # a reloaded page reattaches to the live run
    page.wait_for_function(
        "() => document.querySelectorAll('#slide-view .ov-region').length >= 3", timeout=WAIT
    )
    timeline = page.get_by_role("list", name="Timeline")
    assert timeline.locator("li.step.is-answer").count() == 0  # no answer yet
    assert page.get_by_role("button", name="Stop").is_enabled()
    numbers = page.locator("#slide-view .ov-region .ov-num").all_inner_texts()
    assert sorted(numbers) == ["1", "2", "3"]
    shot(page, tmp_path, "studio-running")
    world["gates"][0].set()
    page.wait_for_selector("li.step.is-answer", timeout=WAIT)
    page.wait_for_function(
        "() => !document.querySelector('#stop') || document.querySelector('#stop').disabled",
        timeout=WAIT,
    )
    assert timeline.locator("li.step").count() >= 4
    assert "Tumour" in timeline.inner_text()
    shot(page, tmp_path, "studio-answered")
    # the keyboard moves through the steps
    timeline.locator("li.step").first.focus()
    page.keyboard.press("ArrowDown")
    assert page.evaluate("() => document.activeElement.matches('li.step[data-entry=\"1\"]')")

    # draw a region hint on the slide, then a follow-up in the same conversation
    canvas = page.locator("#slide-view .openseadragon-canvas").first
    bb = canvas.bounding_box()
    page.get_by_role("button", name="Draw region").click()
    x0, y0 = bb["x"] + bb["width"] * 0.35, bb["y"] + bb["height"] * 0.4
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x0 + 60, y0 + 40, steps=4)
    page.mouse.move(x0 + 120, y0 + 90, steps=4)
    page.mouse.up()
    page.wait_for_function("() => document.querySelector('#region').value !== ''", timeout=WAIT)
    region = [int(v) for v in page.locator("#region").input_value().split(",")]
    assert page.locator("#slide-view .ov-hint").count() == 1
    follow = page.get_by_role("button", name="Follow up")
    page.get_by_role("textbox", name="Question").fill("Measure the largest nucleus in this region.")
    shot(page, tmp_path, "studio-hint")
    follow.click()
    page.wait_for_function(
        "() => document.querySelectorAll('li.step.is-answer').length === 2", timeout=WAIT
    )
    body = json.dumps(world["openai"].requests[-1].body)
    assert "What is the diagnosis?" in body and "Tumour." in body  # the first turn is carried
    assert f"x={region[0]}, y={region[1]}" in body and f"{region[2]} x {region[3]}" in body
    shot(page, tmp_path, "studio-follow-up")

    # a second conversation, another provider, another tab; the tab is closed while it runs
    tab = new_page(ctx)
    tab.goto(world["url"])
    tab.get_by_role("link", name="Open case-12.tiff").click()
    tab.wait_for_selector("#slide-view[data-mode]")
    tab.get_by_label("Model").fill("anthropic:claude-sonnet-4-5")
    tab.get_by_role("textbox", name="Question").fill("Is there tumour here?")
    tab.get_by_role("button", name="Ask").click()
    tab.wait_for_function(
        "() => document.querySelectorAll('#slide-view .ov-region').length >= 1", timeout=WAIT
    )
    second = tab.url
    tab.close()
    # the fake server holds the second model call: the run goes on without a page
    anthropic = world["anthropic"]
    tab = new_page(ctx)
    tab.goto(second)
    tab.wait_for_function(
        "() => document.querySelectorAll('#slide-view .ov-region').length >= 1", timeout=WAIT
    )
    wait_until(lambda: len(anthropic.requests) >= 2, tab)  # the call the server holds
    assert tab.get_by_role("button", name="Stop").is_enabled()
    tab.get_by_role("button", name="Stop").click()
    tab.wait_for_selector("li.end.stopped", timeout=WAIT)
    assert "stopped" in tab.locator("#run-status").inner_text()
    shot(tab, tmp_path, "studio-stopped")

    # the first conversation was not disturbed, and no key reached any page
    assert page.locator("li.step.is-answer").count() == 2
    for p in (page, tab):
        assert not any(v in p.content() for v in KEYS.values())
        assert p.errors == []  # type: ignore[attr-defined]

    # both runs are normal run folders: traces with their statuses, found by `view`
    runs = sorted(d for d in world["runs"].iterdir() if d.is_dir())
    assert len(runs) == 2
    statuses = sorted(load_trace(t).status for r in runs for t in (r / "traces").glob("*.json"))
    assert statuses == ["answered", "answered", "stopped"]
    viewer = start_viewer(world["runs"])
    try:
        page.goto(viewer.url)
        text = page.locator("table.runs").inner_text()
        assert all(r.name in text for r in runs)
    finally:
        viewer.stop()
    ctx.close()
