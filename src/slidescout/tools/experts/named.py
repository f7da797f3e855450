"""Ready model cards for the models pathologists use (``slidescout experts catalog``).

No weights ship. ``slidescout experts add NAME`` writes the card under ``$SLIDESCOUT_HOME/cards``
and fetches the weights from the Hugging Face hub with the user's token (gated repos need their
terms accepted first), or takes ``--weights PATH``.

Facts come from each model's paper and Hugging Face model card, as cited in ``source``; where we
could not confirm a fact it says "unknown" or "check the repo". The timm configurations are the
ones the model cards give to ``timm.create_model``, mapped onto the built-in ViTs (``vit.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


@dataclass(frozen=True)
class NamedModel:
    """A ready card and where its weights come from."""

    name: str
    title: str
    card: dict[str, Any]  # model card fields, less name and path
    hub: str | None  # Hugging Face repo
    files: tuple[str, ...] = ()  # weight files to try, in order (state_dict); empty: the whole repo
    license: str = "unknown"
    gate: str = "unknown"
    source: str = ""
    normalisation: str = ""
    loadable: bool = True
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        c = self.card
        return {
            "name": self.name,
            "title": self.title,
            "hub": self.hub,
            "license": self.license,
            "gate": self.gate,
            "mpp": c.get("mpp"),
            "patch_size": c.get("patch_size"),
            "normalisation": self.normalisation,
            "output": c.get("output"),
            "format": c.get("format"),
            "architecture": c.get("architecture"),
            "loadable": self.loadable,
            "source": self.source,
            "notes": list(self.notes),
        }


_VIT_FILES = ("pytorch_model.bin", "model.safetensors")

NAMED: dict[str, NamedModel] = {
    m.name: m
    for m in [
        NamedModel(
            name="uni",
            title="UNI (ViT-L/16, DINOv2 on Mass-100K)",
            hub="MahmoodLab/UNI",
            files=_VIT_FILES,
            card=dict(
                format="state_dict",
                architecture="vit_large_patch16_224",
                architecture_args={"init_values": 1e-5},
                mpp=0.5,
                patch_size=224,
                output="embedding",
                embedding_dim=1024,
                **IMAGENET,
            ),
            license="CC-BY-NC-ND-4.0 (non-commercial research)",
            gate="gated: accept the terms on Hugging Face",
            source="Chen et al., Nature Medicine 2024 (UNI); huggingface.co/MahmoodLab/UNI",
            normalisation="ImageNet mean/std",
            notes=[
                "20x (about 0.5 µm/px) tiles, as in the paper; the class token is the embedding"
            ],
        ),
        NamedModel(
            name="virchow",
            title="Virchow (ViT-H/14, DINOv2 on 1.5M slides)",
            hub="paige-ai/Virchow",
            files=_VIT_FILES,
            card=dict(
                format="state_dict",
                architecture="vit_huge_patch14_224",
                architecture_args={
                    "init_values": 1e-5,
                    "mlp_ratio": 5.3375,
                    "mlp_layer": "swiglu_packed",
                    "act_layer": "silu",
                    "global_pool": "token+avg",
                },
                mpp=0.5,
                patch_size=224,
                output="embedding",
                embedding_dim=2560,
                **IMAGENET,
            ),
            license="check the repo (Apache-2.0 as we recall it; unconfirmed)",
            gate="gated: accept the terms on Hugging Face",
            source="Vorontsov et al., Nature Medicine 2024 (Virchow); huggingface.co/paige-ai/Virchow",
            normalisation="ImageNet mean/std",
            notes=[
                "embedding = class token + mean of the patch tokens (2560), as the model card recommends",
                "SwiGLUPacked MLP with SiLU, as the model card passes to timm",
            ],
        ),
        NamedModel(
            name="h-optimus-0",
            title="H-optimus-0 (ViT-g/14 with 4 registers)",
            hub="bioptimus/H-optimus-0",
            files=_VIT_FILES,
            card=dict(
                format="state_dict",
                architecture="vit_giant_patch14_reg4_dinov2",
                architecture_args={"init_values": 1e-5},
                mpp=0.5,
                patch_size=224,
                output="embedding",
                embedding_dim=1536,
                mean=[0.707223, 0.578729, 0.703617],
                std=[0.211883, 0.230117, 0.177517],
            ),
            license="check the repo (Apache-2.0 as we recall it; unconfirmed)",
            gate="unknown: check the repo",
            source="Bioptimus, H-optimus-0 model card (huggingface.co/bioptimus/H-optimus-0)",
            normalisation="its own mean/std from the model card",
            notes=["224 px tiles at 0.5 µm/px per the model card; class token embedding"],
        ),
        NamedModel(
            name="prov-gigapath",
            title="Prov-GigaPath tile encoder (ViT-g, DINOv2 on 1.3B tiles)",
            hub="prov-gigapath/prov-gigapath",
            files=_VIT_FILES,
            card=dict(
                format="state_dict",
                architecture="vit_giant_patch14_dinov2",
                architecture_args={"patch_size": 16, "mlp_ratio": 5.33334, "init_values": 1e-5},
                mpp=0.5,
                patch_size=224,
                output="embedding",
                embedding_dim=1536,
                **IMAGENET,
            ),
            license="check the repo (Apache-2.0 as we recall it; unconfirmed)",
            gate="gated: accept the terms on Hugging Face",
            source="Xu et al., Nature 2024 (Prov-GigaPath); huggingface.co/prov-gigapath/prov-gigapath",
            normalisation="ImageNet mean/std",
            notes=[
                "the authors resize 256 px tiles at 0.5 µm/px and centre-crop 224; here a 224 px patch at 0.5 µm/px",
                "tile encoder only; the slide encoder (LongNet) is not included",
            ],
        ),
        NamedModel(
            name="plip",
            title="PLIP (CLIP ViT-B/32 on OpenPath)",
            hub="vinid/plip",
            card=dict(
                format="transformers",
                output="zero_shot",
                mpp=0.5,
                patch_size=224,
                prompts=["an H&E image of {}."],
            ),
            license="unknown: check the repo",
            gate="not gated as far as we know",
            source="Huang et al., Nature Medicine 2023 (PLIP); huggingface.co/vinid/plip",
            normalisation="CLIP's, from the repo's preprocessor_config.json",
            notes=[
                "trained on images of mixed magnification: the best mpp is unknown (0.5 is a guess)",
                "prompt template from the PLIP paper's zero-shot evaluation",
            ],
        ),
        NamedModel(
            name="quiltnet",
            title="QuiltNet B-32 (CLIP ViT-B/32 on Quilt-1M)",
            hub="wisdomik/QuiltNet-B-32",
            card=dict(
                format="transformers",
                output="zero_shot",
                mpp=0.5,
                patch_size=224,
                prompts=["a histopathology image of {}."],
            ),
            license="unknown: check the repo",
            gate="not gated as far as we know",
            source="Ikezogwo et al., NeurIPS 2023 Datasets and Benchmarks (Quilt-1M); huggingface.co/wisdomik/QuiltNet-B-32",
            normalisation="CLIP's, from the repo's preprocessor_config.json",
            notes=[
                "loads only if the repo holds Hugging Face CLIP files (config.json); an open_clip-only "
                "checkpoint is not supported",
                "best mpp unknown (mixed-magnification training data)",
            ],
        ),
        NamedModel(
            name="conch",
            title="CONCH (CoCa-style vision-language model)",
            hub="MahmoodLab/CONCH",
            card=dict(
                format="transformers",
                output="zero_shot",
                mpp=0.5,
                patch_size=448,
                prompts=["an H&E image of {}."],
            ),
            license="CC-BY-NC-ND-4.0 (non-commercial research)",
            gate="gated: accept the terms on Hugging Face",
            source="Lu et al., Nature Medicine 2024 (CONCH); huggingface.co/MahmoodLab/CONCH",
            normalisation="unknown here (set by the authors' package)",
            loadable=False,
            notes=[
                "published for the authors' own conch/open_clip code, not as a transformers CLIP folder: "
                "slidescout cannot load it; listed so the gap is visible"
            ],
        ),
    ]
}


def get(name: str) -> NamedModel | None:
    return NAMED.get(name.strip().lower())


__all__ = ["NAMED", "NamedModel", "get"]
