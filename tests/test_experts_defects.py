"""Issue 24's defects, each pinned by a test: half-precision checkpoints, the hub when offline,
messages that name the fix, and "no tissue" from ``segment``."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import numpy as np
import pytest
import yaml
from cli_helpers import run_cli
from slidefactory import make_tiff
from test_experts_support import blobs_pattern, write_card

from slidescout.errors import ConfigError
from slidescout.slides import open_slide
from slidescout.tools.context import ToolContext
from slidescout.tools.experts import catalog, loading, named
from slidescout.tools.experts.cards import load_card
from slidescout.tools.experts.checks import check_model
from slidescout.tools.experts.loading import load_runner

torch = pytest.importorskip("torch")


def _tiny(tmp_path: Path, name: str, dtype=None, outputs: int = 3, **fields) -> tuple:
    from slidescout.tools.experts.archs import tiny_cnn

    torch.manual_seed(0)
    model = tiny_cnn(outputs, width=8).eval()
    state = model.state_dict()
    if dtype is not None:
        state = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in state.items()}
    torch.save(state, tmp_path / f"{name}.pth")
    card = {
        "format": "state_dict",
        "architecture": "tiny_cnn",
        "architecture_args": {"width": 8},
        "labels": ["a", "b", "c"],
        "patch_size": 64,
        **fields,
    }
    return model, write_card(tmp_path, name, f"{name}.pth", **card)


# ---------------------------------------------------------------------------------------------
# 2: half-precision state_dicts
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_state_dict_runs_in_float32_on_cpu(tmp_path, capsys, monkeypatch, dtype):
    monkeypatch.setenv("SLIDESCOUT_HOME", str(tmp_path / "home"))
    model, path = _tiny(tmp_path, "half", getattr(torch, dtype))
    rc, out, err = run_cli(capsys, "experts", "add", path)
    assert rc == 0, err
    assert "registered half" in out
    runner = load_runner(load_card(path), "cpu", optimize=False)
    patches = np.random.default_rng(1).integers(0, 255, (3, 64, 64, 3), dtype=np.uint8)
    got = runner(patches)
    # the reference: the same weights rounded to the checkpoint's precision, run in float32
    ref = model
    state = torch.load(tmp_path / "half.pth", weights_only=True)
    ref.load_state_dict({k: v.float() for k, v in state.items()})
    x = torch.from_numpy(patches).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        want = ref(x).numpy()
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_weights_dtype_float32_on_cpu_bf16_kept_on_gpus_that_support_it():
    weights_dtype = loading.weights_dtype
    assert weights_dtype("cpu", {torch.float16}) == torch.float32
    assert weights_dtype("cpu", {torch.bfloat16}) == torch.float32
    assert weights_dtype("cpu", {torch.float32}) == torch.float32
    assert weights_dtype("cuda", {torch.bfloat16}, bf16_ok=True) == torch.bfloat16
    assert weights_dtype("cuda", {torch.float16}, bf16_ok=True) == torch.bfloat16
    assert weights_dtype("cuda", {torch.bfloat16}, bf16_ok=False) == torch.float32
    assert weights_dtype("cuda", {torch.float32}, bf16_ok=True) == torch.float32


# ---------------------------------------------------------------------------------------------
# 3: the hub, offline
# ---------------------------------------------------------------------------------------------
def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: connections are refused at once
    return port


def test_offline_add_is_one_line_naming_weights(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SLIDESCOUT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    import huggingface_hub

    def never(*a, **k):
        raise AssertionError("no download may be tried when the hub cannot be reached")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", never)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", never)
    rc, out, err = run_cli(capsys, "experts", "add", "uni")
    assert rc == 1
    line = err.strip()
    assert line.startswith("error:") and len(line.splitlines()) == 1
    assert "cannot reach the hub" in line and "--weights" in line
    assert "none of" not in line and "http" not in line.split("(", 1)[0]


def test_hub_offline_errors_from_huggingface_hub_are_not_blamed_on_the_repo(tmp_path, monkeypatch):
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    from slidescout.tools.experts import hub

    monkeypatch.setattr(hub, "_reachable", lambda endpoint, timeout: None)

    def offline(*a, **k):
        raise LocalEntryNotFoundError("cannot find the requested files in the local cache")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    with pytest.raises(ConfigError, match="cannot reach the hub") as exc:
        hub.hub_download("org/repo", tmp_path / "w", what="uni", filenames=("a.bin", "b.bin"))
    assert "none of" not in str(exc.value)


def test_weights_option_works_for_card_files(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SLIDESCOUT_HOME", str(tmp_path / "home"))
    _, path = _tiny(tmp_path, "mine")
    moved = tmp_path / "elsewhere" / "weights.pth"
    moved.parent.mkdir()
    (tmp_path / "mine.pth").rename(moved)
    rc, out, err = run_cli(capsys, "experts", "add", path, "--weights", moved)
    assert rc == 0, err
    card = catalog.get("mine")
    assert card.weights == moved.resolve()
    assert yaml.safe_load(path.read_text())["path"] == "mine.pth"  # the user's card is untouched


# ---------------------------------------------------------------------------------------------
# 4: messages
# ---------------------------------------------------------------------------------------------
def test_misspelt_architecture_suggests_the_builtin(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "timm", None)
    _, path = _tiny(tmp_path, "typo", architecture="resnet-18")
    with pytest.raises(ConfigError, match="did you mean resnet18"):
        load_runner(load_card(path))


def test_wrong_number_of_labels_for_a_state_dict_says_fix_labels(tmp_path):
    _, path = _tiny(tmp_path, "twolabels", labels=["a", "b"])
    with pytest.raises(ConfigError) as exc:
        check_model(load_card(path))
    msg = str(exc.value)
    assert "fix field 'labels'" in msg and "3 values per patch" in msg and "2 labels" in msg
    assert "size mismatch" not in msg and "\n" not in msg


def test_add_unknown_name_lists_the_catalog(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SLIDESCOUT_HOME", str(tmp_path / "home"))
    rc, _, err = run_cli(capsys, "experts", "add", "foo")
    assert rc == 2
    line = err.strip()
    assert len(line.splitlines()) == 1
    for name in named.NAMED:
        assert name in line
    rc, _, err = run_cli(capsys, "experts", "add", "unni")
    assert "did you mean uni" in err


def test_segment_on_glass_says_no_tissue(tmp_path, monkeypatch):
    from test_experts_segment import NUCLEI_NET

    monkeypatch.setenv("SLIDESCOUT_HOME", str(tmp_path / "home"))
    pkg = tmp_path / "glassnets"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(NUCLEI_NET)
    monkeypatch.syspath_prepend(str(tmp_path))
    from glassnets import DarkNuclei  # type: ignore[import-not-found]

    torch.save(DarkNuclei().state_dict(), tmp_path / "hover.pth")
    card = write_card(
        tmp_path,
        "glassy",
        "hover.pth",
        format="state_dict",
        architecture="glassnets:DarkNuclei",
        output="instances",
        labels=["a", "b"],
        patch_size=64,
        overlap=16,
    )
    catalog.add(load_card(card))
    slide = open_slide(
        make_tiff(
            tmp_path / "glass.tiff",
            1024,
            512,
            mpp=0.5,
            pattern=blobs_pattern([(200, 256, 150, 150)], nuclei_every=32),
        )
    )
    from slidescout.tools.experts.model_tools import segment

    res = asyncio.run(
        segment.invoke(
            {"x": 600, "y": 100, "w": 300, "h": 300, "model": "glassy"},
            ToolContext(slide=slide, device="cpu"),
        )
    )
    assert "No tissue in this region" in res.text
    assert "mm²" not in res.text
    assert res.data.get("count") is None and res.data["patches"] == 0
    res = asyncio.run(
        segment.invoke(
            {"x": 100, "y": 150, "w": 200, "h": 200, "model": "glassy"},
            ToolContext(slide=slide, device="cpu"),
        )
    )
    assert res.data["count"] > 0
