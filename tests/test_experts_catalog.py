"""``slidescout experts catalog`` and ``experts add NAME``: ready cards for published models, their
architectures checked on the meta device (no weights), the fetch path with a stand-in hub."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import slidescout.cli.experts_cmd  # noqa: F401  (registers the commands)
from slidescout.cli.app import app
from slidescout.tools.experts import catalog, named
from slidescout.tools.experts.cards import card_from_dict
from slidescout.tools.experts.loading import build_architecture

torch = pytest.importorskip("torch")
runner = CliRunner()

# (blocks, embedding width, state_dict entries of one block) per timm's configurations
EXPECTED = {
    "uni": (24, 1024, 14),
    "virchow": (32, 2560, 14),
    "h-optimus-0": (40, 1536, 14),
    "prov-gigapath": (40, 1536, 14),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_catalog_backbones_build_at_full_size_on_the_meta_device(name):
    entry = named.NAMED[name]
    card = card_from_dict(
        {"name": name, "path": "w.bin", **entry.card}, Path("/tmp") / f"{name}.yaml"
    )
    with torch.device("meta"):
        module = build_architecture(card)
        out = module(torch.zeros(2, 3, card.card.patch_size, card.card.patch_size))
    depth, width, per_block = EXPECTED[name]
    keys = list(module.state_dict())
    assert sum(k.startswith("blocks.0.") for k in keys) == per_block
    assert (
        f"blocks.{depth - 1}.mlp.fc2.weight" in keys and f"blocks.{depth}.norm1.weight" not in keys
    )
    assert not any(k.startswith("head.") for k in keys)  # embeddings: no head
    assert tuple(out.shape) == (2, width) == (2, card.card.embedding_dim)
    if name == "h-optimus-0":
        assert tuple(module.state_dict()["reg_token"].shape) == (1, 4, 1536)
        assert tuple(module.state_dict()["pos_embed"].shape) == (1, 256, 1536)  # no_embed_class
    if name == "prov-gigapath":
        assert tuple(module.state_dict()["patch_embed.proj.weight"].shape) == (1536, 3, 16, 16)
        assert tuple(module.state_dict()["blocks.0.mlp.fc1.weight"].shape) == (8192, 1536)
    if name == "virchow":
        assert tuple(module.state_dict()["blocks.0.mlp.fc1.weight"].shape) == (6832, 1280)


def test_catalog_lists_every_card_with_its_facts():
    result = runner.invoke(app, ["experts", "catalog", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.output)["models"]}
    assert {"uni", "virchow", "h-optimus-0", "prov-gigapath", "plip", "quiltnet", "conch"} <= set(
        rows
    )
    for r in rows.values():
        assert r["hub"] and r["license"] and r["gate"] and r["normalisation"] and r["source"]
    assert rows["uni"]["license"].startswith("CC-BY-NC-ND-4.0") and rows["uni"]["gate"].startswith(
        "gated"
    )
    assert rows["conch"]["loadable"] is False
    table = runner.invoke(app, ["experts", "catalog"], env={"COLUMNS": "220"})
    assert table.exit_code == 0 and "MahmoodLab/UNI" in table.output


def _tiny_entry(monkeypatch):
    entry = named.NamedModel(
        name="tiny-uni",
        title="tiny",
        hub="someone/tiny-uni",
        files=("pytorch_model.bin",),
        card=dict(
            format="state_dict",
            architecture="vit_large_patch16_224",
            patch_size=32,
            architecture_args={"depth": 1, "embed_dim": 32, "num_heads": 2, "init_values": 1e-5},
            mpp=0.5,
            output="embedding",
            embedding_dim=32,
            **named.IMAGENET,
        ),
        license="test",
        gate="open",
        source="test",
    )
    monkeypatch.setitem(named.NAMED, "tiny-uni", entry)
    from slidescout.tools.experts.archs import ARCHITECTURES

    model = ARCHITECTURES["vit_large_patch16_224"](
        0, img_size=32, depth=1, embed_dim=32, num_heads=2, init_values=1e-5
    )
    return model


def test_add_named_with_weights_path(tmp_path, monkeypatch):
    monkeypatch.setenv("SLIDESCOUT_HOME", str(tmp_path / "home"))
    model = _tiny_entry(monkeypatch)
    torch.save(model.state_dict(), tmp_path / "mine.bin")
    result = runner.invoke(
        app, ["experts", "add", "tiny-uni", "--weights", str(tmp_path / "mine.bin")]
    )
    assert result.exit_code == 0, result.output
    entry = catalog.entries()["tiny-uni"]
    card_file = Path(entry["card"])
    assert card_file == tmp_path / "home" / "cards" / "tiny-uni.yaml"
    assert catalog.get("tiny-uni").weights == (tmp_path / "mine.bin").resolve()
    assert "32 values per patch" in result.output


def test_add_named_fetches_from_the_hub(tmp_path, monkeypatch):
    monkeypatch.setenv("SLIDESCOUT_HOME", str(tmp_path / "home"))
    model = _tiny_entry(monkeypatch)
    calls = []

    def fake_download(repo, dest, *, what, filenames=()):
        calls.append((repo, dest, filenames))
        dest.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), dest / filenames[0])
        return dest / filenames[0]

    monkeypatch.setattr("slidescout.tools.experts.hub.hub_download", fake_download)
    result = runner.invoke(app, ["experts", "add", "tiny-uni"])
    assert result.exit_code == 0, result.output
    assert calls == [
        ("someone/tiny-uni", tmp_path / "home" / "weights" / "tiny-uni", ("pytorch_model.bin",))
    ]
    assert "fetching someone/tiny-uni" in result.output
    assert (
        catalog.get("tiny-uni").weights
        == tmp_path / "home" / "weights" / "tiny-uni" / "pytorch_model.bin"
    )


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["experts", "add", "conch"], "conch: slidescout cannot load this model"),
        (
            ["experts", "add", "uni", "--weights", "/nonexistent/uni.bin"],
            "--weights: /nonexistent/uni.bin does not exist",
        ),
        (
            ["experts", "add", "{tmp}/card.yaml", "--weights", "x.bin"],
            "model card card.yaml: missing field",
        ),
    ],
)
def test_add_named_errors_are_one_line(tmp_path, monkeypatch, capsys, argv, needle):
    import sys

    from slidescout.cli import main

    monkeypatch.setenv("SLIDESCOUT_HOME", str(tmp_path / "home"))
    (tmp_path / "card.yaml").write_text("name: x\n")
    monkeypatch.setattr(sys, "argv", ["slidescout", *[a.format(tmp=tmp_path) for a in argv]])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and needle in err and "Traceback" not in err
    assert len(err.splitlines()) <= 2
