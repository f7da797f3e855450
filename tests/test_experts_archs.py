"""Built-in timm-named ViTs, authors' own ``module:Class`` architectures, embedding cards without a
head, and a broken timm install reported in one line."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest
from test_experts_support import write_card

from slidescout.errors import ConfigError
from slidescout.tools.experts.archs import ARCHITECTURES
from slidescout.tools.experts.cards import load_card
from slidescout.tools.experts.checks import check_model
from slidescout.tools.experts.loading import build_architecture, load_runner

torch = pytest.importorskip("torch")

# Parameter names and shapes of timm's VisionTransformer (timm 1.0, timm/models/vision_transformer.py:
# VisionTransformer.__init__, Block, Attention in timm/layers/attention.py, Mlp / GluMlp in
# timm/layers/mlp.py, SwiGLUPacked = partial(GluMlp, act_layer=nn.SiLU, gate_last=False)), read from
# timm.create_model(name, depth=1, ...) with the options below:
# uni: vit_large_patch16_224(embed_dim=96, num_heads=4, init_values=1e-5, num_classes=0)
# virchow: vit_huge_patch14_224(embed_dim=160, mlp_ratio=5.3375, mlp_layer=SwiGLUPacked, act_layer=SiLU,
#          init_values=1e-5, num_classes=0)
# hopt: vit_giant_patch14_reg4_dinov2(img_size=224, embed_dim=96, num_classes=0)
# gigapath: vit_giant_patch14_dinov2(img_size=224, patch_size=16, mlp_ratio=5.33334, embed_dim=96, num_classes=0)
# avg_head: vit_small_patch16_224(embed_dim=64, reg_tokens=2, global_pool="avg", num_classes=5)
TIMM_NAMES = {
    "uni": {
        "cls_token": (1, 1, 96),
        "pos_embed": (1, 197, 96),
        "patch_embed.proj.weight": (96, 3, 16, 16),
        "patch_embed.proj.bias": (96,),
        "blocks.0.norm1.weight": (96,),
        "blocks.0.norm1.bias": (96,),
        "blocks.0.attn.qkv.weight": (288, 96),
        "blocks.0.attn.qkv.bias": (288,),
        "blocks.0.attn.proj.weight": (96, 96),
        "blocks.0.attn.proj.bias": (96,),
        "blocks.0.ls1.gamma": (96,),
        "blocks.0.norm2.weight": (96,),
        "blocks.0.norm2.bias": (96,),
        "blocks.0.mlp.fc1.weight": (384, 96),
        "blocks.0.mlp.fc1.bias": (384,),
        "blocks.0.mlp.fc2.weight": (96, 384),
        "blocks.0.mlp.fc2.bias": (96,),
        "blocks.0.ls2.gamma": (96,),
        "norm.weight": (96,),
        "norm.bias": (96,),
    },
    "virchow": {
        "cls_token": (1, 1, 160),
        "pos_embed": (1, 257, 160),
        "patch_embed.proj.weight": (160, 3, 14, 14),
        "patch_embed.proj.bias": (160,),
        "blocks.0.norm1.weight": (160,),
        "blocks.0.norm1.bias": (160,),
        "blocks.0.attn.qkv.weight": (480, 160),
        "blocks.0.attn.qkv.bias": (480,),
        "blocks.0.attn.proj.weight": (160, 160),
        "blocks.0.attn.proj.bias": (160,),
        "blocks.0.ls1.gamma": (160,),
        "blocks.0.norm2.weight": (160,),
        "blocks.0.norm2.bias": (160,),
        "blocks.0.mlp.fc1.weight": (854, 160),
        "blocks.0.mlp.fc1.bias": (854,),
        "blocks.0.mlp.fc2.weight": (160, 427),
        "blocks.0.mlp.fc2.bias": (160,),
        "blocks.0.ls2.gamma": (160,),
        "norm.weight": (160,),
        "norm.bias": (160,),
    },
    "hopt": {
        "cls_token": (1, 1, 96),
        "reg_token": (1, 4, 96),
        "pos_embed": (1, 256, 96),
        "patch_embed.proj.weight": (96, 3, 14, 14),
        "patch_embed.proj.bias": (96,),
        "blocks.0.norm1.weight": (96,),
        "blocks.0.norm1.bias": (96,),
        "blocks.0.attn.qkv.weight": (288, 96),
        "blocks.0.attn.qkv.bias": (288,),
        "blocks.0.attn.proj.weight": (96, 96),
        "blocks.0.attn.proj.bias": (96,),
        "blocks.0.ls1.gamma": (96,),
        "blocks.0.norm2.weight": (96,),
        "blocks.0.norm2.bias": (96,),
        "blocks.0.mlp.fc1.weight": (512, 96),
        "blocks.0.mlp.fc1.bias": (512,),
        "blocks.0.mlp.fc2.weight": (96, 256),
        "blocks.0.mlp.fc2.bias": (96,),
        "blocks.0.ls2.gamma": (96,),
        "norm.weight": (96,),
        "norm.bias": (96,),
    },
    "gigapath": {
        "cls_token": (1, 1, 96),
        "pos_embed": (1, 197, 96),
        "patch_embed.proj.weight": (96, 3, 16, 16),
        "patch_embed.proj.bias": (96,),
        "blocks.0.norm1.weight": (96,),
        "blocks.0.norm1.bias": (96,),
        "blocks.0.attn.qkv.weight": (288, 96),
        "blocks.0.attn.qkv.bias": (288,),
        "blocks.0.attn.proj.weight": (96, 96),
        "blocks.0.attn.proj.bias": (96,),
        "blocks.0.ls1.gamma": (96,),
        "blocks.0.norm2.weight": (96,),
        "blocks.0.norm2.bias": (96,),
        "blocks.0.mlp.fc1.weight": (512, 96),
        "blocks.0.mlp.fc1.bias": (512,),
        "blocks.0.mlp.fc2.weight": (96, 256),
        "blocks.0.mlp.fc2.bias": (96,),
        "blocks.0.ls2.gamma": (96,),
        "norm.weight": (96,),
        "norm.bias": (96,),
    },
    "avg_head": {
        "cls_token": (1, 1, 64),
        "reg_token": (1, 2, 64),
        "pos_embed": (1, 199, 64),
        "patch_embed.proj.weight": (64, 3, 16, 16),
        "patch_embed.proj.bias": (64,),
        "blocks.0.norm1.weight": (64,),
        "blocks.0.norm1.bias": (64,),
        "blocks.0.attn.qkv.weight": (192, 64),
        "blocks.0.attn.qkv.bias": (192,),
        "blocks.0.attn.proj.weight": (64, 64),
        "blocks.0.attn.proj.bias": (64,),
        "blocks.0.norm2.weight": (64,),
        "blocks.0.norm2.bias": (64,),
        "blocks.0.mlp.fc1.weight": (256, 64),
        "blocks.0.mlp.fc1.bias": (256,),
        "blocks.0.mlp.fc2.weight": (64, 256),
        "blocks.0.mlp.fc2.bias": (64,),
        "fc_norm.weight": (64,),
        "fc_norm.bias": (64,),
        "head.weight": (5, 64),
        "head.bias": (5,),
    },
}

OURS = {  # the same configurations as architecture_args of the built-in builders
    "uni": ("vit_large_patch16_224", 0, dict(embed_dim=96, num_heads=4, init_values=1e-5)),
    "virchow": (
        "vit_huge_patch14_224",
        0,
        dict(
            embed_dim=160,
            num_heads=4,
            init_values=1e-5,
            mlp_ratio=5.3375,
            mlp_layer="swiglu_packed",
            act_layer="silu",
        ),
    ),
    "hopt": ("vit_giant_patch14_reg4_dinov2", 0, dict(embed_dim=96, num_heads=4)),
    "gigapath": (
        "vit_giant_patch14_dinov2",
        0,
        dict(patch_size=16, mlp_ratio=5.33334, embed_dim=96, num_heads=4),
    ),
    "avg_head": (
        "vit_small_patch16_224",
        5,
        dict(embed_dim=64, num_heads=4, reg_tokens=2, global_pool="avg"),
    ),
}


@pytest.mark.parametrize("key", sorted(OURS))
def test_vit_parameter_names_match_timm(key):
    name, n_out, args = OURS[key]
    model = ARCHITECTURES[name](n_out, img_size=224, depth=1, **args)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == TIMM_NAMES[key]


def _vit_card(tmp_path, name="uni-tiny", **fields):
    torch.manual_seed(1)
    model = ARCHITECTURES["vit_large_patch16_224"](
        0, img_size=64, depth=2, embed_dim=64, num_heads=4, init_values=1e-5
    ).eval()
    torch.save(model.state_dict(), tmp_path / f"{name}.bin")
    card = write_card(
        tmp_path,
        name,
        f"{name}.bin",
        format="state_dict",
        architecture="vit_large_patch16_224",
        architecture_args={"depth": 2, "embed_dim": 64, "num_heads": 4, "init_values": 1e-5},
        output="embedding",
        embedding_dim=64,
        patch_size=64,
        **fields,
    )
    return model, card


def test_vit_state_dict_card_loads_as_embedding_without_head(tmp_path):
    model, path = _vit_card(tmp_path)
    card = load_card(path)
    report = check_model(card)
    assert report.output_width == 64
    runner = load_runner(card, "cpu", optimize=False)
    rng = np.random.default_rng(0)
    patches = rng.integers(0, 255, (3, 64, 64, 3), dtype=np.uint8)
    x = torch.from_numpy(patches).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        want = model(x).numpy()
    np.testing.assert_allclose(runner(patches), want, rtol=1e-4, atol=1e-4)


def test_vit_resamples_position_embedding_for_other_patch_sizes():
    model = ARCHITECTURES["vit_small_patch16_224"](
        0, img_size=64, depth=1, embed_dim=32, num_heads=2
    ).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 96, 96)).shape == (1, 32)
    with pytest.raises(ValueError, match="SwiGLUPacked MLP needs an even hidden width"):
        ARCHITECTURES["vit_small_patch16_224"](
            0, embed_dim=30, num_heads=2, mlp_ratio=2.5, mlp_layer="swiglu_packed"
        )


def test_embedding_card_with_num_classes_zero_does_not_clash(tmp_path):
    _, path = _vit_card(tmp_path, "uni2")
    card = load_card(path)
    data = card.card.model_dump()
    data["architecture_args"] = {**data["architecture_args"], "num_classes": 0}
    from slidescout.tools.experts.cards import card_from_dict

    module = build_architecture(card_from_dict(data, card.file))
    assert isinstance(module.head, torch.nn.Identity)
    resnet = card_from_dict(
        {**data, "architecture": "resnet18", "architecture_args": {"num_classes": 0}}, card.file
    )
    assert isinstance(build_architecture(resnet).fc, torch.nn.Identity)


def test_custom_module_class_architecture(tmp_path, monkeypatch):
    pkg = tmp_path / "mylab_models"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "nets.py").write_text(
        textwrap.dedent("""
        import torch
        from torch import nn

        class TwoLayer(nn.Module):
            def __init__(self, width=4, classes=2):
                super().__init__()
                self.conv = nn.Conv2d(3, width, 3, padding=1)
                self.head = nn.Linear(width, classes)

            def forward(self, x):
                return self.head(self.conv(x).mean(dim=(2, 3)))
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("mylab_models", None)
    from mylab_models.nets import TwoLayer  # type: ignore[import-not-found]

    torch.manual_seed(0)
    model = TwoLayer(width=6, classes=3).eval()
    torch.save(model.state_dict(), tmp_path / "own.pt")
    path = write_card(
        tmp_path,
        "own",
        "own.pt",
        format="state_dict",
        architecture="mylab_models.nets:TwoLayer",
        architecture_args={"width": 6, "classes": 3},
        labels=["a", "b", "c"],
        patch_size=32,
    )
    runner = load_runner(load_card(path), "cpu", optimize=False)
    patches = np.random.default_rng(1).integers(0, 255, (2, 32, 32, 3), dtype=np.uint8)
    with torch.no_grad():
        want = model(torch.from_numpy(patches).permute(0, 3, 1, 2).float() / 255).numpy()
    np.testing.assert_allclose(runner(patches), want, rtol=1e-5, atol=1e-5)
    bad = write_card(
        tmp_path,
        "own2",
        "own.pt",
        format="state_dict",
        architecture="mylab_models.nope:X",
        labels=["a"],
        patch_size=32,
    )
    with pytest.raises(
        ConfigError, match=r"cannot import 'mylab_models.nope' \(ModuleNotFoundError"
    ):
        load_runner(load_card(bad))
    bad_args = write_card(
        tmp_path,
        "own3",
        "own.pt",
        format="state_dict",
        architecture="mylab_models.nets:TwoLayer",
        architecture_args={"depth": 3},
        labels=["a"],
        patch_size=32,
    )
    with pytest.raises(
        ConfigError, match=r"building it with architecture_args .* failed \(TypeError"
    ):
        load_runner(load_card(bad_args))


def test_broken_timm_install_is_one_line(tmp_path, monkeypatch):
    class Broken:
        def find_spec(self, name, path, target=None):
            if name == "timm":
                raise RuntimeError("operator torchvision::nms does not exist")
            return None

    monkeypatch.delitem(sys.modules, "timm", raising=False)
    monkeypatch.setattr(sys, "meta_path", [Broken(), *sys.meta_path])
    path = write_card(
        tmp_path, "t", "t.pt", format="state_dict", architecture="timm:convnext_tiny", labels=["a"]
    )
    (tmp_path / "t.pt").write_bytes(b"")
    with pytest.raises(ConfigError) as err:
        build_architecture(load_card(path))
    msg = str(err.value)
    assert "\n" not in msg
    assert (
        "timm is installed but fails to import (RuntimeError: operator torchvision::nms does not exist)"
        in msg
    )
    assert "pip uninstall torchvision" in msg
