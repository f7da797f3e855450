"""A setting is spelled once: ``ask``, ``demo`` and every ``eval`` command take the agent flags
derived from ``AgentConfig`` (same names, same help), and ``eval`` its run flags from ``EvalConfig``."""

from __future__ import annotations

from typing import Any

import pytest
from cli_helpers import all_commands, plain_help

from slidescout.agents.config import AgentConfig
from slidescout.cli.options import AGENT_FLAGS, EVAL_FLAGS, parse_keep_images
from slidescout.errors import ConfigError
from slidescout.eval.config import EvalConfig


def _commands() -> dict[str, Any]:
    return all_commands()


def _options(cmd: Any) -> dict[str, Any]:
    return {o: p for p in cmd.params if p.param_type_name == "option" for o in p.opts}


@pytest.mark.parametrize(
    "command", ["ask", "demo", "eval file", "eval multipathqa", "eval medframeqa", "eval synth"]
)
def test_agent_flags_are_the_same_everywhere(command: str) -> None:
    ask, other = _options(_commands()["ask"]), _options(_commands()[command])
    for field, (flags, _) in AGENT_FLAGS.items():
        for flag in flags:
            name = flag.split("/")[0]
            assert name in other, f"{command} lacks {name}"
            mine, theirs = plain_help(other[name].help), plain_help(ask[name].help)
            assert mine.split(" [default:")[0] == theirs.split(" [default:")[0]
        assert AgentConfig.model_fields[field].description  # the help comes from the field


def test_eval_run_flags_come_from_eval_config() -> None:
    opts = _options(_commands()["eval file"])
    for field, (flags, _) in EVAL_FLAGS.items():
        desc = EvalConfig.model_fields[field].description or ""
        assert all(desc.rstrip(".")[:30].lower() in (opts[f].help or "").lower() for f in flags)


def test_seed_has_one_name_with_the_old_alias() -> None:
    for command in ("ask", "eval synth"):
        opts = _options(_commands()[command])
        assert opts["--seed"] is opts["--model-seed"]
    assert "--data-seed" in _options(_commands()["eval synth"])


def test_keep_images_takes_a_number_or_all() -> None:
    assert (
        parse_keep_images("3") == 3
        and parse_keep_images("all") == "all"
        and parse_keep_images(None) is None
    )
    with pytest.raises(ConfigError, match="--keep-images"):
        parse_keep_images("some")
    with pytest.raises(ConfigError, match="0 or more"):
        parse_keep_images("-1")


def test_eval_config_is_recorded_as_it_is() -> None:
    cfg = EvalConfig(repeats=5, concurrency=4, budget_usd=2.5)
    data = cfg.manifest()
    assert data["repeats"] == 5 and data["max_connections"] == 4 and data["budget"]["usd"] == 2.5
    assert "progress" not in data
