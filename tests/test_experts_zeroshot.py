"""Zero-shot experts: a tiny random CLIP (and SigLIP) built and saved by the test, through the card
loader, the runtime, the ``zero_shot`` tool and ``experts run``; probabilities checked against a
direct transformers forward pass."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from slidefactory import make_tiff
from test_experts_support import blobs_pattern, write_card
from typer.testing import CliRunner

import slidescout.cli.experts_cmd  # noqa: F401  (registers the commands)
from slidescout.cli.app import app
from slidescout.errors import ConfigError, ToolError
from slidescout.slides import open_slide
from slidescout.tools.context import ToolContext
from slidescout.tools.experts import catalog
from slidescout.tools.experts.cards import load_card
from slidescout.tools.experts.checks import check_model
from slidescout.tools.experts.loading import load_runner

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

LABELS = ["tumour", "stroma", "fat"]
WORDS = ["an", "h&e", "image", "of", "tumour", "stroma", "fat", "necrosis", "normal", "tissue", "."]
MEAN, STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]
SIZE = 32


def tiny_tokenizer(folder):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {"<unk>": 0, "<pad>": 1, "<|startoftext|>": 2, "<|endoftext|>": 3}
    vocab.update({w: i + 4 for i, w in enumerate(WORDS)})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(
        single="<|startoftext|> $A <|endoftext|>",
        special_tokens=[("<|startoftext|>", 2), ("<|endoftext|>", 3)],
    )
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        pad_token="<pad>",
        bos_token="<|startoftext|>",
        eos_token="<|endoftext|>",
        model_max_length=16,
    )
    fast.save_pretrained(str(folder))
    return fast, len(vocab)


def tiny_clip(folder, family="clip"):
    _, vocab = tiny_tokenizer(folder)
    text = dict(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=16,
        bos_token_id=2,
        eos_token_id=3,
        pad_token_id=1,
    )
    vision = dict(
        image_size=SIZE,
        patch_size=8,
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
    )
    torch.manual_seed(0)
    if family == "clip":
        config = transformers.CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)
        model = transformers.CLIPModel(config).eval()
        proc = transformers.CLIPImageProcessor(
            size={"shortest_edge": SIZE},
            crop_size={"height": SIZE, "width": SIZE},
            image_mean=MEAN,
            image_std=STD,
        )
    else:
        config = transformers.SiglipConfig(text_config=text, vision_config=vision)
        model = transformers.SiglipModel(config).eval()
        proc = transformers.SiglipImageProcessor(
            size={"height": SIZE, "width": SIZE}, image_mean=[0.5] * 3, image_std=[0.5] * 3
        )
    model.save_pretrained(str(folder))
    proc.save_pretrained(str(folder))
    return model, proc


@pytest.fixture(scope="module")
def tissue_slide(tmp_path_factory):
    path = make_tiff(
        tmp_path_factory.mktemp("zs") / "tissue.tiff",
        256,
        256,
        mpp=0.5,
        quality=95,
        pattern=blobs_pattern([(128, 128, 250, 250)], nuclei_every=20, radius=5),
    )
    return open_slide(path)


@pytest.fixture(scope="module")
def clip_card(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip")
    model, proc = tiny_clip(folder / "tiny-clip")
    path = write_card(
        folder,
        "tiny-clip",
        "tiny-clip",
        format="transformers",
        output="zero_shot",
        patch_size=SIZE,
        prompts=["an h&e image of {} ."],
        labels=LABELS,
    )
    path.write_text(
        path.read_text()
        .replace("mean: [0, 0, 0]\n", "")
        .replace("mean:\n- 0\n- 0\n- 0\n", "")
        .replace("std:\n- 1\n- 1\n- 1\n", "")
    )
    return model, proc, load_card(path)


def direct_probs(model, proc, tokenizer_dir, tiles, labels, prompt, family="clip"):
    from PIL import Image

    tok = transformers.AutoTokenizer.from_pretrained(str(tokenizer_dir))
    pixels = proc(images=[Image.fromarray(t) for t in tiles], return_tensors="pt")["pixel_values"]
    text = tok(
        [prompt.format(lab) for lab in labels],
        padding="max_length" if family == "siglip" else True,
        return_tensors="pt",
    )
    with torch.no_grad():
        out = model(
            input_ids=text["input_ids"],
            attention_mask=text.get("attention_mask"),
            pixel_values=pixels,
        )
    logits = out.logits_per_image
    return (torch.sigmoid(logits) if family == "siglip" else logits.softmax(dim=-1)).numpy()


def tiles_of(slide, run):
    reader = slide.patch_reader(run.plan.level)
    lx, ly = run.plan.level_xy()
    return [reader.fetch(int(x), int(y), SIZE, SIZE) for x, y in zip(lx, ly, strict=True)]


def test_card_loads_with_processor_normalisation_and_checks(clip_card):
    _, _, card = clip_card
    assert card.card.format == "transformers" and "mean" not in card.card.model_fields_set
    report = check_model(card)
    assert report.output_width == 16  # projection_dim: normalised image embeddings
    runner = load_runner(card, "cpu")
    np.testing.assert_allclose(runner._host_shift, -np.asarray(MEAN) / np.asarray(STD), rtol=1e-6)


def test_zero_shot_tool_matches_a_direct_transformers_pass(
    tmp_path, tissue_slide, clip_card, monkeypatch
):
    model, proc, card = clip_card
    monkeypatch.setenv("SLIDESCOUT_HOME", str(tmp_path / "home"))
    catalog.add(card)
    from slidescout.tools.experts.model_tools import zero_shot, zero_shot_run
    from slidescout.tools.registry import ToolRegistry

    assert "zero_shot" in ToolRegistry(plugins=False).names()
    run = zero_shot_run(tissue_slide, card, (64, 64, 128, 128), LABELS, "cpu", 100)
    assert len(run.plan) == 16
    want = direct_probs(
        model, proc, card.weights, tiles_of(tissue_slide, run), LABELS, card.card.prompts[0]
    )
    np.testing.assert_allclose(run.outputs, want, rtol=1e-4, atol=1e-5)
    ctx = ToolContext(slide=tissue_slide, device="cpu")
    res = asyncio.run(
        zero_shot.invoke(
            {"x": 64, "y": 64, "w": 128, "h": 128, "labels": LABELS, "model": "tiny-clip"}, ctx
        )
    )
    mean = want.mean(axis=0)
    for i, lab in enumerate(LABELS):
        assert res.data["probabilities"][lab] == pytest.approx(float(mean[i]), abs=1e-4)
    best = LABELS[int(mean.argmax())]
    assert res.data["best"] == best and f"Best label: {best}." in res.text
    assert (
        res.images[0].label == "zero-shot heatmap" and f"P({best})" in res.data["heatmap"]["legend"]
    )
    with pytest.raises(ToolError, match="at least two labels"):
        asyncio.run(
            zero_shot.invoke(
                {
                    "x": 64,
                    "y": 64,
                    "w": 128,
                    "h": 128,
                    "labels": ["x", " x "],
                    "model": "tiny-clip",
                },
                ToolContext(slide=tissue_slide, device="cpu"),
            )
        )
    result = CliRunner().invoke(
        app,
        [
            "experts",
            "run",
            "tiny-clip",
            str(tissue_slide.path),
            "--box",
            "64,64,128,128",
            "--labels",
            "necrosis,normal tissue",
            "--device",
            "cpu",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data["probabilities"]) == {"necrosis", "normal tissue"} and data["patches"] == 16
    assert sum(data["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)


def test_siglip_probabilities_are_per_label_sigmoids(tmp_path, tissue_slide):
    model, proc = tiny_clip(tmp_path / "tiny-siglip", family="siglip")
    path = write_card(
        tmp_path,
        "tiny-siglip",
        "tiny-siglip",
        format="transformers",
        output="zero_shot",
        patch_size=SIZE,
        prompts=["an h&e image of {} ."],
        mean=[0.5] * 3,
        std=[0.5] * 3,
    )
    card = load_card(path)
    from slidescout.tools.experts.model_tools import zero_shot_run

    run = zero_shot_run(tissue_slide, card, (64, 64, 128, 128), LABELS, "cpu", 100)
    want = direct_probs(
        model,
        proc,
        card.weights,
        tiles_of(tissue_slide, run),
        LABELS,
        card.card.prompts[0],
        "siglip",
    )
    np.testing.assert_allclose(run.outputs, want, rtol=1e-4, atol=1e-5)


def test_zero_shot_card_errors(tmp_path):
    with pytest.raises(ConfigError, match="zero_shot models load with format 'transformers'"):
        load_card(write_card(tmp_path, "z", "z.pt", format="torchscript", output="zero_shot"))
    with pytest.raises(ConfigError, match="each template needs '{}'"):
        load_card(
            write_card(
                tmp_path, "z2", "z", format="transformers", output="zero_shot", prompts=["tumour"]
            )
        )
    card = load_card(
        write_card(tmp_path, "z3", "missing", format="transformers", output="zero_shot")
    )
    with pytest.raises(ConfigError, match="no Hugging Face model folder at .*missing"):
        card.check_weights()
