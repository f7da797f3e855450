"""``slidescout data fetch|status|manifest multipathqa`` against a local fake GDC/GTEx server."""

from __future__ import annotations

import csv
import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from cli_helpers import run_cli
from slidefactory import make_svs, make_tiff

from slidescout.errors import DatasetError
from slidescout.eval import load_multipathqa
from slidescout.eval.datasets import SlideFinder
from slidescout.eval.fetch import (
    FetchConfig,
    FolderLock,
    RetryPolicy,
    default_csv,
    fetch_slides,
    human_bytes,
    plan_slides,
)
from slidescout.eval.fetch import runner as fetch_runner
from slidescout.eval.fetch.retry import retry_after_seconds
from slidescout.testing.fake_gdc import FakeSlideServer

FAST = ["--retry-wait", "0.01", "--no-progress"]


@pytest.fixture(scope="module")
def slide_bytes(tmp_path_factory) -> list[bytes]:
    """Four small real slides (Aperio-style SVS and a generic TIFF), as bytes."""
    d = tmp_path_factory.mktemp("fetch-slides")
    out = []
    for i, size in enumerate([(700, 500), (640, 480), (600, 520)]):
        out.append(
            make_svs(d / f"s{i}.svs", *size, with_label=False, with_macro=False).read_bytes()
        )
    out.append(make_tiff(d / "g.tiff", 512, 384, mpp=0.5, pattern="tissue").read_bytes())
    return out


@pytest.fixture()
def tcga(slide_bytes):
    """The first four TCGA slides of the shipped question file, the first three served."""
    items = plan_slides(default_csv(), "tcga", 4)
    with FakeSlideServer() as srv:
        for it, data in zip(items[:3], slide_bytes, strict=False):
            srv.add_gdc(it.remote_id, data, file_name=it.name.replace(".svs", ".0000-uuid.svs"))
        yield srv, items


def test_fetch_resumes_refetches_retries_and_second_run_fetches_nothing(
    tcga, slide_bytes, tmp_path, monkeypatch, capsys
) -> None:
    srv, items = tcga
    a, b, c = (it.remote_id for it in items[:3])
    srv.fault("data", a, "drop")  # connection dropped halfway
    srv.fault("data", b, "corrupt")  # wrong md5 once
    srv.fault("data", c, "429", "500")
    srv.fault("files", c, "500")
    dest = tmp_path / "slides"
    code, out, err = run_cli(
        capsys,
        "data",
        "fetch",
        "multipathqa",
        "--tasks",
        "tcga",
        "--limit",
        "3",
        "--to",
        dest,
        "--gdc-url",
        srv.gdc_url,
        *FAST,
    )
    assert code == 0, err
    for it, data in zip(items[:3], slide_bytes, strict=False):
        got = dest / "tcga" / it.name
        assert hashlib.md5(got.read_bytes()).hexdigest() == hashlib.md5(data).hexdigest()
        assert not (dest / "tcga" / (it.name + ".part")).exists()
    # resumed, not restarted: one full request, then one Range request from where the drop left off
    seen_a = srv.seen("data", a)
    assert [r.status for r in seen_a] == [200, 206]
    assert seen_a[0].range is None
    offset = int(seen_a[1].range.removeprefix("bytes=").rstrip("-"))
    assert 0 < offset < len(slide_bytes[0])
    # the wrong md5 was fetched once more, in full
    assert [(r.status, r.range) for r in srv.seen("data", b)] == [(200, None), (200, None)]
    # 429 and 500 were retried (data and files endpoints)
    assert [r.status for r in srv.seen("data", c)] == [429, 500, 200]
    assert [r.status for r in srv.seen("files", c)] == [500, 200]
    received = len(slide_bytes[0]) + 2 * len(slide_bytes[1]) + len(slide_bytes[2])  # b came twice
    assert (
        f"3 fetched, 0 already present, 0 failed; {human_bytes(received)} fetched into {dest}"
        in out
    )
    # a second run asks nothing and fetches nothing
    n = len(srv.requests)
    code, out, err = run_cli(
        capsys,
        "data",
        "fetch",
        "multipathqa",
        "--tasks",
        "tcga",
        "--limit",
        "3",
        "--to",
        dest,
        "--gdc-url",
        srv.gdc_url,
        *FAST,
    )
    assert code == 0, err
    assert len(srv.requests) == n
    assert f"0 fetched, 3 already present, 0 failed; 0 B fetched into {dest}" in out


