"""Registries with entry points for every extension point, loaded lazily.

The done-when test installs a throwaway package (a dist-info with ``entry_points.txt`` on
``PYTHONPATH``) that adds a provider, a preset, a dataset, an answer format and an expert kind
through entry points alone, then runs ``slidescout ask`` and ``slidescout eval`` with them: no
edit to slidescout.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from slidefactory import make_tiff

import slidescout
from slidescout.tools.registry import BUILTIN_TOOLS

SRC = str(Path(slidescout.__file__).resolve().parents[1])

PLUGIN = '''
"""A throwaway slidescout plugin: one of each extension point."""

import json
import re
from pathlib import Path

import numpy as np

from slidescout.agents.models import ModelProfile
from slidescout.agents.presets import Preset
from slidescout.core.answer_formats import AnswerFormat
from slidescout.core.messages import AssistantMessage, ModelResponse, TextPart, ToolCallPart
from slidescout.core.messages import ToolMessage, Usage
from slidescout.core.model_settings import ModelSettings
from slidescout.core.parsing import ParsedAnswer
from slidescout.core.sample import Sample
from slidescout.eval.dataset_registry import DatasetSpec
from slidescout.eval.samples import DatasetLoad
from slidescout.tools.experts.kinds import ExpertKind


class EchoPlanner:
    """Zooms, runs the registered expert once, then answers from what the expert said."""

    settings = ModelSettings()

    def __init__(self, model):
        self.name = f"echo:{model}"
        self.profile = ModelProfile(
            api="plugin", provider="echo", model=self.name, route="the echo planner"
        )

    async def request(self, req):
        results = [m for m in req.messages if isinstance(m, ToolMessage)]
        if not results:
            calls = [
                ToolCallPart(id="c1", name="patch_classifier",
                             arguments={"x": 0, "y": 0, "w": 256, "h": 256, "model": "tiny-sig"})
            ]
            msg = AssistantMessage(parts=[TextPart(text="Let me ask the expert."), *calls])
        else:
            seen = " ".join(p.text for r in results[-1].results for p in r.content
                            if isinstance(p, TextPart))
            verdict = "yes" if "Most probable class per patch" in seen else "no"
            msg = AssistantMessage(parts=[TextPart(text=f"Expert said: {seen[:300]}\\nAnswer: {verdict}")])
        return ModelResponse(message=msg, usage=Usage(cost_usd=0.0), model=self.name, api="plugin")

    async def aclose(self):
        return None


class EchoProvider:
    forms = ("echo:NAME (the echo planner)",)
    model_part = "name"
    api_choices = ("auto",)

    def profile(self, model, route):
        return EchoPlanner(model).profile

    def build(self, model, route):
        return EchoPlanner(model)


PROVIDER = EchoProvider()

QUICK = Preset(
    name="quick",
    description="two steps: the expert, then the answer",
    tools=("slide_zoom", "patch_classifier"),
    max_steps=3,
    keep_images=None,
)


def _yesno(text, sample, mode):
    m = re.findall(r"Answer:\\s*(yes|no)", text or "", re.I)
    if not m:
        return ParsedAnswer(raw=(text or "")[-200:], ok=False, method="none", error="no yes/no")
    return ParsedAnswer(value=m[-1].lower(), raw=m[-1], ok=True, method="yesno")


YESNO = AnswerFormat("yesno", "a final 'Answer: yes' or 'Answer: no' line", _yesno)


def _load(request):
    rows = json.loads(Path(request.path).read_text())
    base = Path(request.path).parent
    out = DatasetLoad(dataset="toyqa", source=str(request.path), n_rows=len(rows))
    for i, row in enumerate(rows):
        slide = str((base / row["slide"]).resolve())
        out.samples.append(
            Sample(
                sample_id=f"toy/{i}", task="toy", question=row["question"],
                options=["yes", "no"], answer=row["answer"], answer_label=row["answer"],
                answer_format="yesno", image_path=slide, image_paths=[slide],
                meta={"dataset": "toyqa"},
            )
        )
    return out


TOYQA = DatasetSpec(
    "toyqa", "yes/no questions on slides", _load, lambda p: p.suffix == ".toyqa"
)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


SIGMOID = ExpertKind(
    "sigmoid", "independent probabilities per label (multi-label)", probabilities=_sigmoid
)
'''

ENTRY_POINTS = """\
[slidescout.providers]
echo = toyplug:PROVIDER

[slidescout.presets]
quick = toyplug:QUICK

[slidescout.datasets]
toyqa = toyplug:TOYQA

[slidescout.answer_formats]
yesno = toyplug:YESNO

[slidescout.expert_kinds]
sigmoid = toyplug:SIGMOID
"""


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The throwaway package installed on a path of its own, and an environment that sees it."""
    root = tmp_path_factory.mktemp("plugin")
    site = root / "site"
    (site / "toyplug").mkdir(parents=True)
    (site / "toyplug" / "__init__.py").write_text(PLUGIN)
    info = site / "toyplug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toyplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([SRC, str(site)]),
        "SLIDESCOUT_HOME": str(root / "home"),
        "COLUMNS": "200",
    }
    env.pop("OPENAI_API_KEY", None)
    env.pop("ANTHROPIC_API_KEY", None)
    return root, env


