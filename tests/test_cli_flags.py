"""One flag for one concept, everywhere, and help texts shown as written.

The tests walk every command of the CLI: an option's concept is its parameter name (with the
synonyms below), and a concept must be spelled the same way in every command, while one spelling
must never name two concepts. Old spellings stay as hidden aliases."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import all_commands, plain_help, run_cli

# parameter names that mean the same thing as another one
SYNONYMS = {
    "quality": "jpeg_quality",
    "as_json": "json",
    "json_out": "json",
    "slide_seed": "data_seed",
    "output": "out",
    "out_file": "out",
    "list_runs": "list",
}
# how some concepts must be spelled (every command that has them)
CANON = {
    "out": ("--out", "-o"),
    "json": ("--json",),
    "jpeg_quality": ("--jpeg-quality",),
    "data_seed": ("--data-seed",),
    "concurrency": ("--concurrency", "-c"),
}
# spellings of those concepts that must not come back as visible flags
WRONG = {"--quality", "--output", "--out-dir", "--outdir", "--slide-seed", "--as-json", "-q"}


def _options() -> list[tuple[str, Any]]:
    """(command path, option) for every visible option of every command."""
    return [
        (path, p)
        for path, cmd in all_commands().items()
        if not hasattr(cmd, "list_commands")
        for p in cmd.params
        if p.param_type_name == "option" and not p.hidden
    ]


def _concept(param: Any) -> str:
    return SYNONYMS.get(param.name, param.name)


def test_every_concept_has_one_spelling_everywhere() -> None:
    spellings: dict[str, dict[tuple[str, ...], list[str]]] = defaultdict(lambda: defaultdict(list))
    for path, p in _options():
        spellings[_concept(p)][tuple(sorted(p.opts))].append(path)
    two = {c: dict(s) for c, s in spellings.items() if len(s) > 1}
    assert two == {}, f"one concept, two spellings: {two}"


def test_no_spelling_names_two_concepts() -> None:
    concepts: dict[str, set[str]] = defaultdict(set)
    for _, p in _options():
        for flag in p.opts:
            concepts[flag].add(_concept(p))
    shared = {f: c for f, c in concepts.items() if len(c) > 1}
    assert shared == {}, f"one spelling, two concepts: {shared}"


def test_canonical_spellings_and_no_wrong_ones() -> None:
    bad = []
    for path, p in _options():
        concept = _concept(p)
        if concept in CANON and tuple(sorted(p.opts)) != tuple(sorted(CANON[concept])):
            bad.append(f"{path}: {'/'.join(p.opts)} for {concept}")
        bad += [f"{path}: {flag}" for flag in p.opts if flag in WRONG]
    assert bad == []


def test_commands_that_write_a_file_take_o(tmp_path: Path) -> None:
    writers = ["render", "thumbnail", "ask", "demo", "report", "report-html", "compare"]
    writers += ["experts run", "data manifest"] + [f"eval {d}" for d in ("file", "synth")]
    commands = all_commands()
    for path in writers:
        flags = {f for p in commands[path].params for f in p.opts}
        assert {"-o", "--out"} <= flags, path


def test_version_has_a_short_flag(capsys) -> None:
    for flag in ("-V", "--version"):
        rc, out, _ = run_cli(capsys, flag)
        assert rc == 0 and out.startswith("slidescout ")


def _parse(path: str, args: list[str]) -> dict[str, Any]:
    cmd = all_commands()[path]
    return dict(cmd.make_context(path, args).params)


def test_old_spellings_still_work_as_hidden_aliases(tmp_path: Path) -> None:
    assert _parse("render", ["s.svs", "--box", "0,0,9,9", "--quality", "50"])["quality"] == 50
    assert _parse("thumbnail", ["s.svs", "--jpeg-quality", "60"])["jpeg_quality"] == 60
    assert _parse("synth", [str(tmp_path), "--seed", "3"])["seed"] == 3
    assert _parse("synth", [str(tmp_path), "--data-seed", "4"])["data_seed"] == 4
    assert _parse("demo", ["--slide-seed", "5"])["slide_seed"] == 5
    assert _parse("demo", ["--data-seed", "6"])["data_seed"] == 6


# ---- help texts: square brackets are text, not Rich markup ----------------------------------


def _bracketed(cmd: Any) -> list[str]:
    """The short ``[...]`` segments of a command's help and its options' help, as written."""
    texts = [cmd.help] + [getattr(p, "help", None) for p in cmd.params]
    found = []
    for text in texts:
        plain = " ".join(plain_help(text).split())
        found += [m for m in re.findall(r"\[[^\[\]]{1,60}\]", plain)]
    return found


def test_every_help_text_shows_its_brackets(capsys) -> None:
    checked = 0
    for path, cmd in all_commands().items():
        segments = _bracketed(cmd)
        if not segments:
            continue
        rc, out, err = run_cli(capsys, *path.split(), "--help", width=400)
        assert rc == 0, err
        shown = " ".join(re.sub(r"[│╭╮╰╯─]", " ", out).split())
        missing = [s for s in segments if " ".join(s.split()) not in shown]
        assert missing == [], f"{path} --help swallowed {missing}"
        checked += len(segments)
    assert checked >= 5  # the defaults of the agent flags, the pricing file's table name...


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["ask", "--help"], '[openai."MODEL"]'),
        (["demo", "--help"], "[default: expert]"),
    ],
)
def test_known_bracket_texts_are_shown(capsys, args: list[str], text: str) -> None:
    rc, out, _ = run_cli(capsys, *args, width=400)
    assert rc == 0 and text in " ".join(re.sub(r"[│╭╮╰╯─]", " ", out).split())


# ---- the --json flags that were missing ------------------------------------------------------


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from test_viewer_report_size import make_big_run

    root = tmp_path_factory.mktemp("runs")
    make_big_run(root / "a", n_samples=2, side=200)
    make_big_run(root / "b", n_samples=1, side=200, seed=1)
    return root


def test_trace_show_json_prints_each_trace(capsys, runs: Path) -> None:
    import json

    rc, out, err = run_cli(capsys, "trace", "show", runs / "a" / "run", "--json")
    assert rc == 0, err
    traces = [json.loads(line) for line in out.splitlines()]
    assert len(traces) == 2 and all(t["sample_id"] and "events" in t for t in traces)


def test_view_list_json_and_table(capsys, runs: Path) -> None:
    import json

    rc, out, err = run_cli(capsys, "view", runs, "--list", "--json")
    assert rc == 0, err
    rows = {r["name"]: r for r in json.loads(out)["runs"]}
    assert rows["a/run"]["n_samples"] == 2 and rows["b/run"]["n_samples"] == 1
    rc, out, _ = run_cli(capsys, "view", runs / "a" / "run", "--list")
    assert rc == 0 and "1 run(s) in" in out and "openai:gpt-test" in out
    rc, _, err = run_cli(capsys, "view", runs, "--json")
    assert rc == 2 and "--json goes with --list" in err


def test_data_status_json(capsys, tmp_path: Path) -> None:
    import json

    rc, out, err = run_cli(
        capsys, "data", "status", "multipathqa", "--to", tmp_path, "--tasks", "gtex", "--json"
    )
    assert rc == 0, err
    data = json.loads(out)
    assert data["root"] == str(tmp_path) and data["slides"]["present"] == 0
    assert data["slides"]["missing"] > 0 and data["runnable"] == 0
    assert [t["task"] for t in data["tasks"]] == ["gtex"]