def test_a_slide_that_cannot_be_had_exits_non_zero_with_one_line(
    tcga, tmp_path, monkeypatch, capsys
) -> None:
    srv, items = tcga
    srv.fault("data", items[1].remote_id, "404")  # the data endpoint refuses: no retry
    code, out, err = run_cli(
        capsys,
        "data",
        "fetch",
        "multipathqa",
        "--tasks",
        "tcga",
        "--limit",
        "4",
        "--to",
        tmp_path,
        "--gdc-url",
        srv.gdc_url,
        *FAST,
    )
    assert code != 0
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: 2 of 4 slides could not be fetched: ")
    assert f"{items[1].name}: HTTP 404 Not Found from the GDC data endpoint" in err
    assert len(srv.seen("data", items[1].remote_id)) == 1  # a 404 is not retried
    assert len(srv.seen("files", items[3].remote_id)) == 1
    assert f"{items[3].name}: HTTP 404 Not Found from the GDC files endpoint" in out
    assert (tmp_path / "tcga" / items[0].name).is_file() and (
        tmp_path / "tcga" / items[2].name
    ).is_file()
    assert "Traceback" not in out + err


def test_status_counts_what_eval_runs(tcga, tmp_path, monkeypatch, capsys) -> None:
    srv, items = tcga
    code, _, err = run_cli(
        capsys,
        "data",
        "fetch",
        "multipathqa",
        "--tasks",
        "tcga",
        "--limit",
        "3",
        "--to",
        tmp_path,
        "--gdc-url",
        srv.gdc_url,
        *FAST,
    )
    assert code == 0, err
    code, out, err = run_cli(
        capsys, "data", "status", "multipathqa", "--tasks", "tcga", "--to", tmp_path
    )
    assert code == 0, err
    load = load_multipathqa(default_csv(), slides_dir=tmp_path, tasks="tcga")
    assert len(load.samples) == 3
    assert f"3 of 221 questions can run with the slides under {tmp_path}" in out
    row = next(line for line in out.splitlines() if line.startswith("│ tcga "))
    assert [c.strip() for c in row.split("│")[1:-1]] == ["tcga", "221", "3", "218", "0", "221", "3"]
    # a truncated slide is damaged (its size is remembered from the files endpoint)
    victim = tmp_path / "tcga" / items[0].name
    victim.write_bytes(victim.read_bytes()[:100])
    code, out, _ = run_cli(
        capsys, "data", "status", "multipathqa", "--tasks", "tcga", "--to", tmp_path
    )
    assert "1 damaged" in out and f"damaged {victim}: 100 bytes, expected" in out
    # eval prints the same count, and runs those questions
    from slidescout.testing.fake_openai import FakeOpenAI

    victim.unlink()
    with FakeOpenAI(auto_turns=0, auto_answer='{"answer": 1}') as fake:
        code, out, err = run_cli(
            capsys,
            "eval",
            "multipathqa",
            "--slides",
            tmp_path,
            "--tasks",
            "tcga",
            "-m",
            "openai:fake-vlm",
            "--base-url",
            fake.base_url,
            "--no-progress",
            "-o",
            tmp_path / "run",
        )
    assert code == 0, err
    assert f"2 of 221 questions can run with the slides under {tmp_path}" in out
    assert "multipathqa: 2 samples (tcga 2)" in out


def test_gtex_size_and_slide_checks(slide_bytes, tmp_path, monkeypatch, capsys) -> None:
    items = plan_slides(default_csv(), "gtex", 2)
    with FakeSlideServer() as srv:
        srv.add_gtex(items[0].remote_id, slide_bytes[3])
        srv.add_gtex(items[1].remote_id, b"II*\x00 not a slide at all" * 50)
        srv.fault("gtex", items[0].remote_id, "drop")
        code, out, err = run_cli(
            capsys,
            "data",
            "fetch",
            "multipathqa",
            "--tasks",
            "gtex",
            "--limit",
            "2",
            "--to",
            tmp_path,
            "--gtex-url",
            srv.gtex_url,
            *FAST,
        )
        gets = [r for r in srv.seen("gtex", items[0].remote_id) if r.method == "GET"]
        assert [r.status for r in gets] == [200, 206]
        assert (
            len([r for r in srv.seen("gtex", items[1].remote_id) if r.method == "GET"]) == 2
        )  # fetched again once
    assert code != 0
    assert (tmp_path / "gtex" / items[0].name).read_bytes() == slide_bytes[3]
    assert not (tmp_path / "gtex" / items[1].name).exists()
    assert err.startswith(
        f"error: 1 of 2 slides could not be fetched: {items[1].name}: the file does not open as a slide"
    )
    assert "again after fetching it a second time" in err