def _cli(env: dict[str, str], *args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "slidescout", *map(str, args)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _expert(root: Path) -> Path:
    """A tiny TorchScript model whose card says ``output: sigmoid`` (the plugin's kind)."""
    import torch

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = torch.nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(x.mean(dim=(2, 3)))

    folder = root / "expert"
    folder.mkdir()
    torch.jit.script(Tiny()).save(str(folder / "tiny.pt"))
    card = folder / "tiny.yaml"
    card.write_text(
        "name: tiny-sig\nformat: torchscript\npath: tiny.pt\nmpp: 0.5\npatch_size: 32\n"
        "labels: [tumor, normal]\noutput: sigmoid\n"
    )
    return card


def test_a_plugin_adds_a_provider_preset_dataset_format_and_expert_kind(
    plugin_env: tuple[Path, dict[str, str]],
) -> None:
    root, env = plugin_env
    slide = make_tiff(root / "slide.tiff", 1024, 768, mpp=0.5)
    added = _cli(env, "experts", "add", _expert(root), "--device", "cpu", cwd=root)
    assert added.returncode == 0, added.stderr

    asked = _cli(
        env, "ask", slide, "Is there tumour?", "-m", "echo:planner", "-p", "quick",
        "--json", "-o", root / "ask", cwd=root,
    )  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    out = json.loads(asked.stdout)
    assert out["status"] == "answered" and "Answer: yes" in out["answer"]
    trace = json.loads(Path(out["trace"]).read_text())
    (tool,) = [e for e in trace["events"] if e["kind"] == "tool"]
    assert tool["call"]["name"] == "patch_classifier" and tool["error"] is None
    assert tool["data"]["output"] == "sigmoid" and set(tool["data"]["class_fractions"]) == {
        "tumor",
        "normal",
    }
    assert trace["preset"] == "quick" and trace["model"] == "echo:planner"

    questions = root / "qs.toyqa"
    questions.write_text(
        json.dumps(
            [
                {"slide": "slide.tiff", "question": "Tumour here?", "answer": "yes"},
                {"slide": "slide.tiff", "question": "Is it normal?", "answer": "no"},
            ]
        )
    )
    ran = _cli(
        env, "eval", "file", questions, "-m", "echo:planner", "-p", "quick", "-o", root / "run",
        "--no-progress", "--json", cwd=root,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    records = [
        json.loads(line) for line in (root / "run" / "results.jsonl").read_text().splitlines()
    ]
    assert sorted((r["sample_id"], r["predicted"], r["correct"]) for r in records) == [
        ("toy/0", "yes", True),
        ("toy/1", "yes", False),
    ]
    assert {r["answer_format"] for r in records} == {"yesno"}
    report = json.loads(ran.stdout)
    assert report["scores"]["toy"]["n"] == 2


def test_an_unknown_name_lists_the_plugins(plugin_env: tuple[Path, dict[str, str]]) -> None:
    root, env = plugin_env
    bad = _cli(env, "ask", "x.tiff", "q?", "-m", "echo:planner", "-p", "quik", cwd=root)
    lines = bad.stderr.strip().splitlines()
    assert bad.returncode == 2 and len(lines) == 1
    assert "unknown preset 'quik'" in lines[0] and "quick" in lines[0] and "scout" in lines[0]
    bad = _cli(env, "ask", "x.tiff", "q?", "-m", "nope:model", cwd=root)
    assert "echo:NAME" in bad.stderr and "openai:MODEL" in bad.stderr


def test_builtin_tools_are_declared_with_their_modules() -> None:
    """``BUILTIN_TOOLS`` names every tool of every built-in module, with the right module."""
    found: dict[str, str] = {}
    for module in dict.fromkeys(BUILTIN_TOOLS.values()):
        for t in importlib.import_module(module).TOOLS:
            found[t.name] = module
    assert found == BUILTIN_TOOLS


def test_tools_declare_what_they_need() -> None:
    from slidescout.tools import default_registry

    reg = default_registry()
    assert reg.get("slide_zoom").needs == "slide" and reg.get("lookup").needs == "none"
    assert {reg.get(n).needs for n in ("view_image", "crop_image", "compare_images")} == {
        "imageset"
    }


def _python(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": SRC},
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_start_up_reads_no_plugin() -> None:
    """Importing the CLI scans no slidescout entry-point group and imports no plugin."""
    out = _python(
        """
        import importlib.metadata
        calls = []
        real = importlib.metadata.entry_points
        importlib.metadata.entry_points = lambda **kw: calls.append(kw) or real(**kw)
        import slidescout.cli
        print([c for c in calls if str(c.get("group", "")).startswith("slidescout")])
        """
    )
    assert out == "[]"


def test_an_agent_imports_only_its_presets_tools() -> None:
    out = _python(
        """
        import sys
        from slidescout.agents.loop import make_agent
        make_agent("expert", preset="scout")
        modules = ("slidescout.tools.navigation", "slidescout.tools.experts.tools",
                   "slidescout.tools.experts.model_tools", "slidescout.tools.knowledge.tool",
                   "slidescout.tools.imageset_tools")
        print(sorted(m for m in modules if m in sys.modules), "torch" in sys.modules)
        """
    )
    assert out == "['slidescout.tools.navigation'] False"
