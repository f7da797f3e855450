"""Answer formats: how a reply is read for a sample (``Sample.answer_format``), as a registry.

A format is an :class:`AnswerFormat`: its name, a line that says what the model is asked to
give, ``parse(text, sample, mode) -> ParsedAnswer``, and ``label(value, options)``: the option
text a parsed value names (for the record's ``answer_label``). The built-in formats (``index``,
``label``, ``isup_json``, ``letter``, ``free``) are read by :func:`slidescout.core.parsing.
parse_answer`; a plugin adds one with an entry point in ``slidescout.answer_formats``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from slidescout.core.parsing import LETTERS, ParsedAnswer, ParseMode, parse_answer
from slidescout.core.registry import Registry

__all__ = [
    "ANSWER_FORMATS",
    "AnswerFormat",
    "ParseMode",
    "SampleLike",
    "answer_label",
    "parse_reply",
]


class SampleLike(Protocol):
    @property
    def answer_format(self) -> str: ...

    @property
    def options(self) -> list[str]: ...


@dataclass(frozen=True)
class AnswerFormat:
    """One answer format: how its replies are parsed and what option a parsed value names."""

    name: str
    description: str
    parse: Callable[[str | None, SampleLike, ParseMode], ParsedAnswer]
    label: Callable[[int | str, Sequence[str]], str | None] = lambda value, options: str(value)


def _builtin_parse(text: str | None, sample: SampleLike, mode: ParseMode) -> ParsedAnswer:
    return parse_answer(text, sample, mode)


def _index_label(value: int | str, options: Sequence[str]) -> str | None:
    if isinstance(value, int) and 1 <= value <= len(options):
        return options[value - 1]
    return str(value)


def _letter_label(value: int | str, options: Sequence[str]) -> str | None:
    if isinstance(value, str) and len(value) == 1 and value.upper() in LETTERS:
        i = LETTERS.index(value.upper())
        if i < len(options):
            return options[i]
    return str(value)


BUILTIN_FORMATS: dict[str, AnswerFormat] = {
    "index": AnswerFormat(
        "index", "the 1-based number of an option (MultiPathQA)", _builtin_parse, _index_label
    ),
    "label": AnswerFormat("label", "the text of an option (GTEx)", _builtin_parse),
    "isup_json": AnswerFormat(
        "isup_json", "PANDA's JSON with Gleason patterns and an ISUP grade 0-5", _builtin_parse
    ),
    "letter": AnswerFormat(
        "letter", "a final 'Answer: X' line (MedFrameQA)", _builtin_parse, _letter_label
    ),
    "free": AnswerFormat("free", "free text (ask without options)", _builtin_parse),
}


def _as_format(obj: object, name: str) -> AnswerFormat:
    if not isinstance(obj, AnswerFormat):
        raise TypeError(f"{obj!r} is not an AnswerFormat")
    return obj


ANSWER_FORMATS: Registry[AnswerFormat] = Registry(
    "slidescout.answer_formats", "answer format", BUILTIN_FORMATS, _as_format
)


def parse_reply(text: str | None, sample: SampleLike, mode: ParseMode = "default") -> ParsedAnswer:
    """A reply read in the sample's answer format (a plugin's format by its own parser)."""
    return ANSWER_FORMATS.get(sample.answer_format).parse(text, sample, mode)


def answer_label(sample: SampleLike, parsed: ParsedAnswer | None) -> str | None:
    """The option text the parsed answer names, or the parsed value as text."""
    if parsed is None or not parsed.ok or parsed.value is None:
        return None
    return ANSWER_FORMATS.get(sample.answer_format).label(parsed.value, sample.options)
