"""Text-prompted zero-shot experts: CLIP and SigLIP models in Hugging Face format (how PLIP,
QuiltNet and similar pathology models are published), through ``transformers``.

    name: plip
    format: transformers
    path: plip/                    # a folder from save_pretrained (config.json, weights, tokenizer)
    hub: vinid/plip                # or: fetched with the user's Hugging Face token when the folder is missing
    output: zero_shot
    mpp: 0.5
    patch_size: 224
    prompts: ["an H&E image of {}."]
    labels: [tumor, stroma, lymphocytes]    # default classes; a call may name its own

Patches are normalised with the card's mean/std, or, when the card leaves them out, with the
``image_mean``/``image_std`` of the folder's ``preprocessor_config.json``. Each label's text
embedding is the mean of its prompts' normalised embeddings, normalised again (prompt
ensembling). CLIP: ``softmax(exp(logit_scale) * cos)`` over the labels; SigLIP: ``sigmoid(exp(
logit_scale) * cos + logit_bias)`` per label, as the models were trained.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from slidescout.errors import ConfigError
from slidescout.tools.experts.cards import Card
from slidescout.tools.experts.hub import hub_download
from slidescout.tools.experts.optional import torchvision_problem

FAMILIES = ("clip", "siglip")


def _transformers(card: Card) -> Any:
    try:
        import transformers
    except ImportError:
        raise ConfigError(
            f"model card {card.file.name}: zero-shot models need transformers, which is not "
            "installed (pip install 'slidescout[zeroshot]')"
        ) from None
    except Exception as exc:  # noqa: BLE001 - a broken install must not be a traceback
        if problem := torchvision_problem():
            raise ConfigError(f"model card {card.file.name}: {problem}") from None
        raise ConfigError(
            f"model card {card.file.name}: transformers is installed but fails to import "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); reinstall it "
            "(pip install -U transformers tokenizers)"
        ) from None
    return transformers


def model_folder(card: Card) -> Path:
    """The card's local folder, fetched from the hub (``hub:``, the user's token) when missing."""
    folder = card.weights
    if (folder / "config.json").is_file():
        return folder
    if not card.card.hub:
        raise ConfigError(
            f"model card {card.file.name}: no Hugging Face model folder at {folder} (it needs "
            "config.json; save one with save_pretrained, or set field 'hub')"
        )
    return hub_download(card.card.hub, folder, what=f"model card {card.file.name}")


class ZeroShotRunner:
    """A CLIP/SigLIP model on one device: uint8 (or prepared) patches -> normalised image embeddings;
    :meth:`classifier` turns it into a per-label probability runner."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        card: Card,
        device: str,
        family: str,
        mean: list[float],
        std: list[float],
    ) -> None:
        import torch

        self.model, self.tokenizer, self.card, self.device, self.family = (
            model,
            tokenizer,
            card,
            device,
            family,
        )
        self.host_prepare = device == "cpu"
        self._mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1).to(device)
        self._std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1).to(device)
        std_np = np.asarray(std, np.float32)
        self._host_scale = (1.0 / (255.0 * std_np)).astype(np.float32)
        self._host_shift = (-np.asarray(mean, np.float32) / std_np).astype(np.float32)
        self._text: dict[tuple[str, ...], Any] = {}

    def prepare(self, tile: np.ndarray, out: np.ndarray) -> None:
        """``(tile / 255 - mean) / std`` of a uint8 (P, P, 3) tile into a float32 (3, P, P) slice."""
        for ch in range(3):
            np.multiply(tile[..., ch], self._host_scale[ch], out=out[ch])
            out[ch] += self._host_shift[ch]

    def _pixels(self, batch: Any) -> Any:
        import torch

        x = (
            batch
            if isinstance(batch, torch.Tensor)
            else torch.from_numpy(np.ascontiguousarray(batch))
        )
        if x.dtype == torch.float32 and x.ndim == 4 and x.shape[1] == 3:
            return x.to(self.device)
        x = x.to(self.device).permute(0, 3, 1, 2).float() / 255.0
        return (x - self._mean) / self._std

    def image_embeddings(self, batch: Any) -> Any:
        import torch

        with torch.inference_mode():
            out = self.model.get_image_features(pixel_values=self._pixels(batch))
            emb = out if isinstance(out, torch.Tensor) else out.pooler_output
            return torch.nn.functional.normalize(emb.float(), dim=-1)

    def __call__(self, batch: Any) -> np.ndarray:
        return np.asarray(self.image_embeddings(batch).cpu().numpy(), np.float32)

    def text_embeddings(self, labels: list[str]) -> Any:
        """(K, D): per label, the normalised mean of its prompts' normalised embeddings."""
        import torch

        key = tuple(labels)
        if key not in self._text:
            if (
                len(self._text) >= 256
            ):  # label sets asked for in one process: keep the cache bounded
                self._text.clear()
            prompts = [t.format(lab) for lab in labels for t in self.card.card.prompts]
            pad: Any = "max_length" if self.family == "siglip" else True
            tok = self.tokenizer(prompts, padding=pad, truncation=True, return_tensors="pt")
            with torch.inference_mode():
                args = {
                    k: v.to(self.device)
                    for k, v in tok.items()
                    if k in ("input_ids", "attention_mask")
                }
                out = self.model.get_text_features(**args)
                emb = out if isinstance(out, torch.Tensor) else out.pooler_output
                emb = torch.nn.functional.normalize(emb.float(), dim=-1)
                emb = emb.view(len(labels), len(self.card.card.prompts), -1).mean(dim=1)
                self._text[key] = torch.nn.functional.normalize(emb, dim=-1)
        return self._text[key]

    def probabilities(self, image_emb: Any, text_emb: Any) -> Any:
        import torch

        with torch.inference_mode():
            logits = image_emb @ text_emb.t() * self.model.logit_scale.exp().float()
            if self.family == "siglip":
                return torch.sigmoid(logits + self.model.logit_bias.float())
            return torch.softmax(logits, dim=-1)

    def classifier(self, labels: list[str]) -> LabelRunner:
        return LabelRunner(self, labels)


