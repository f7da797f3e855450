"""The top-level commands: which module defines each one, and the line ``slidescout --help`` shows.

``slidescout --help`` reads this table instead of importing every command module (those pull the
agents, the evaluation runner, the expert runtime, ...), and a command's module is imported only
when that command runs or shows its own help. ``tests/test_cli_start.py`` checks that the table
names every command the modules register, with the same first line of help, and nothing else.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["COMMANDS", "CommandEntry"]


class CommandEntry(NamedTuple):
    modules: tuple[str, ...]  # under ``slidescout.cli``: a group's commands may come from several
    summary: str  # the first paragraph of the command's help


def _entry(modules: str, summary: str) -> CommandEntry:
    return CommandEntry(tuple(modules.split()), summary)


# In the order ``slidescout --help`` lists them.
COMMANDS: dict[str, CommandEntry] = {
    "info": _entry(
        "slides_cmd",
        "Show a slide's format, size, pyramid levels, resolution and associated image names.",
    ),
    "render": _entry("slides_cmd", "Render a level-0 box of a slide to an image file."),
    "thumbnail": _entry("slides_cmd", "Write the slide overview (never the label or macro image)."),
    "synth": _entry(
        "synth_cmd",
        "Generate synthetic H&E slides with lesions visible only at high magnification, "
        "and questions.",
    ),
    "ask": _entry(
        "agent_cmd",
        "Ask a question about a slide; prints the answer, a rationale and where the trace went.",
    ),
    "demo": _entry(
        "agent_cmd",
        "Offline demo: generate a synthetic slide and question, run the expert planner, show "
        "answer and truth.",
    ),
    "lookup": _entry(
        "knowledge_cmd", "Consult the knowledge base the way the agent's lookup tool does."
    ),
    "report": _entry(
        "eval_cmd",
        "Print a run's score tables again, and optionally write plots or an HTML report.",
    ),
    "compare": _entry(
        "eval_cmd",
        "Put runs side by side: score per task with intervals, and the paired difference from "
        "the first.",
    ),
    "judge": _entry(
        "eval_cmd",
        "Grade the rationales of a run's answers with an LLM judge (writes RUN/judge.jsonl).",
    ),
    "view": _entry(
        "view_cmd",
        "Serve a local web viewer: the samples of a run (or every run of a folder), and each "
        "trace over its slide.",
    ),
    "report-html": _entry(
        "view_cmd",
        "Write one self-contained HTML file (images embedded, downscaled to fit --max-mb) that "
        "opens offline.",
    ),
    "studio": _entry(
        "studio_cmd",
        "Ask a slide questions in the browser: watch the agent's regions appear as it works, stop "
        "it, follow up in the same conversation, point it at a region. The page picks model, "
        "preset and max steps (defaults from these flags); keys come from the environment only.",
    ),
    "chat": _entry(
        "studio_cmd",
        "Talk to the agent about one slide in the terminal: live step lines, follow-ups, /stop, "
        "/cost, /save, /region, /options, /new, /quit.",
    ),
    "mcp": _entry(
        "mcp_cmd",
        "Serve the agent's tools (navigation, experts, lookup, plugins) over MCP for a folder "
        "of slides.",
    ),
    "trace": _entry("agent_cmd", "Inspect traces."),
    "tools": _entry("tools_cmd", "List and inspect tools (built-in and plugins)."),
    "experts": _entry(
        "experts_cmd experts_run_cmd experts_slide_cmd",
        "Register and list expert models (checkpoints with a model card).",
    ),
    "kb": _entry("knowledge_cmd", "Manage the knowledge base used by the lookup tool."),
    "eval": _entry(
        "eval_cmd", "Score an agent on a benchmark (MultiPathQA, MedFrameQA, SynthPath)."
    ),
    "data": _entry(
        "data_cmd", "Get benchmark slides: fetch (resumable, verified), status, GDC manifest."
    ),
}
