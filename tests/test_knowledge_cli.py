"""CLI: ``slidescout kb add/list/remove/refresh`` and ``slidescout lookup``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import slidescout.cli.knowledge_cmd  # noqa: F401  (registers the commands)
from slidescout.cli.app import app
from slidescout.errors import ConfigError, ToolError
from slidescout.tools.knowledge import lookup

runner = CliRunner()


@pytest.fixture
def refs(tmp_path: Path) -> Path:
    folder = tmp_path / "refs"
    folder.mkdir()
    (folder / "notes.md").write_text(
        "# Notes\n\n## Zebra tumor\n\nZebra tumors show quokka nuclei.\n", encoding="utf-8"
    )
    (folder / "extra.txt").write_text("Wombat granules are a made-up finding.\n", encoding="utf-8")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 nothing else")
    return folder


def test_kb_add_reports_counts_and_skipped_files(refs):
    result = runner.invoke(app, ["kb", "add", str(refs)])
    assert result.exit_code == 0, result.output
    assert "indexed 2 file(s), 2 chunk(s)" in result.stdout
    assert "1 skipped" in result.stdout
    assert "broken.pdf" in result.stderr
    again = runner.invoke(app, ["kb", "add", str(refs)])
    assert "indexed 0 file(s), 0 chunk(s)" in again.stdout and "2 unchanged" in again.stdout


def test_kb_list_shows_sources_and_chunk_counts(refs):
    runner.invoke(app, ["kb", "add", str(refs)])
    result = runner.invoke(app, ["kb", "list"])
    assert result.exit_code == 0, result.output
    assert (
        "notes.md" in result.stdout
        and "gleason.md" in result.stdout
        and "chunk(s)" in result.stdout
    )
    as_json = json.loads(runner.invoke(app, ["kb", "list", "--json"]).stdout)
    by_name = {s["name"]: s for s in as_json["sources"]}
    assert by_name["notes.md"]["chunks"] == 1 and by_name["gleason.md"]["root"] == "starter"
    assert as_json["roots"] == [str(refs.resolve())]


def test_kb_remove_and_refresh(refs):
    runner.invoke(app, ["kb", "add", str(refs)])
    (refs / "new.md").write_text("## New\n\nCapybara cells.\n", encoding="utf-8")
    refreshed = runner.invoke(app, ["kb", "refresh"])
    assert "indexed 1 file(s)" in refreshed.stdout
    removed = runner.invoke(app, ["kb", "remove", str(refs)])
    assert removed.exit_code == 0 and "removed 3 file(s)" in removed.stdout
    assert "notes.md" not in runner.invoke(app, ["kb", "list"]).stdout


def test_lookup_prints_the_same_text_the_tool_gives(refs):
    runner.invoke(app, ["kb", "add", str(refs)])
    result = runner.invoke(app, ["lookup", "features of lung adenocarcinoma"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == lookup("features of lung adenocarcinoma").text.strip()
    search = runner.invoke(app, ["lookup", "quokka nuclei", "-k", "2"])
    assert "[1] notes.md § Zebra tumor" in search.stdout
    data = json.loads(runner.invoke(app, ["lookup", "ISUP grade for Gleason 4+3", "--json"]).stdout)
    assert data["kind"] == "graph" and data["data"]["gleason"]["grade_group"] == 3
    assert data["hits"][0]["citation"] == "gleason.md § ISUP grade groups"


def test_lookup_with_an_explicit_index_and_the_toy_embedder(tmp_path, refs):
    index = tmp_path / "custom.sqlite"
    assert (
        runner.invoke(
            app, ["kb", "add", str(refs), "--index", str(index), "--embedder", "hashing"]
        ).exit_code
        == 0
    )
    result = runner.invoke(
        app, ["lookup", "wombat", "--index", str(index), "--embedder", "hashing", "--json"]
    )
    data = json.loads(result.stdout)
    assert data["hits"][0]["source"] == "extra.txt" and data["hits"][0]["dense_rank"] is not None


def test_user_errors_surface_as_slidescout_errors(tmp_path):
    missing = runner.invoke(app, ["kb", "add", str(tmp_path / "missing")])
    assert missing.exit_code != 0 and isinstance(missing.exception, ConfigError)
    assert "not found" in str(missing.exception)
    empty = runner.invoke(app, ["lookup", "  "])
    assert isinstance(empty.exception, ToolError)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32", "utf-8-sig"])
def test_kb_add_decodes_by_byte_order_mark(tmp_path, encoding):
    """A UTF-16 file was 'indexed' as text full of NULs and never found (issue 26)."""
    folder = tmp_path / "bom"
    folder.mkdir()
    text = "## Okapi tumour\n\nOkapi tumours show ßtriped nüclei.\n"
    data = text.encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data  # Python writes no BOM for an explicit byte order
    (folder / "notes.txt").write_bytes(data)
    assert runner.invoke(app, ["kb", "add", str(folder)]).exit_code == 0
    result = lookup("okapi tumour nuclei")
    assert result.kind == "search" and result.hits[0].source == "notes.txt"
    assert "ßtriped nüclei" in result.text


def test_kb_add_refuses_utf16_without_a_byte_order_mark(tmp_path):
    folder = tmp_path / "nobom"
    folder.mkdir()
    (folder / "notes.txt").write_bytes("Okapi tumours show striped nuclei.\n".encode("utf-16-le"))
    result = runner.invoke(app, ["kb", "add", str(folder)])
    assert "indexed 0 file(s)" in result.stdout and "1 skipped" in result.stdout
    assert "without a byte-order mark" in result.stderr


def test_user_files_appear_in_the_sources_line_by_name(refs):
    runner.invoke(app, ["kb", "add", str(refs)])
    result = lookup("zebra tumor quokka nuclei")
    assert result.hits[0].source == "notes.md"
    sources = result.text.rsplit("\n", 1)[-1]
    assert sources.startswith("Sources: [1] notes.md (your file)")
