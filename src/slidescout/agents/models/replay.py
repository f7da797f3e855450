"""``replay:TRACE``: a model that replays the outputs recorded in a trace, in order.

Deterministic reruns and tests: the loop, tools and rendering run for real; only the model's
replies come from the file.
"""

from __future__ import annotations

from pathlib import Path

from slidescout.agents.models.profile import offline_profile
from slidescout.core.messages import ModelApi, ModelRequest, ModelResponse, TextPart, UserMessage
from slidescout.core.model_settings import ModelSettings
from slidescout.core.trace import load_trace
from slidescout.errors import ConfigError, ModelError


class ReplayModel:
    api: ModelApi = "replay"
    profile = offline_profile("replay", "replay")
    settings = ModelSettings()

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigError(f"replay: {self.path} is not a trace file")
        trace = load_trace(self.path)
        self._calls = trace.model_calls
        self._i = 0
        self.recorded_question = trace.question
        self.recorded_model = trace.model
        self.name = f"replay:{self.path}"

    def _check_question(self, req: ModelRequest) -> None:
        """A trace replays only for its own question: another question would get its answer."""
        texts = " ".join(
            p.text
            for m in req.messages
            if isinstance(m, UserMessage)
            for p in m.parts
            if isinstance(p, TextPart)
        )
        norm = " ".join(texts.split())
        if " ".join(self.recorded_question.split()) not in norm:
            raise ModelError(
                f"replay: {self.path.name} recorded the question {self.recorded_question[:80]!r}, "
                "not this one; replay a trace with the same question",
                retryable=False,
            )

    async def request(self, req: ModelRequest) -> ModelResponse:
        if self._i == 0:
            self._check_question(req)
        if self._i >= len(self._calls):
            raise ModelError(
                f"replay of {self.path.name} has no recorded reply left (it had {len(self._calls)})"
            )
        ev = self._calls[self._i]
        self._i += 1
        return ModelResponse(
            message=ev.output,
            usage=ev.usage,
            model=self.name,
            api=self.api,
            latency_s=0.0,
            stop_reason=ev.stop_reason,
        )

    async def aclose(self) -> None:
        return None
