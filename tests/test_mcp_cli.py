"""``slidescout mcp``: the command, the loopback rule, and streamable HTTP on 127.0.0.1."""

from __future__ import annotations

import subprocess
import sys

import anyio
import pytest
from typer.testing import CliRunner

pytest.importorskip("mcp")

from mcp import Client  # noqa: E402
from slidefactory import make_tiff  # noqa: E402

from slidescout.cli import app  # noqa: E402
from slidescout.errors import ConfigError  # noqa: E402
from slidescout.tools.mcp_server import SlidescoutMCP  # noqa: E402
from slidescout.tools.mcp_server.transports import (  # noqa: E402
    bound_port,
    check_host,
    http_server,
    is_loopback,
)

runner = CliRunner()


def test_mcp_help():
    result = runner.invoke(app, ["mcp", "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for option in ("--transport", "--host", "--port", "--tools", "--allow-remote"):
        assert option in result.output


def test_mcp_refuses_a_missing_folder_and_a_remote_host(tmp_path):
    result = runner.invoke(app, ["mcp", str(tmp_path / "nope")])
    assert isinstance(result.exception, ConfigError) and "no such folder" in str(result.exception)
    result = runner.invoke(app, ["mcp", str(tmp_path), "--transport", "http", "--host", "0.0.0.0"])
    assert isinstance(result.exception, ConfigError) and "--allow-remote" in str(result.exception)


def test_loopback_rule():
    for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"):
        assert is_loopback(host) and check_host(host, allow_remote=False) is False
    for host in ("0.0.0.0", "192.168.1.5", "example.org", "::"):
        assert not is_loopback(host)
        with pytest.raises(ConfigError, match="not a loopback"):
            check_host(host, allow_remote=False)
        assert check_host(host, allow_remote=True) is True


def test_cli_start_up_imports_neither_mcp_nor_torch():
    code = (
        "import sys, slidescout.cli; "
        "bad = [m for m in ('mcp', 'torch', 'uvicorn') if m in sys.modules]; "
        "assert not bad, bad"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.timeout(60)
async def test_streamable_http_on_loopback(tmp_path):
    make_tiff(tmp_path / "a.tiff", 1200, 900, mpp=0.5)
    mcp_app = SlidescoutMCP(tmp_path)
    uv = http_server(mcp_app.server, host="127.0.0.1", port=0)
    async with anyio.create_task_group() as tg:
        tg.start_soon(uv.serve)
        with anyio.fail_after(120):
            while not uv.started:
                await anyio.sleep(0.02)
        url = f"http://127.0.0.1:{bound_port(uv)}/mcp"
        try:
            with anyio.fail_after(120):
                async with Client(url) as client:
                    names = [t.name for t in (await client.list_tools()).tools]
                    assert "slide_zoom" in names and "list_slides" in names
                    result = await client.call_tool(
                        "slide_zoom", {"slide_id": "a.tiff", "x0": 0, "y0": 0, "w": 600, "h": 450}
                    )
                    assert not result.is_error
                    assert [b.type for b in result.content][:2] == ["text", "image"]
                    bad = await client.call_tool("overview", {"slide_id": "../a.tiff"})
                    assert bad.is_error
        finally:
            uv.should_exit = True


def test_start_up_line_lists_every_name_a_tool_accepts():
    from types import SimpleNamespace

    from slidescout.cli.mcp_cmd import accepted_names

    plugin = SimpleNamespace(name="my-plugin/tissue_fraction", short_name="tissue_fraction")
    builtin = SimpleNamespace(name="slide_zoom", short_name="slide_zoom")
    app = SimpleNamespace(
        entries={
            "slide_zoom": SimpleNamespace(tool=builtin),
            "my-plugin__tissue_fraction": SimpleNamespace(tool=plugin),
        }
    )
    assert accepted_names(app) == [
        "slide_zoom",
        "my-plugin__tissue_fraction (or my-plugin/tissue_fraction, tissue_fraction)",
    ]


def test_start_up_line_says_how_many_links_were_skipped(tmp_path, capsys, monkeypatch):
    from cli_helpers import run_cli

    served, outside = tmp_path / "served", tmp_path / "outside"
    served.mkdir()
    outside.mkdir()
    make_tiff(outside / "a.tiff", 400, 300)
    (served / "a.tiff").symlink_to(outside / "a.tiff")  # a slide link out of the folder
    (served / "more").symlink_to(outside, target_is_directory=True)  # a linked folder
    monkeypatch.setattr(anyio, "run", lambda *a, **k: None)  # print the start-up line only
    rc, _, err = run_cli(capsys, "mcp", served)
    assert rc == 0, err
    assert "0 slide(s) in" in err and "(2 symbolic link(s) skipped" in err
