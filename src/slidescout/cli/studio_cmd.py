"""``slidescout studio DIR`` (the live workspace in the browser) and ``slidescout chat SLIDE``
(the same in the terminal)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import typer

from slidescout.agents.config import AgentConfig
from slidescout.cli.app import app, console, err_console
from slidescout.cli.options import agent_options
from slidescout.cli.paths import ensure_dir
from slidescout.errors import ConfigError
from slidescout.slides import open_slide
from slidescout.studio.chat import run_chat
from slidescout.studio.server import serve
from slidescout.traces.viewer import assets


@app.command("studio")
@agent_options()
def studio(
    folder: Path = typer.Argument(..., help="The folder of slides to work on (read only)."),
    out: Path = typer.Option(
        Path("runs/studio"),
        "-o",
        "--out",
        help="Where each conversation is recorded, one run folder each.",
    ),
    port: int = typer.Option(0, "--port", help="Port to listen on (default: a free one)."),
    host: str = typer.Option(
        "127.0.0.1",
        "--host",
        help="Address to bind; anything but loopback requires the token printed at start.",
    ),
    open_browser: bool = typer.Option(
        True, "--open/--no-browser", help="Open the page in a browser."
    ),
    install: bool = typer.Option(
        True,
        "--install/--no-install",
        help="Install OpenSeadragon with npm on first use (else: a flat thumbnail).",
    ),
    agent: AgentConfig = AgentConfig.model_validate({}),
) -> None:
    """Ask a slide questions in the browser: watch the agent's regions appear as it works, stop it,
    follow up in the same conversation, point it at a region. The page picks model, preset and
    max steps (defaults from these flags); keys come from the environment only."""
    if not folder.is_dir():
        raise ConfigError(f"{folder}: no such folder; give the folder that holds the slides")
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be 0 to 65535, got {port}")
    agent.check()
    ensure_dir(out, "runs folder")
    osd = assets.ensure_openseadragon(
        allow_install=install,
        log=lambda line: err_console.print(line, highlight=False, soft_wrap=True),
    )
    serve(
        folder,
        out,
        agent,
        host=host,
        port=port,
        open_browser=open_browser,
        openseadragon_dir=osd,
        echo=lambda line: console.print(line, highlight=False, soft_wrap=True, markup=False),
    )


@app.command("chat")
@agent_options()
def chat(
    slide: Path = typer.Argument(
        ..., help="A whole-slide image (SVS, NDPI, TIFF...) or a PNG/JPEG."
    ),
    out: Path = typer.Option(
        Path("runs/chat"), "-o", "--out", help="Where the conversation is recorded (a run folder)."
    ),
    agent: AgentConfig = AgentConfig.model_validate({}),
) -> None:
    """Talk to the agent about one slide in the terminal: live step lines, follow-ups, /stop,
    /cost, /save, /region, /options, /new, /quit."""
    agent.check()
    open_slide(slide)  # a bad file is the user's error: say so before anything starts
    ensure_dir(out, "runs folder")
    interactive = sys.stdin.isatty()

    def echo(line: str) -> None:
        console.print(line, highlight=False, soft_wrap=True, markup=False)

    def prompt() -> None:
        console.print("[bold]>[/] ", end="")

    asyncio.run(
        run_chat(slide.resolve(), agent, out, echo=echo, prompt=prompt if interactive else None)
    )