class LabelRunner:
    """``runner(patches) -> (N, K)`` label probabilities (what the patch runtime calls)."""

    def __init__(self, base: ZeroShotRunner, labels: list[str]) -> None:
        self.base, self.labels = base, list(labels)
        self.device, self.card, self.host_prepare = base.device, base.card, base.host_prepare
        self.text = base.text_embeddings(self.labels)
        self.__name__ = base.card.name

    def prepare(self, tile: np.ndarray, out: np.ndarray) -> None:
        self.base.prepare(tile, out)

    def __call__(self, batch: Any) -> np.ndarray:
        p = self.base.probabilities(self.base.image_embeddings(batch), self.text)
        return np.asarray(p.cpu().numpy(), np.float32)


def load_zero_shot(card: Card, device: str = "cpu") -> ZeroShotRunner:
    """Load a CLIP or SigLIP folder (``transformers`` AutoModel and AutoTokenizer) on ``device``."""
    tf = _transformers(card)
    try:  # no download bars or processor warnings on the user's terminal
        tf.utils.logging.disable_progress_bar()
        tf.utils.logging.set_verbosity_error()
    except Exception:  # noqa: BLE001 - older or newer transformers without these helpers
        pass
    folder = model_folder(card)
    name = card.file.name
    try:
        config = tf.AutoConfig.from_pretrained(str(folder))
    except Exception as exc:  # noqa: BLE001
        raise ConfigError(
            f"model card {name}: cannot read the model config in {folder} ({_line(exc)})"
        ) from None
    family = str(getattr(config, "model_type", ""))
    if family not in FAMILIES:
        raise ConfigError(
            f"model card {name}: {folder.name} is a {family or 'unknown'!r} model; zero-shot cards "
            "take CLIP or SigLIP models (model_type clip or siglip)"
        )
    try:
        model = tf.AutoModel.from_pretrained(str(folder)).eval().to(device)
        tokenizer = tf.AutoTokenizer.from_pretrained(str(folder))
    except Exception as exc:  # noqa: BLE001
        if problem := torchvision_problem():  # transformers' CLIP needs it when it is installed
            raise ConfigError(
                f"model card {name}: transformers cannot load {family}: {problem}"
            ) from None
        raise ConfigError(
            f"model card {name}: transformers cannot load {folder} ({_line(exc)})"
        ) from None
    size = int(getattr(config.vision_config, "image_size", card.card.patch_size))
    if size != card.card.patch_size:
        raise ConfigError(
            f"model card {name}: the vision model takes {size} px images but field 'patch_size' "
            f"says {card.card.patch_size}; set patch_size: {size}"
        )
    mean, std = _normalisation(card, folder)
    return ZeroShotRunner(model, tokenizer, card, device, family, mean, std)


def _normalisation(card: Card, folder: Path) -> tuple[list[float], list[float]]:
    c = card.card
    mean, std = list(c.mean), list(c.std)
    pre = folder / "preprocessor_config.json"
    if pre.is_file() and not {"mean", "std"} & c.model_fields_set:
        try:
            cfg = json.loads(pre.read_text(encoding="utf-8"))
            mean, std = list(cfg.get("image_mean", mean)), list(cfg.get("image_std", std))
        except (OSError, ValueError):
            pass
    return mean, std


def _line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {(text[0] if text else '')[:200]}"


__all__ = ["LabelRunner", "ZeroShotRunner", "load_zero_shot", "model_folder"]
