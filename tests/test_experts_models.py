"""Model cards, checkpoint loading (TorchScript, state_dict, ONNX) and ``slidescout experts``."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import yaml
from test_experts_support import (
    CELL,
    checker_slide,
    classifier_card,
    red_classifier_module,
    redness_card,
    write_card,
)
from typer.testing import CliRunner

import slidescout.cli.experts_cmd  # noqa: F401  (registers the commands)
from slidescout.cli.app import app
from slidescout.core.types import Box
from slidescout.errors import ConfigError
from slidescout.slides import open_slide
from slidescout.tools.experts import catalog
from slidescout.tools.experts.cards import load_card
from slidescout.tools.experts.checks import check_model
from slidescout.tools.experts.loading import load_runner
from slidescout.tools.experts.pool import ModelPool
from slidescout.tools.experts.runtime import run_patches

runner = CliRunner()


def tiny_state_dict(folder, name="tiny", num_outputs=3, **card_fields):
    import torch

    from slidescout.tools.experts.archs import tiny_cnn

    torch.manual_seed(0)
    model = tiny_cnn(num_outputs, width=8).eval()
    torch.save(
        {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}},
        folder / f"{name}.pth",
    )
    fields = {
        "format": "state_dict",
        "architecture": "tiny_cnn",
        "architecture_args": {"width": 8},
        "labels": ["a", "b", "c"],
        "patch_size": 64,
        "mean": [0.5, 0.5, 0.5],
        "std": [0.2, 0.2, 0.2],
        **card_fields,
    }
    return model, write_card(folder, name, f"{name}.pth", **fields)


# ---------------------------------------------------------------------------------------------
# cards
# ---------------------------------------------------------------------------------------------
def test_card_yaml_and_toml(tmp_path):
    y = load_card(redness_card(tmp_path))
    assert (
        y.name == "redness"
        and y.card.format == "torchscript"
        and y.weights == tmp_path / "redness.pt"
    )
    t = load_card(
        write_card(
            tmp_path,
            "tomlcard",
            "redness.pt",
            suffix=".toml",
            format="onnx",
            labels=["x", "y"],
            output="logits",
        )
    )
    assert (
        t.card.labels == ["x", "y"] and t.card.mpp == 0.5 and t.weights == tmp_path / "redness.pt"
    )
    assert "224 px patches at 0.5 µm/px" in t.card.describe()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"patch_size": -3}, "field 'patch_size'"),
        ({"patchsize": 3}, "unknown field 'patchsize'"),
        ({"format": "pickle"}, "field 'format'"),
        ({"name": "Bad Name"}, "field 'name'"),
        ({"std": [1, 0, 1]}, "field 'std'"),
        ({"mean": [0, 0]}, "field 'mean'"),
        ({"labels": []}, "field 'labels'"),
        ({"labels": ["a", "a"]}, "labels must be unique"),
        ({"heatmap_label": "tumour"}, "field 'heatmap_label'"),
        ({"format": "state_dict"}, "field 'architecture'"),
    ],
)
def test_bad_cards_name_the_field(tmp_path, change, message):
    path = redness_card(tmp_path)
    data = yaml.safe_load(path.read_text())
    data.update(change)
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=message) as exc:
        load_card(path)
    assert "redness.yaml" in str(exc.value) and "\n" not in str(exc.value)


def test_unreadable_cards(tmp_path):
    with pytest.raises(ConfigError, match="model card not found"):
        load_card(tmp_path / "nope.yaml")
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_card(tmp_path / "broken.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_card(tmp_path / "list.yaml")
    (tmp_path / "card.txt").write_text("name: x\n")
    with pytest.raises(ConfigError, match=r"\.yaml, \.yml, \.toml or \.json"):
        load_card(tmp_path / "card.txt")


# ---------------------------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------------------------
def test_torchscript_and_state_dict_load_through_the_same_path(tmp_path):
    import torch

    card = load_card(classifier_card(tmp_path))
    assert check_model(card).output_width == 2
    batch = np.zeros((2, 224, 224, 3), np.uint8)
    batch[0, ..., 0] = 230
    logits = load_runner(card, "cpu")(batch)
    assert logits.shape == (2, 2) and logits[0, 1] > logits[0, 0] and logits[1, 0] > logits[1, 1]

    model, path = tiny_state_dict(tmp_path)
    sd = load_card(path)
    assert check_model(sd).output_width == 3
    rng = np.random.default_rng(0)
    patches = rng.integers(0, 255, (4, 64, 64, 3), dtype=np.uint8)
    got = load_runner(sd, "cpu")(patches)
    x = torch.from_numpy(patches).permute(0, 3, 1, 2).float() / 255
    x = (x - 0.5) / 0.2
    with torch.no_grad():
        want = model(x).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_loading_errors_are_one_line_config_errors(tmp_path):
    # missing checkpoint
    card = load_card(write_card(tmp_path, "ghost", "ghost.pt", format="torchscript", labels=["a"]))
    with pytest.raises(ConfigError, match="checkpoint not found: .*ghost.pt"):
        load_runner(card)
    # wrong number of labels for the model's output
    wrong = load_card(
        classifier_card(tmp_path, "threeway", labels=["a", "b", "c"], heatmap_label=None)
    )
    with pytest.raises(
        ConfigError, match=r"outputs 2 values per patch but the card lists 3 labels"
    ):
        check_model(wrong)
    # a state_dict whose shapes do not fit (card says 2 labels, weights have 3 outputs)
    _, path = tiny_state_dict(tmp_path, "misfit", labels=["a", "b"])
    with pytest.raises(ConfigError, match="gives 3 values per patch but the card lists 2 labels"):
        load_runner(load_card(path))
    # a state_dict card pointing at a TorchScript file, and vice versa
    ts = load_card(
        write_card(
            tmp_path,
            "notsd",
            "threeway.pt",
            format="state_dict",
            architecture="tiny_cnn",
            labels=["a", "b"],
        )
    )
    with pytest.raises(ConfigError, match="notsd.yaml: threeway.pt is a TorchScript file"):
        load_runner(ts)
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(ConfigError, match="is not a TorchScript file"):
        load_runner(
            load_card(write_card(tmp_path, "junk", "junk.pt", format="torchscript", labels=["a"]))
        )


def test_timm_architecture_needs_timm(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # as if not installed
    _, path = tiny_state_dict(tmp_path, "vit", architecture="convnext_tiny")
    with pytest.raises(
        ConfigError, match=r"needs timm, which is not installed.*built-in architectures: tiny_cnn"
    ):
        load_runner(load_card(path))


def test_onnx_matches_torchscript(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    import torch

    module = red_classifier_module()
    torch.onnx.export(
        module,
        (torch.zeros(2, 3, 224, 224),),
        str(tmp_path / "red.onnx"),
        dynamo=False,
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "n"}, "logits": {0: "n"}},
    )
    onnx_card = load_card(
        write_card(
            tmp_path, "red-onnx", "red.onnx", format="onnx", labels=["blue", "red"], output="logits"
        )
    )
    ts_card = load_card(classifier_card(tmp_path))
    assert check_model(onnx_card).output_width == 2
    rng = np.random.default_rng(1)
    batch = rng.integers(0, 255, (5, 224, 224, 3), dtype=np.uint8)
    np.testing.assert_allclose(
        load_runner(onnx_card)(batch), load_runner(ts_card)(batch), atol=1e-4
    )
    slide = open_slide(checker_slide(tmp_path / "c.tiff", cols=4, rows=2))
    run = run_patches(slide, onnx_card, Box(0, 0, 4 * CELL, 2 * CELL), pool=ModelPool())
    assert run.class_fractions() == {"blue": 0.5, "red": 0.5}


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------
def test_cli_add_list_show_run_remove(tmp_path):
    card = redness_card(tmp_path)
    res = runner.invoke(app, ["experts", "add", str(card)])
    assert res.exit_code == 0, res.output
    assert "registered redness" in res.output and "1 values per patch" in res.output
    assert catalog.names() == ["redness"]

    res = runner.invoke(app, ["experts", "list", "--json"])
    listed = json.loads(res.output)["experts"]
    assert (
        listed[0]["name"] == "redness"
        and listed[0]["status"] == "ok"
        and listed[0]["labels"] == ["red"]
    )
    res = runner.invoke(app, ["experts", "list"])
    assert res.exit_code == 0 and "redness" in res.output

    res = runner.invoke(app, ["experts", "show", "redness"])
    assert json.loads(res.output)["patch_size"] == 224

    slide = checker_slide(tmp_path / "checker.tiff", cols=4, rows=2)
    out = tmp_path / "heat.png"
    res = runner.invoke(
        app,
        [
            "experts",
            "run",
            "redness",
            str(slide),
            "--box",
            f"0,0,{4 * CELL},{2 * CELL}",
            "--device",
            "cpu",
            "--out",
            str(out),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    payload = json.loads(res.output)
    assert payload["patches"] == 8 and payload["stats"]["patches_per_s"] > 0 and out.is_file()
    assert payload["heatmap"]["box"] == [0, 0, 4 * CELL, 2 * CELL]

    # the weights disappear: list says so
    (tmp_path / "redness.pt").rename(tmp_path / "moved.pt")
    listed = json.loads(runner.invoke(app, ["experts", "list", "--json"]).output)["experts"]
    assert listed[0]["status"].startswith("weights missing")

    res = runner.invoke(app, ["experts", "remove", "redness"])
    assert res.exit_code == 0 and catalog.names() == []


def test_cli_add_twice_needs_replace(tmp_path):
    a = tmp_path / "a"
    b = tmp_path / "b"
    a.mkdir()
    b.mkdir()
    assert runner.invoke(app, ["experts", "add", str(redness_card(a))]).exit_code == 0
    res = runner.invoke(app, ["experts", "add", str(redness_card(b))])
    assert isinstance(res.exception, ConfigError) and "already registered" in str(res.exception)
    assert runner.invoke(app, ["experts", "add", str(redness_card(b)), "--replace"]).exit_code == 0
    assert catalog.entries()["redness"]["card"] == str((b / "redness.yaml").resolve())


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["experts", "add", "{tmp}/missing.yaml"], "model card not found"),
        (["experts", "add", "{tmp}/ghost.yaml"], "checkpoint not found"),
        (["experts", "add", "{tmp}/threeway.yaml"], "card lists 3 labels"),
        (["experts", "remove", "nothing"], "no expert model named 'nothing'"),
        (["experts", "show", "nothing"], "no expert model named 'nothing'"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, monkeypatch, capsys, argv, needle):
    from slidescout.cli import main

    write_card(tmp_path, "ghost", "ghost.pt", format="torchscript", labels=["a"])
    classifier_card(tmp_path, "threeway", labels=["a", "b", "c"], heatmap_label=None)
    monkeypatch.setattr(sys, "argv", ["slidescout", *[a.format(tmp=tmp_path) for a in argv]])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and needle in err and "Traceback" not in err
    assert len(err.splitlines()) <= 2  # one line (rich may soft-wrap a very long path)


def test_registry_file_is_under_slidescout_home(tmp_path, monkeypatch):
    monkeypatch.setenv("SLIDESCOUT_HOME", str(tmp_path / "home"))
    catalog.add(load_card(redness_card(tmp_path)))
    data = json.loads((tmp_path / "home" / "experts.json").read_text())
    assert data["version"] == 1 and data["experts"]["redness"]["format"] == "torchscript"
    with pytest.raises(ConfigError, match="did you mean redness"):
        catalog.get("rednes")
