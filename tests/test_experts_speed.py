"""``experts add`` says what it does and remembers the CPU form per checkpoint; the runtime reports
progress; built-in architectures load on the meta device (no random initialisation)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_experts_support import CELL, checker_slide, write_card
from typer.testing import CliRunner

import slidescout.cli.experts_cmd  # noqa: F401  (registers the commands)
from slidescout.cli.app import app
from slidescout.slides import open_slide
from slidescout.tools.experts import cpuform
from slidescout.tools.experts.cards import load_card
from slidescout.tools.experts.loading import load_runner
from slidescout.tools.experts.runtime import run_patches

torch = pytest.importorskip("torch")


def _resnet_card(tmp_path, drop_counters=False):
    from slidescout.tools.experts.archs import resnet18

    torch.manual_seed(0)
    model = resnet18(2, width=8).eval()
    state = model.state_dict()
    if drop_counters:
        state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "r18.pth")
    path = write_card(
        tmp_path,
        "r18",
        "r18.pth",
        format="state_dict",
        architecture="resnet18",
        architecture_args={"width": 8},
        labels=["a", "b"],
        patch_size=64,
    )
    return model, path


def test_add_reports_each_step_and_remembers_the_cpu_form(tmp_path):
    _, path = _resnet_card(tmp_path)
    runner = CliRunner()
    first = runner.invoke(app, ["experts", "add", str(path)])
    assert first.exit_code == 0, first.output
    lines = first.output.splitlines()
    assert "card r18.yaml is valid" in lines[0]
    assert any("loaded r18.pth" in line for line in lines)
    form_line = next(line for line in lines if "CPU form:" in line)
    assert "ms/patch" in form_line and "->" in form_line
    chosen = form_line.rsplit("-> ", 1)[1].strip()
    assert chosen in cpuform.FORMS
    assert "checked the output on 2 blank patches: 2 values per patch" in first.output
    cache = json.loads((cpuform._cache_file()).read_text())
    assert list(cache.values()) == [chosen]
    again = runner.invoke(app, ["experts", "add", str(path), "--replace"])
    assert again.exit_code == 0, again.output
    assert f"CPU form: {chosen} (remembered for this checkpoint)" in again.output
    path.write_text(
        path.read_text().replace("patch_size: 64", "patch_size: 96")
    )  # another card: new key
    third = runner.invoke(app, ["experts", "add", str(path), "--replace"])
    assert (
        "remembered" not in third.output and len(json.loads(cpuform._cache_file().read_text())) == 2
    )


def test_state_dict_without_batch_counters_loads_on_meta(tmp_path):
    model, path = _resnet_card(tmp_path, drop_counters=True)
    runner = load_runner(load_card(path), "cpu", optimize=False)
    assert not any(t.is_meta for t in runner.module.state_dict().values())
    x = np.random.default_rng(0).integers(0, 255, (2, 64, 64, 3), dtype=np.uint8)
    with torch.no_grad():
        want = model(torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255).numpy()
    np.testing.assert_allclose(runner(x), want, rtol=1e-4, atol=1e-4)


def test_run_reports_progress(tmp_path):
    slide = open_slide(checker_slide(tmp_path / "c.tiff", cols=3, rows=2))
    seen = []
    run = run_patches(
        slide,
        lambda b: np.zeros((len(b), 1), np.float32),
        (0, 0, 3 * CELL, 2 * CELL),
        mpp=0.5,
        patch_size=112,
        batch_size=5,
        progress=lambda done, total: seen.append((done, total)),
    )
    n = len(run.plan)
    assert n == 24 and seen == [(min(n, 5 * (i + 1)), n) for i in range(5)]


def test_the_model_gets_the_cores_the_readers_leave_idle(tmp_path, monkeypatch):
    import time

    from slidescout.tools.experts import runtime

    monkeypatch.delenv("SLIDESCOUT_TORCH_THREADS", raising=False)
    monkeypatch.setattr(
        runtime, "_oversubscribed", lambda: False
    )  # as on an otherwise idle machine
    slide = open_slide(checker_slide(tmp_path / "c.tiff", cols=3, rows=2))
    box = (0, 0, 3 * CELL, 2 * CELL)
    cpus = runtime._cpus()
    workers = runtime.default_workers("cpu")

    def fast(b):  # reading dominates: the reader needs its core
        return np.zeros((len(b), 1), np.float32)

    def slow(b):  # the model dominates: the reader idles between batches
        time.sleep(0.4)
        return np.zeros((len(b), 1), np.float32)

    kw = dict(mpp=0.5, patch_size=112, batch_size=6, device="cpu")
    assert run_patches(slide, fast, box, **kw).stats.threads == max(1, cpus - workers)
    run = run_patches(slide, slow, box, **kw)
    assert run.stats.threads == cpus and f"({cpus} torch threads)" in run.stats.describe()
    monkeypatch.setattr(runtime, "_oversubscribed", lambda: True)  # other jobs use every core
    assert run_patches(slide, slow, box, **kw).stats.threads == max(1, cpus - workers)
    monkeypatch.setattr(runtime, "_oversubscribed", lambda: False)
    monkeypatch.setenv("SLIDESCOUT_TORCH_THREADS", "1")
    assert run_patches(slide, slow, box, **kw).stats.threads == 1


def test_segmentation_models_run_one_patch_at_a_time_on_the_cpu(tmp_path):
    from slidescout.tools.experts import runtime

    card = load_card(
        write_card(tmp_path, "m", "m.pt", format="torchscript", output="mask", labels=["a", "b"])
    )
    assert runtime._default_batch("cpu", card) == 1
    assert runtime._default_batch("cpu", None) == 16 and runtime._default_batch("cuda", card) == 64


def test_transformers_skip_the_cpu_form_choice(tmp_path):
    from slidescout.tools.experts.archs import ARCHITECTURES

    torch.manual_seed(0)
    vit = ARCHITECTURES["vit_large_patch16_224"](
        0, img_size=32, depth=2, embed_dim=32, num_heads=2, init_values=1e-5
    )
    assert not cpuform.foldable(vit) and cpuform.foldable(_resnet_card(tmp_path)[0])
    torch.save(vit.state_dict(), tmp_path / "vit.pth")
    path = write_card(
        tmp_path,
        "vit",
        "vit.pth",
        format="state_dict",
        architecture="vit_large_patch16_224",
        architecture_args={"depth": 2, "embed_dim": 32, "num_heads": 2, "init_values": 1e-5},
        output="embedding",
        patch_size=32,
    )
    steps = []
    runner = load_runner(load_card(path), "cpu", progress=steps.append)
    assert any(
        "CPU form: eager (no batch norm to fold; frozen forms not tried)" in s for s in steps
    )
    x = np.random.default_rng(0).integers(0, 255, (2, 32, 32, 3), dtype=np.uint8)
    with torch.no_grad():
        want = vit(torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255).numpy()
    np.testing.assert_allclose(runner(x), want, rtol=1e-4, atol=1e-4)
