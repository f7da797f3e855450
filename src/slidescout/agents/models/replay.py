"""``replay:TRACE``: a model that replays the outputs recorded in a trace, in order.

Deterministic reruns and tests: the loop, tools and rendering run for real; only the model's
replies come from the file.
"""

from __future__ import annotations

from pathlib import Path

from slidescout.core.messages import ModelRequest, ModelResponse
from slidescout.core.trace import load_trace
from slidescout.errors import ConfigError, ModelError


class ReplayModel:
    api = "replay"
    supports_tools = True
    supports_images = True

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigError(f"replay: {self.path} is not a trace file")
        trace = load_trace(self.path)
        self._calls = trace.model_calls
        self._i = 0
        self.recorded_model = trace.model
        self.name = f"replay:{self.path}"

    async def request(self, req: ModelRequest) -> ModelResponse:
        if self._i >= len(self._calls):
            raise ModelError(f"replay of {self.path.name} has no recorded reply left (it had {len(self._calls)})")
        ev = self._calls[self._i]
        self._i += 1
        return ModelResponse(message=ev.output, usage=ev.usage, model=self.name, api=self.api,
                             latency_s=0.0, stop_reason=ev.stop_reason)

    async def aclose(self) -> None:
        return None
