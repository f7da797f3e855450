"""Vision Transformers with timm's parameter names, so tile-encoder state dicts saved by timm load
without importing timm (whose import chain fails wherever torchvision does not match torch).

Names follow ``timm/models/vision_transformer.py`` (``VisionTransformer``): ``cls_token``,
``reg_token``, ``pos_embed``, ``patch_embed.proj``, ``blocks.N.{norm1,attn.qkv,attn.proj,ls1.gamma,
norm2,mlp.fc1,mlp.fc2,ls2.gamma}``, ``norm``, ``fc_norm``, ``head``. Options as in timm: patch size,
depth, width (``embed_dim``), heads, ``mlp_ratio``, ``init_values`` (layer scale), ``reg_tokens``,
``class_token``, ``no_embed_class``, ``pre_norm``, ``global_pool`` and ``mlp_layer="swiglu_packed"``
(timm's ``SwiGLUPacked``: one ``fc1`` producing value and gate, SiLU on the first half). LayerNorm
eps is 1e-6, as in timm. Inputs of another size than ``img_size`` get the position embedding
resampled (bicubic, antialiased, as timm's ``dynamic_img_size``).

``global_pool`` adds ``"token+avg"``: the class token concatenated with the mean of the patch
tokens, the embedding Virchow's authors recommend (their model card).

Named configurations (the timm names, and the options the pathology encoders' published configs add
on top) live in :data:`VIT_CONFIGS`; any of their fields can be overridden by ``architecture_args``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

EPS = 1e-6


class LayerScale(nn.Module):
    def __init__(self, dim: int, init_values: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(init_values * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = (
            self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        )
        y = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(y.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    """timm ``Mlp`` (GELU) or, with ``packed_glu``, ``GluMlp(gate_last=False)`` = ``SwiGLUPacked``."""

    def __init__(self, dim: int, hidden: int, act: str = "gelu", packed_glu: bool = False) -> None:
        super().__init__()
        if packed_glu and hidden % 2:
            raise ValueError(f"a SwiGLUPacked MLP needs an even hidden width (got {hidden})")
        self.packed_glu = packed_glu
        self.fc1 = nn.Linear(dim, hidden)
        self.act: nn.Module = {"gelu": nn.GELU(), "silu": nn.SiLU(), "gelu_tanh": nn.GELU("tanh")}[
            act
        ]
        self.fc2 = nn.Linear(hidden // 2 if packed_glu else hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc1(x)
        if self.packed_glu:
            x1, x2 = x.chunk(2, dim=-1)
            return self.fc2(self.act(x1) * x2)
        return self.fc2(self.act(x))


class Block(nn.Module):
    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_hidden: int,
        init_values: float | None,
        act: str,
        packed_glu: bool,
        qkv_bias: bool,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=EPS)
        self.attn = Attention(dim, num_heads, qkv_bias)
        self.ls1: nn.Module = LayerScale(dim, init_values) if init_values else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=EPS)
        self.mlp = Mlp(dim, mlp_hidden, act, packed_glu)
        self.ls2: nn.Module = LayerScale(dim, init_values) if init_values else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, in_chans: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)  # (B, D, gh, gw)


class VisionTransformer(nn.Module):
    """A ViT whose ``state_dict`` keys are timm's for the same options."""

    def __init__(
        self,
        num_classes: int = 0,
        *,
        img_size: int = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        init_values: float | None = None,
        class_token: bool = True,
        reg_tokens: int = 0,
        no_embed_class: bool = False,
        pre_norm: bool = False,
        global_pool: str = "token",
        mlp_layer: str = "mlp",
        act_layer: str | None = None,
        fc_norm: bool | None = None,
        dynamic_img_size: bool = True,
    ) -> None:
        super().__init__()
        if global_pool not in ("token", "avg", "token+avg", ""):
            raise ValueError(f"global_pool {global_pool!r}: use token, avg or token+avg")
        if mlp_layer not in ("mlp", "swiglu_packed", "SwiGLUPacked"):
            raise ValueError(f"mlp_layer {mlp_layer!r}: use mlp or swiglu_packed")
        if global_pool in ("token", "token+avg") and not class_token:
            raise ValueError(f"global_pool {global_pool!r} needs class_token")
        packed = mlp_layer != "mlp"
        act = (act_layer or ("silu" if packed else "gelu")).lower()
        if act not in ("gelu", "silu", "gelu_tanh"):
            raise ValueError(f"act_layer {act_layer!r}: use gelu, gelu_tanh or silu")
        self.global_pool = global_pool or "token"
        self.num_prefix_tokens = int(class_token) + reg_tokens
        self.no_embed_class = no_embed_class
        self.grid = img_size // patch_size
        self.dynamic_img_size = dynamic_img_size
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if class_token else None
        self.reg_token = nn.Parameter(torch.zeros(1, reg_tokens, embed_dim)) if reg_tokens else None
        embed_len = self.grid**2 + (0 if no_embed_class else self.num_prefix_tokens)
        self.pos_embed = nn.Parameter(torch.randn(1, embed_len, embed_dim) * 0.02)
        self.norm_pre: nn.Module = nn.LayerNorm(embed_dim, eps=EPS) if pre_norm else nn.Identity()
        hidden = int(embed_dim * mlp_ratio)
        self.blocks = nn.Sequential(
            *[
                Block(embed_dim, num_heads, hidden, init_values, act, packed, qkv_bias)
                for _ in range(depth)
            ]
        )
        use_fc_norm = self.global_pool == "avg" if fc_norm is None else fc_norm
        self.norm: nn.Module = nn.Identity() if use_fc_norm else nn.LayerNorm(embed_dim, eps=EPS)
        self.fc_norm: nn.Module = nn.LayerNorm(embed_dim, eps=EPS) if use_fc_norm else nn.Identity()
        width = embed_dim * (2 if self.global_pool == "token+avg" else 1)
        self.num_features = width
        self.head: nn.Module = nn.Linear(width, num_classes) if num_classes > 0 else nn.Identity()
        for p in (self.cls_token, self.reg_token):
            if p is not None:
                nn.init.normal_(p, std=1e-6)

    def _pos_embed(self, x: torch.Tensor) -> torch.Tensor:
        b, d, gh, gw = x.shape
        x = x.flatten(2).transpose(1, 2)
        pos: torch.Tensor = self.pos_embed
        if (gh, gw) != (self.grid, self.grid):
            if not self.dynamic_img_size:
                raise ValueError(
                    f"input grid {gh}x{gw} differs from the model's {self.grid}x{self.grid}"
                )
            pos = _resample(pos, (gh, gw), 0 if self.no_embed_class else self.num_prefix_tokens)
        prefix = [t.expand(b, -1, -1) for t in (self.cls_token, self.reg_token) if t is not None]
        if self.no_embed_class:
            return torch.cat([*prefix, x + pos], dim=1)
        return torch.cat([*prefix, x], dim=1) + pos

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self._pos_embed(self.patch_embed(x))
        return self.norm(self.blocks(self.norm_pre(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_features(x)
        patches = x[:, self.num_prefix_tokens :]
        if self.global_pool == "avg":
            x = patches.mean(dim=1)
        elif self.global_pool == "token+avg":
            x = torch.cat([x[:, 0], patches.mean(dim=1)], dim=1)
        else:
            x = x[:, 0]
        return self.head(self.fc_norm(x))


def _resample(pos: torch.Tensor, size: tuple[int, int], n_prefix: int) -> torch.Tensor:
    prefix, grid = pos[:, :n_prefix], pos[:, n_prefix:]
    old = int(math.isqrt(grid.shape[1]))
    d = grid.shape[-1]
    grid = grid.float().reshape(1, old, old, d).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=size, mode="bicubic", antialias=True)
    grid = grid.permute(0, 2, 3, 1).reshape(1, -1, d).to(pos.dtype)
    return torch.cat([prefix, grid], dim=1)


# timm's registered configurations (vision_transformer.py), the pathology encoders' published options
# noted beside them. mlp_ratio 2.66667 * 2 with SwiGLUPacked gives fc1 8192 / fc2 4096 at width 1536.
VIT_CONFIGS: dict[str, dict[str, Any]] = {
    "vit_tiny_patch16_224": dict(patch_size=16, embed_dim=192, depth=12, num_heads=3),
    "vit_small_patch16_224": dict(patch_size=16, embed_dim=384, depth=12, num_heads=6),
    "vit_base_patch16_224": dict(patch_size=16, embed_dim=768, depth=12, num_heads=12),
    "vit_large_patch16_224": dict(
        patch_size=16, embed_dim=1024, depth=24, num_heads=16
    ),  # UNI: + init_values 1e-5
    "vit_huge_patch14_224": dict(
        patch_size=14, embed_dim=1280, depth=32, num_heads=16
    ),  # Virchow: + SwiGLUPacked
    "vit_small_patch14_dinov2": dict(
        patch_size=14, embed_dim=384, depth=12, num_heads=6, init_values=1e-5
    ),
    "vit_base_patch14_dinov2": dict(
        patch_size=14, embed_dim=768, depth=12, num_heads=12, init_values=1e-5
    ),
    "vit_large_patch14_dinov2": dict(
        patch_size=14, embed_dim=1024, depth=24, num_heads=16, init_values=1e-5
    ),
    "vit_giant_patch14_dinov2": dict(
        patch_size=14,
        embed_dim=1536,
        depth=40,
        num_heads=24,
        init_values=1e-5,
        mlp_ratio=2.66667 * 2,
        mlp_layer="swiglu_packed",
        act_layer="silu",
    ),
    "vit_giant_patch14_reg4_dinov2": dict(
        patch_size=14,
        embed_dim=1536,
        depth=40,
        num_heads=24,
        init_values=1e-5,
        mlp_ratio=2.66667 * 2,
        mlp_layer="swiglu_packed",
        act_layer="silu",
        reg_tokens=4,
        no_embed_class=True,
    ),
}


def vit_builder(name: str) -> Any:
    """A builder ``(num_outputs, **architecture_args) -> VisionTransformer`` for a named config."""
    base = VIT_CONFIGS[name]

    def build(num_outputs: int = 0, **kw: Any) -> nn.Module:
        return VisionTransformer(num_outputs, **{**base, **kw})

    build.__name__ = name
    return build


__all__ = ["VIT_CONFIGS", "VisionTransformer", "vit_builder"]
