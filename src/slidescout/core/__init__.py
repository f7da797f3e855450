"""Layer 0: what every layer shares.

- ``errors``: ``SlidescoutError`` and its kinds; ``types``: ``Box``, ``View``, ``MppSource``,
  ``LevelRule``, ``GuideStyle``; ``imaging``: the one image encoder.
- ``messages``: provider-neutral messages, ``ModelRequest``/``ModelResponse``, ``Usage``;
  ``model_settings``: ``ModelSettings``, the settings a request carries.
- ``trace``: the versioned trace schema; ``sample``: ``Sample``, the one question type;
  ``record``: ``ResultRecord``, one line of ``results.jsonl``; ``recorder``: the ``Recorder``
  protocol.
- ``parsing`` and ``answer_formats``: reading a reply, per answer format (a registry).
- ``registry``: the lazy ``Registry`` every extension point is; ``home``: ``SLIDESCOUT_HOME``;
  ``pidlock``: one process at a time in a folder.
"""

from slidescout.core.answer_formats import ANSWER_FORMATS, AnswerFormat, parse_reply
from slidescout.core.errors import (
    BudgetExceeded,
    ConfigError,
    DatasetError,
    ModelError,
    SlideError,
    SlidescoutError,
    ToolError,
    TraceError,
)
from slidescout.core.home import slidescout_home
from slidescout.core.messages import (
    AssistantMessage,
    ImagePart,
    ImageRef,
    Message,
    ModelApi,
    ModelRequest,
    ModelResponse,
    SystemMessage,
    TextPart,
    ToolCallPart,
    ToolMessage,
    ToolResultPart,
    ToolSpec,
    Usage,
    UserMessage,
)
from slidescout.core.model_settings import ModelSettings
from slidescout.core.parsing import ParsedAnswer, parse_answer
from slidescout.core.pidlock import PidLock
from slidescout.core.record import ResultRecord
from slidescout.core.recorder import MemoryRecorder, Recorder
from slidescout.core.registry import Registry
from slidescout.core.sample import Sample
from slidescout.core.trace import Status, Trace, load_trace
from slidescout.core.types import Box, GuideStyle, LevelRule, MppSource, View

__all__ = [
    "ANSWER_FORMATS",
    "AnswerFormat",
    "AssistantMessage",
    "Box",
    "BudgetExceeded",
    "ConfigError",
    "DatasetError",
    "GuideStyle",
    "ImagePart",
    "ImageRef",
    "LevelRule",
    "MemoryRecorder",
    "Message",
    "ModelApi",
    "ModelError",
    "ModelRequest",
    "ModelResponse",
    "ModelSettings",
    "MppSource",
    "ParsedAnswer",
    "PidLock",
    "Recorder",
    "Registry",
    "ResultRecord",
    "Sample",
    "SlideError",
    "SlidescoutError",
    "Status",
    "SystemMessage",
    "TextPart",
    "ToolCallPart",
    "ToolError",
    "ToolMessage",
    "ToolResultPart",
    "ToolSpec",
    "Trace",
    "TraceError",
    "Usage",
    "UserMessage",
    "View",
    "load_trace",
    "parse_answer",
    "parse_reply",
    "slidescout_home",
]