class FakeKaggle:
    """The two calls slidescout makes on ``kaggle``'s API; the file comes back zipped, as Kaggle does."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.calls: list[tuple[str, str]] = []

    def competition_download_file(
        self, competition: str, file_name: str, path: str, quiet: bool = True
    ) -> None:
        self.calls.append((competition, file_name))
        name = Path(file_name).name
        with zipfile.ZipFile(Path(path) / f"{name}.zip", "w") as z:
            z.writestr(name, self.data)


def test_panda_through_kaggle_or_one_line_without_it(
    slide_bytes, tmp_path, monkeypatch, capsys
) -> None:
    items = plan_slides(default_csv(), "panda", 1)
    fake = FakeKaggle(slide_bytes[3])
    summary = fetch_slides(items, FetchConfig(root=tmp_path / "a", kaggle=lambda: fake))
    assert [o.status for o in summary.outcomes] == ["fetched"]
    assert fake.calls == [
        ("prostate-cancer-grade-assessment", f"train_images/{items[0].remote_id}")
    ]
    assert (tmp_path / "a" / "panda" / items[0].name).read_bytes() == slide_bytes[3]

    monkeypatch.setitem(sys.modules, "kaggle", None)  # import fails as when it is not installed
    code, out, err = run_cli(
        capsys,
        "data",
        "fetch",
        "multipathqa",
        "--tasks",
        "panda",
        "--limit",
        "2",
        "--to",
        tmp_path / "b",
        *FAST,
    )
    assert code != 0 and len(err.strip().splitlines()) == 1
    assert "pip install 'slidescout[kaggle]'" in err and "kaggle.json" in err
    assert "Traceback" not in out + err


def test_lock_refuses_a_second_fetch_and_takes_over_a_stale_one(
    tcga, tmp_path, monkeypatch, capsys
) -> None:
    srv, items = tcga
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = tmp_path / ".slidescout" / "fetch.lock"
        lock.parent.mkdir(parents=True)
        import socket

        lock.write_text(
            f'{{"pid": {holder.pid}, "host": "{socket.gethostname()}", "since": "2026-01-01T00:00:00Z"}}'
        )
        code, out, err = run_cli(
            capsys,
            "data",
            "fetch",
            "multipathqa",
            "--tasks",
            "tcga",
            "--limit",
            "1",
            "--to",
            tmp_path,
            "--gdc-url",
            srv.gdc_url,
            *FAST,
        )
        assert code != 0 and len(err.strip().splitlines()) == 1
        assert f"pid {holder.pid} on host {socket.gethostname()}" in err
        assert srv.requests == []
    finally:
        holder.kill()
        holder.wait()
    # the holder is gone: its lock is stale and taken over; released at the end
    code, out, err = run_cli(
        capsys,
        "data",
        "fetch",
        "multipathqa",
        "--tasks",
        "tcga",
        "--limit",
        "1",
        "--to",
        tmp_path,
        "--gdc-url",
        srv.gdc_url,
        *FAST,
    )
    assert code == 0, err
    assert not lock.exists()
    with (
        FolderLock(tmp_path),
        pytest.raises(DatasetError, match=r"another slidescout data fetch \(pid \d+ on host"),
    ):
        FolderLock(tmp_path).acquire()


def test_disk_space_refusal_before_any_download(tcga, tmp_path, monkeypatch, capsys) -> None:
    srv, items = tcga
    monkeypatch.setattr(fetch_runner, "disk_free", lambda path: 1000)
    code, out, err = run_cli(
        capsys,
        "data",
        "fetch",
        "multipathqa",
        "--tasks",
        "tcga",
        "--limit",
        "3",
        "--to",
        tmp_path,
        "--gdc-url",
        srv.gdc_url,
        *FAST,
    )
    assert code != 0 and len(err.strip().splitlines()) == 1
    assert (
        f"error: not enough disk space in {tmp_path}: " in err
        and "still to fetch, 1.0 KB free" in err
    )
    assert srv.seen("data") == [] and len(srv.seen("files")) == 3
    with pytest.raises(DatasetError, match="not enough disk space"):
        fetch_slides(
            items[:3],
            FetchConfig(
                root=tmp_path,
                gdc_url=srv.gdc_url,
                disk_free=lambda p: 0,
                policy=RetryPolicy(base=0.01),
            ),
        )


def test_manifest(tcga, tmp_path, monkeypatch, capsys) -> None:
    srv, items = tcga
    small = tmp_path / "q.csv"
    with default_csv().open(encoding="utf-8-sig", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["benchmark_name"] == "tcga"][:3]
    with small.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    code, out, err = run_cli(
        capsys,
        "data",
        "manifest",
        "multipathqa",
        "--csv",
        small,
        "-o",
        tmp_path / "m.txt",
        "--gdc-url",
        srv.gdc_url,
    )
    assert code == 0, err
    lines = (tmp_path / "m.txt").read_text().splitlines()
    assert lines[0] == "id\tfilename\tmd5\tsize\tstate"
    first = lines[1].split("\t")
    assert first[0] == items[0].remote_id and first[1] == items[0].name.replace(
        ".svs", ".0000-uuid.svs"
    )
    assert (
        first[2] == hashlib.md5(srv.gdc[items[0].remote_id][1]).hexdigest()
        and first[4] == "released"
    )
    code, out, err = run_cli(
        capsys,
        "data",
        "manifest",
        "multipathqa",
        "--tasks",
        "tcga",
        "-o",
        tmp_path / "o.txt",
        "--offline",
    )
    assert code == 0, err
    off = (tmp_path / "o.txt").read_text().splitlines()
    assert (
        off[0] == "id\tfilename"
        and len(off) == 222
        and off[1] == f"{items[0].remote_id}\t{items[0].name}"
    )


def test_gdc_client_names_are_found(tmp_path) -> None:
    """gdc-client saves ``<id>/<barcode>.<uuid>.svs``: eval and status find it by the barcode."""
    (tmp_path / "abc").mkdir()
    p = tmp_path / "abc" / "TCGA-02-0266-01Z-00-DX1.1c5d0d9e-aaaa.svs"
    p.write_bytes(b"x")
    finder = SlideFinder(tmp_path)
    assert finder.find("TCGA-02-0266-01Z-00-DX1.svs") == p
    assert finder.find("TCGA-02-0266-01Z-00-DX2.svs") is None


def test_retry_after_parsing() -> None:
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(
        10.0
    )
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


def test_wait_honours_retry_after() -> None:
    from tenacity import RetryCallState

    from slidescout.eval.fetch.retry import TransientError, wait_seconds

    policy = RetryPolicy(base=0.01, max_retry_after=30)
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.set_exception((TransientError, TransientError("429", retry_after=7.0), None))
    assert wait_seconds(policy, state) == 7.0
    state.set_exception((TransientError, TransientError("429", retry_after=900.0), None))
    assert wait_seconds(policy, state) == 30.0  # capped
    state.set_exception((TransientError, TransientError("500"), None))
    assert 0.005 <= wait_seconds(policy, state) <= 0.01


def test_part_from_an_earlier_run_is_resumed_and_files_elsewhere_are_accepted(
    tcga, slide_bytes, tmp_path, monkeypatch, capsys
) -> None:
    srv, items = tcga
    # an interrupted earlier run left half of the first slide; GIANT's puller put the second elsewhere
    (tmp_path / "tcga").mkdir()
    (tmp_path / "tcga" / f"{items[0].name}.part").write_bytes(slide_bytes[0][:1000])
    (tmp_path / "tcga_slidebench").mkdir()
    (tmp_path / "tcga_slidebench" / items[1].name).write_bytes(slide_bytes[1])
    code, out, err = run_cli(
        capsys,
        "data",
        "fetch",
        "multipathqa",
        "--tasks",
        "tcga",
        "--limit",
        "3",
        "--to",
        tmp_path,
        "--gdc-url",
        srv.gdc_url,
        *FAST,
    )
    assert code == 0, err
    assert [(r.status, r.range) for r in srv.seen("data", items[0].remote_id)] == [
        (206, "bytes=1000-")
    ]
    assert (tmp_path / "tcga" / items[0].name).read_bytes() == slide_bytes[0]
    assert srv.seen("data", items[1].remote_id) == []  # verified by md5 where it was
    assert not (tmp_path / "tcga" / items[1].name).exists()
    assert "2 fetched, 1 already present, 0 failed" in out


def test_a_server_that_ignores_range_restarts_the_file_and_verify_finds_flipped_bytes(
    tcga, slide_bytes, tmp_path, monkeypatch, capsys
) -> None:
    srv, items = tcga
    (tmp_path / "tcga").mkdir()
    (tmp_path / "tcga" / f"{items[0].name}.part").write_bytes(
        b"\0" * 1000
    )  # not even a prefix of the file
    srv.fault("data", items[0].remote_id, "norange")
    code, out, err = run_cli(
        capsys,
        "data",
        "fetch",
        "multipathqa",
        "--tasks",
        "tcga",
        "--limit",
        "1",
        "--to",
        tmp_path,
        "--gdc-url",
        srv.gdc_url,
        *FAST,
    )
    assert code == 0, err
    assert [(r.status, r.range) for r in srv.seen("data", items[0].remote_id)] == [
        (200, "bytes=1000-")
    ]
    slide = tmp_path / "tcga" / items[0].name
    assert slide.read_bytes() == slide_bytes[0]
    data = bytearray(slide.read_bytes())
    data[-10] ^= 0xFF  # same size, other bytes: only --verify can tell
    slide.write_bytes(bytes(data))
    code, out, _ = run_cli(
        capsys, "data", "status", "multipathqa", "--tasks", "tcga", "--to", tmp_path
    )
    assert "0 damaged" in out
    code, out, _ = run_cli(
        capsys,
        "data",
        "status",
        "multipathqa",
        "--tasks",
        "tcga",
        "--to",
        tmp_path,
        "--verify",
    )
    assert "1 damaged" in out and f"damaged {slide}: md5 " in out
