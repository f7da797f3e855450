"""MedFrameQA's official answer extraction, rule for rule (``parse_multi_choice_response`` in
haojinw0027/MedFrameQA ``src/eval_process.py``), quirks included.

The rules, in the order the official code applies them (each was read from its code):

1. ``boxed{X}``: every ``boxed{`` + one capital letter + ``}`` in the reply, in order; the first
   whose letter is an option wins.
2. Answer markers, tried in the order ``Answer:``, ``Answer*``, ``Final Answer``, ``final answer``
   (case-sensitive): the first marker found at all is used, at its LAST occurrence, and no other
   marker is tried. The text after it, stripped of whitespace, is searched for the option letters
   as plain substrings, and the letter found EARLIEST wins. So ``Answer: Based on the images, C``
   gives ``B`` (the B of "Based"), and ``answer: b`` has no marker at all.
3. Otherwise the reply is stripped of ``,`` ``.`` ``!`` ``?`` ``;`` ``:`` ``'`` at both ends, one
   character kind after the other in that order, and padded with a space on each side. So a bare
   ``A.`` becomes `` A `` and gives nothing.
4. ``(X)`` forms: every option letter written in brackets is a candidate.
5. Only when 4 found none: every option letter followed by a ``.`` anywhere (``X.``) is one.
6. Only when 5 found none and the padded reply has more than 5 words: every option whose text
   (the part of the option before its first ``". "``) appears in the reply, case-insensitively.
7. No candidate: no answer. One: that one. Several: the one whose form (``(X)``, ``X.`` or the
   option text, lower case) occurs LAST in the reply; on a tie the earlier option.

The official score leaves a reply out of its denominator only when the reply is exactly empty
(``""``); a reply of white space is parsed like any other and scores as wrong.
"""

from __future__ import annotations

import re

__all__ = ["official_letter"]

_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_BOXED = re.compile(r"boxed\{([A-Z])\}")
_MARKERS = ("Answer:", "Answer*", "Final Answer", "final answer")
_EDGE_PUNCTUATION = (",", ".", "!", "?", ";", ":", "'")


def _boxed(response: str, letters: list[str]) -> str:
    return next((m for m in _BOXED.findall(response) if m in letters), "")


def _after_marker(response: str, letters: list[str]) -> str:
    """Rule 2: the earliest option letter after the first marker kind that occurs (last occurrence)."""
    for marker in _MARKERS:
        at = response.rfind(marker)
        if at < 0:
            continue
        tail = response[at + len(marker) :].strip()
        found = [(tail.find(letter), letter) for letter in letters if letter in tail]
        return min(found)[1] if found else ""
    return ""


def _padded(response: str) -> str:
    for ch in _EDGE_PUNCTUATION:
        response = response.strip(ch)
    return f" {response} "


def _last_of(candidates: list[str], forms: dict[str, str], text: str) -> str:
    """The candidate whose form occurs last in ``text`` (ties: the earlier candidate)."""
    best, best_at = candidates[0], text.rfind(forms[candidates[0]])
    for c in candidates[1:]:
        at = text.rfind(forms[c])
        if at > best_at:
            best, best_at = c, at
    return best


def official_letter(response: str, options: list[str]) -> tuple[str, str]:
    """``(letter, rule)``: the letter MedFrameQA's official code extracts from ``response`` for a
    question with ``options`` ("" when it finds none) and the rule that decided it (``boxed``,
    ``answer``, ``bracket``, ``dot``, ``text``, or ``none``)."""
    letters = list(_LETTERS[: len(options)])
    letter = _boxed(response, letters)
    if letter:
        return letter, "boxed"
    letter = _after_marker(response, letters)
    if letter:
        return letter, "answer"
    padded = _padded(response)
    for rule, forms in (
        ("bracket", {c: f"({c})" for c in letters}),
        ("dot", {c: f"{c}." for c in letters}),
    ):
        candidates = [c for c in letters if forms[c] in padded]
        if candidates:
            return _last_of(candidates, forms, padded), rule
    if len(padded.split()) > 5:
        low = padded.lower()
        texts = {
            c: opt.split(". ")[0].lower()
            for c, opt in zip(letters, options[: len(letters)], strict=True)
        }
        candidates = [c for c in letters if texts[c] in low]
        if candidates:
            return _last_of(candidates, texts, low), "text"
    return "", "none"
