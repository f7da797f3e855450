"""``slidescout view runs/``: a folder of runs lists every run, and each opens under /runs/<name>/."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient
from test_viewer_report_size import make_big_run

from slidescout.errors import ConfigError
from slidescout.traces.viewer.runs import create_runs_app, find_runs


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    make_big_run(root / "alpha", n_samples=2, side=200)
    make_big_run(root / "group" / "beta", n_samples=3, side=200, seed=1)
    (root / "notes").mkdir()  # not a run: left out
    return root


def test_find_runs(folder: Path) -> None:
    assert find_runs(folder) == ["alpha/run", "group/beta/run"]


def test_home_lists_every_run(folder: Path) -> None:
    client = TestClient(create_runs_app(folder))
    page = client.get("/")
    assert page.status_code == 200 and "2 runs in" in page.text
    assert 'href="runs/alpha/run/"' in page.text and 'href="runs/group/beta/run/"' in page.text
    assert "notes" not in page.text
    runs = {r["name"]: r for r in client.get("/api/runs").json()["runs"]}
    assert runs["alpha/run"]["n_samples"] == 2 and runs["group/beta/run"]["n_samples"] == 3
    assert runs["alpha/run"]["n_correct"] == 2 and runs["alpha/run"]["model"] == "openai:gpt-test"
    assert "content-security-policy" in page.headers


def test_each_run_is_served_below_its_name(folder: Path) -> None:
    client = TestClient(create_runs_app(folder))
    r = client.get("/runs/group/beta/run", follow_redirects=False)
    assert r.status_code in (302, 307) and r.headers["location"] == "/runs/group/beta/run/"
    page = client.get("/runs/group/beta/run/")
    assert (
        page.status_code == 200 and 'src="static/app.js"' in page.text
    )  # relative: resolves below the run
    assert client.get("/runs/group/beta/run/static/app.js").status_code == 200
    run = client.get("/runs/group/beta/run/api/run").json()
    assert run["n_samples"] == 3 and run["runs_home"] == "/"
    stem = run["samples"][0]["trace"]
    sample = client.get(f"/runs/group/beta/run/api/samples/{stem}").json()
    url = sample["steps"][0]["shown"][0]["url"]
    assert url.startswith("/runs/group/beta/run/blobs/") and sample["runs_home"] == "/"
    assert client.get(url).headers["content-type"] == "image/jpeg"


@pytest.mark.parametrize(
    "path",
    [
        "/runs/nope/api/run",
        "/runs/../alpha/run/api/run",
        "/runs/alpha/api/run",
        "/runs/%2e%2e/etc/passwd",
        "/runs/alpha/run/../../notes",
    ],
)
def test_only_listed_runs_are_served(folder: Path, path: str) -> None:
    client = TestClient(create_runs_app(folder))
    r = client.get(path)
    assert r.status_code == 404 or "n_samples" not in r.text


def test_a_folder_without_runs_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    from slidescout.traces.viewer.server import _server

    sock = socket.socket()
    try:
        with pytest.raises(ConfigError, match="neither a run directory nor a folder of runs"):
            _server(tmp_path, sock, None)
    finally:
        sock.close()


def test_a_run_behind_a_symlink_out_of_the_folder_is_neither_listed_nor_served(
    tmp_path: Path,
) -> None:
    root, outside = tmp_path / "served", tmp_path / "outside"
    make_big_run(root / "mine", n_samples=1, side=200)
    make_big_run(outside / "secret", n_samples=1, side=200)
    (root / "link").symlink_to(outside / "secret", target_is_directory=True)
    (root / "linkdir").symlink_to(outside, target_is_directory=True)
    (root / "inner").symlink_to(root / "mine", target_is_directory=True)  # inside: fine
    assert find_runs(root) == ["inner/run", "mine/run"]
    client = TestClient(create_runs_app(root))
    names = {r["name"] for r in client.get("/api/runs").json()["runs"]}
    assert names == {"inner/run", "mine/run"}
    for path in ("/runs/link/run/api/run", "/runs/linkdir/secret/run/api/run"):
        assert client.get(path).status_code == 404
