"""Turn a model's final reply into a normalised answer, per answer format.

Formats (``Sample.answer_format``):

- ``index``: MultiPathQA's ``{"answer": N}`` with N the 1-based option number. Also accepted:
  ``"answer": "3"``, fenced or bare JSON with prose around it, trailing commas, single
  quotes, ``Answer: 3``, ``option 3``, ``3. Lung adenocarcinoma`` and the option's text.
- ``label``: GTEx; the value is the option text. GIANT's prompt asks for the option *number*,
  so numbers are mapped to labels; the label itself is matched case-insensitively.
- ``isup_json``: PANDA's JSON with ``primary_pattern``, ``secondary_pattern``, ``total_score``,
  ``isup_grade``; ``isup_grade`` wins when it is a valid 0-5, otherwise the grade is derived
  from the Gleason patterns (or the total score when that is unambiguous).
- ``letter``: MedFrameQA's final ``Answer: B`` line; the last such line wins. ``**Answer:** (B)``,
  lower case, ``\\boxed{B}`` and "the answer is (B)" are accepted too. ``mode="medframeqa"``
  applies the official evaluation's rules instead, quirks included (:func:`parse_medframeqa_official`,
  ``core/medframeqa_rules.py``).

A reply holding a ``<response>...</response>`` block (the ``giant`` and ``scout`` prompts ask for
one) is parsed from its last such block; the whole reply is the fallback.

PANDA: the prompt defines grades 1-5 only, and models answer benign tissue with
``"isup_grade": null``, "N/A", "Benign" or "no cancer": all of these are ISUP 0 (method
``isup_null`` or ``benign_text``, counted in the report), but only when the answer says benign:
prose that calls some glands benign and also describes cancer ("Benign glands are admixed with the
tumour") states no grade and stays unparsed. A grade written without braces (``isup_grade: 2``),
"the answer is 2", or a Gleason score ("3+4", also as a JSON string) parses; a hedge between two
grades ("2 or 3", "2-3") does not. A JSON object cut off before its closing brace is salvaged.

- ``free``: no options; the reply's text (or its ``<response>`` block) is the answer (``slidescout
  ask`` without options).

The newest (last) explicit answer in a reply wins. A reply that cannot be parsed gives
``ok=False`` with an ``error``; metrics count it wrong and report it separately.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

from slidescout.core.medframeqa_rules import official_letter

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

__all__ = [
    "ISUP0_METHODS",
    "LETTERS",
    "ParseMode",
    "ParsedAnswer",
    "extract_json_objects",
    "isup_from_gleason",
    "parse_answer",
    "parse_medframeqa_official",
    "report_block",
    "response_block",
    "split_reply",
]

ISUP0_METHODS = (
    "isup_null",
    "benign_text",
)  # PANDA replies scored as ISUP 0 without a stated grade


class _SampleLike(Protocol):
    @property
    def answer_format(self) -> str: ...

    @property
    def options(self) -> list[str]: ...


class ParsedAnswer(BaseModel):
    value: int | str | None = None  # index (int), label (str), ISUP grade (int) or letter (str)
    raw: str = ""  # the fragment the value came from (or the reply's tail when nothing parsed)
    ok: bool = False
    method: str = ""  # json | answer_line | answer_text | option_mention | label_mention | bare | boxed | regex_isup | gleason | ...
    error: str | None = None
    details: dict[str, Any] = Field(
        default_factory=dict
    )  # e.g. the Gleason patterns a grade came from


# ---- lenient JSON ---------------------------------------------------------------------------


def _balanced_objects(text: str) -> list[tuple[int, str]]:
    """Every top-level ``{...}`` span, in order, skipping braces inside quoted strings."""
    out: list[tuple[int, str]] = []
    depth, start, quote, escape = 0, -1, "", False
    for i, ch in enumerate(text):
        if quote:
            if escape:
                escape = False
            elif ch == "\\":
                escape = True
            elif ch == quote or ch == "\n":
                quote = ""
            continue
        if ch == '"' and depth > 0:
            quote = ch
        elif ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                out.append((start, text[start : i + 1]))
    return out


_SMART = str.maketrans({"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'"})
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_BARE_KEY = re.compile(r"([{,]\s*)([A-Za-z_][A-Za-z0-9_ ]*?)\s*:")
_KV = re.compile(r"""["']?([A-Za-z_][A-Za-z0-9_ ]*)["']?\s*[:=]\s*("[^"\n]*"|'[^'\n]*'|[^,}\n]+)""")


def _loads_lenient(snippet: str) -> dict[str, Any] | None:
    s = snippet.translate(_SMART).strip()
    s2 = _TRAILING_COMMA.sub(r"\1", s)
    attempts = [s, s2, _BARE_KEY.sub(r'\1"\2":', s2)]
    for a in attempts:
        try:
            v = json.loads(a)
            if isinstance(v, dict):
                return v
        except (json.JSONDecodeError, ValueError):
            pass
    py = re.sub(r"\btrue\b", "True", re.sub(r"\bfalse\b", "False", re.sub(r"\bnull\b", "None", s2)))
    try:
        v = ast.literal_eval(py)
        if isinstance(v, dict):
            return v
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    pairs = {
        m.group(1).strip(): m.group(2).strip().strip("'\"").strip() for m in _KV.finditer(s[1:-1])
    }
    return pairs or None


def extract_json_objects(text: str) -> list[tuple[dict[str, Any], str]]:
    """Every JSON-ish object in a reply (fenced or inline), leniently parsed, in reply order."""
    out = []
    for _, snippet in _balanced_objects(text or ""):
        obj = _loads_lenient(snippet)
        if obj is not None:
            out.append(({str(k).strip().lower(): v for k, v in obj.items()}, snippet))
    return out


def _last_with(
    objs: list[tuple[dict[str, Any], str]], keys: tuple[str, ...]
) -> tuple[Any, str] | None:
    for obj, snippet in reversed(objs):
        for key in keys:
            if key in obj:
                return obj[key], snippet
        for v in obj.values():  # one level of nesting: {"result": {"answer": 3}}
            if isinstance(v, dict):
                low = {str(k).lower(): x for k, x in v.items()}
                for key in keys:
                    if key in low:
                        return low[key], snippet
    return None


# ---- options --------------------------------------------------------------------------------


def _norm(s: str) -> str:
    return re.sub(r"\s+", " ", s.strip().strip("\"'`*_.:;,!()[] \t")).lower()


def _label_index(value: str, options: list[str]) -> int | None:
    """1-based index of the option whose text equals ``value`` (case- and punctuation-insensitive)."""
    v = _norm(value)
    for i, opt in enumerate(options, 1):
        if _norm(opt) == v:
            return i
    return None


def _mentioned_option(text: str, options: list[str]) -> int | None:
    """The single option whose (non-numeric) text appears in ``text``; None if none or several.
    A label found only inside a longer matching label (``Carcinoma`` in ``Thyroid carcinoma``) does not count."""
    spans = []
    for i, opt in enumerate(options, 1):
        o = opt.strip()
        if not o or re.fullmatch(r"[\d.\s]+", o):
            continue
        pat = r"(?<![A-Za-z0-9])" + re.escape(o).replace(r"\ ", r"\s+") + r"(?![A-Za-z0-9])"
        spans += [(m.start(), m.end(), i) for m in re.finditer(pat, text, re.I)]
    kept = {
        i
        for s, e, i in spans
        if not any(s2 <= s and e <= e2 and (e2 - s2) > (e - s) for s2, e2, _ in spans)
    }
    return kept.pop() if len(kept) == 1 else None


_LEADING_NUM = re.compile(
    r"^\s*[\[(]?\s*(?:option|choice|answer|no\.?|number|#)?\s*#?\s*(\d{1,3})\s*[\])]?(?:\s*$|[.:)\-\u2013\u2014,\s])",
    re.I,
)


def _index_from_value(value: Any, options: list[str]) -> tuple[int | None, str, str | None]:
    """(index, method, error) of a JSON answer value for an options question."""
    n = len(options)
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool) or value is None:
        return None, "", f"answer value {value!r} is not an option"
    number: int | None = None
    if isinstance(value, (int, float)):
        if float(value).is_integer():
            number = int(value)
        else:
            return None, "", f"answer {value!r} is not a whole option number"
    else:
        text = str(value)
        m = _LEADING_NUM.match(text)
        if m:
            number = int(m.group(1))
        else:
            idx = _label_index(text, options) or _mentioned_option(text, options)
            if idx is not None:
                return idx, "label", None
            return None, "", f"answer {text[:60]!r} is neither an option number nor an option"
    if 1 <= number <= n:
        return number, "number", None
    idx = _label_index(str(number), options)  # e.g. options ['2','3','4','5'] and the reply "5"
    if idx is not None:
        return idx, "label_numeric", None
    return None, "", f"option number {number} is out of range 1-{n}"


# ---- per format -----------------------------------------------------------------------------

_ANSWER_NUM = re.compile(
    r"\banswer\b[\"'*_\s]*(?:is\b)?[\s:=*_\"'-]*[\[(]?\s*(?:option|choice)?\s*#?\s*(\d{1,3})(?![\d.]\d)",
    re.I,
)
_BARE_NUM = re.compile(r"[\[(]?\s*(?:option|choice)?\s*#?\s*(\d{1,3})\s*[\])]?\.?", re.I)
_OPTION_NUM = re.compile(r"\b(?:option|choice)\s*#?\s*(\d{1,3})\b", re.I)
_AFTER_ANSWER = re.compile(
    r"\b(?:final\s+answer|answer)\b[\"'*_\s]*(?:is\b)?[\s:=*_\"'-]*([^\n]{1,200})", re.I
)


def _tail(text: str, n: int = 200) -> str:
    t = text.strip()
    return t[-n:]


def _last_line(text: str) -> str:
    lines = [
        ln for ln in text.strip().splitlines() if ln.strip() and not ln.strip().startswith("```")
    ]
    return lines[-1] if lines else ""


def _parse_options_answer(text: str, options: list[str]) -> ParsedAnswer:
    """index of the chosen option (shared by ``index`` and ``label``)."""
    first_error: str | None = None
    found = _last_with(
        extract_json_objects(text), ("answer", "final_answer", "answer_index", "option", "choice")
    )
    if found is not None:
        idx, how, err = _index_from_value(found[0], options)
        if idx is not None:
            return ParsedAnswer(value=idx, raw=found[1], ok=True, method=f"json_{how}")
        first_error = err
    matches = list(_ANSWER_NUM.finditer(text))
    if matches:
        m = matches[-1]
        idx, how, err = _index_from_value(int(m.group(1)), options)
        if idx is not None:
            return ParsedAnswer(value=idx, raw=m.group(0), ok=True, method="answer_line")
        first_error = first_error or err
    after = list(_AFTER_ANSWER.finditer(text))
    if after:
        frag = after[-1].group(1)
        idx = _label_index(frag, options) or _mentioned_option(frag, options)
        if idx is not None:
            return ParsedAnswer(value=idx, raw=after[-1].group(0), ok=True, method="answer_text")
    bare = text.strip().strip("`*_\"' \n")
    m_bare = _BARE_NUM.fullmatch(bare)
    if m_bare or _label_index(bare, options):
        idx, how, err = _index_from_value(int(m_bare.group(1)) if m_bare else bare, options)
        if idx is not None:
            return ParsedAnswer(value=idx, raw=bare[:200], ok=True, method=f"bare_{how}")
        first_error = first_error or err
    numbers = {int(m.group(1)) for m in _OPTION_NUM.finditer(text)}
    if len(numbers) == 1:
        idx, how, err = _index_from_value(numbers.pop(), options)
        if idx is not None:
            return ParsedAnswer(
                value=idx, raw=_OPTION_NUM.findall(text)[-1], ok=True, method="option_mention"
            )
        first_error = first_error or err
    elif len(numbers) > 1:
        first_error = (
            first_error
            or f"several options mentioned ({', '.join(map(str, sorted(numbers)))}) and no explicit answer"
        )
    line = _last_line(text)
    idx = _mentioned_option(line, options) if line else None
    if idx is not None:
        return ParsedAnswer(value=idx, raw=line[:200], ok=True, method="label_mention")
    return ParsedAnswer(
        raw=_tail(text),
        ok=False,
        method="none",
        error=first_error or 'no answer found (expected {"answer": N})',
    )


_INT_TEXT = re.compile(
    r"\s*(?:isup\s*)?(?:grade\s*(?:group)?|pattern|score)?\s*[:#=]?\s*(\d{1,2})(?:\.0+)?(?![\d.]*\s*\+)\b",
    re.I,
)


def _to_int(value: Any) -> int | None:
    """An integer from 3, 3.0, "3", "Grade 3", "ISUP grade group 3"; None for "3+4", "N/A", null."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return int(value) if float(value).is_integer() else None
    m = _INT_TEXT.match(str(value))
    return int(m.group(1)) if m else None


def isup_from_gleason(
    primary: int | None, secondary: int | None, total: int | None = None
) -> int | None:
    """ISUP grade group from Gleason patterns: <=6 → 1, 3+4 → 2, 4+3 → 3, 8 → 4, 9-10 → 5;
    a pattern or total of 0 (no cancer) → 0. None when it cannot be decided."""
    if primary is not None and secondary is not None:
        if not (0 <= primary <= 5 and 0 <= secondary <= 5):
            return None
        if primary == 0 or secondary == 0:
            return 0 if primary == secondary == 0 else None
        total = primary + secondary
        if total == 7:
            return 2 if primary < secondary else 3
    if total is None:
        return None
    if total == 0:
        return 0
    if 2 <= total <= 6:
        return 1
    return {8: 4, 9: 5, 10: 5}.get(total)


# a grade stated in text ("ISUP grade 2", "isup_grade: 2", "grade group: 2"); ``alt`` catches a
# hedge ("grade 2 or 3", "2-3"), which is no answer; "3+4" after it is a Gleason score, not a grade
_HEDGE = r"(?P<alt>\s*(?:or|to|and|-|\u2013|/)\s*\d\b)?(?!\s*\+)"
_ISUP_TEXT = re.compile(
    r"\b(?:isup[\s_-]*(?:grade(?:[\s_-]*group)?)?|grade[\s_-]*group)[\"'*_\s]*(?:is|of|=|:)?"
    r"[\"'*_\s]*(\d)\b" + _HEDGE,
    re.I,
)
_ANSWER_GRADE = re.compile(
    r"\b(?:final\s+)?answer\b[\"'*_\s]*(?:is\b)?[\"'*_\s:=-]*(?:grade\s*)?(\d)\b" + _HEDGE, re.I
)
_GLEASON_TEXT = re.compile(r"\bgleason\b[^\d\n]{0,20}(\d)\s*\+\s*(\d)", re.I)
_PATTERN_PAIR = re.compile(
    r"^\W*(?:gleason\s*(?:score)?\s*[:=]?\s*)?(\d)\s*\+\s*(\d)(?:\s*=\s*\d{1,2})?\W*$", re.I
)
_ISUP_KEYS = (
    "isup_grade",
    "isup",
    "isup_grade_group",
    "grade_group",
    "primary_pattern",
    "secondary_pattern",
    "total_score",
    "gleason_score",
)


_NULL_GRADE = re.compile(
    r"^\s*(?:null|none|n/?a|not applicable|benign(?: tissue| prostat\w*(?: tissue)?)?|no cancer|"
    r"no carcinoma|no tumou?r|negative|not? malignan\w*|-)?\s*\.?\s*$",
    re.I,
)
_BENIGN_TEXT = re.compile(
    r"(?<!not )(?<!non-)(?<!non )\b(?:benign|no (?:evidence of )?(?:cancer|carcinoma|tumou?r|malignancy)|"
    r"negative for (?:cancer|carcinoma|malignancy)|(?:isup\s*)?grade\s*(?:group\s*)?0)\b",
    re.I,
)
# a statement that there is cancer; "no cancer", "without carcinoma", "non-neoplastic" do not count
_CANCER = re.compile(
    r"\b(?:(?:adeno)?carcinoma|cancer(?:ous)?|tumou?r(?:s)?|malignan(?:t|cy)|neoplas\w*|"
    r"gleason\s+(?:pattern\s+)?[3-5])\b",
    re.I,
)
_NEGATION = re.compile(
    r"\b(?:no|not|non|without|negative\s+for|free\s+of|absence\s+of|absent|rule[sd]?\s+out)\b",
    re.I,
)
_OPEN_JSON = re.compile(r"\{[^{}]*$", re.S)


def _null_grade(value: Any) -> bool:
    """``null``, "N/A", "Benign", "no cancer", "": a grade that says there is no cancer (ISUP 0)."""
    return value is None or (isinstance(value, str) and bool(_NULL_GRADE.match(value)))


def _pattern_pair(value: Any) -> tuple[int, int] | None:
    """(primary, secondary) from a Gleason score written as text: "3+4", "3 + 4 = 7", "Gleason 4+3"."""
    m = _PATTERN_PAIR.match(value) if isinstance(value, str) else None
    return (int(m.group(1)), int(m.group(2))) if m else None


def _states_cancer(text: str) -> bool:
    """Whether ``text`` says there is cancer somewhere: a cancer word with no negation before it in
    its clause ("Benign glands are admixed with the tumour" does; "no cancer seen" does not)."""
    for m in _CANCER.finditer(text):
        clause = re.split(r"[.;:\n!?]", text[: m.start()])[-1]
        if not _NEGATION.search(clause[-40:]):
            return True
    return False


def _salvage_open_json(text: str) -> list[tuple[dict[str, Any], str]]:
    """A JSON object cut off before its closing brace (``{"isup_grade": 2``), closed and parsed."""
    m = _OPEN_JSON.search(text or "")
    if not m or ":" not in m.group(0):
        return []
    snippet = m.group(0).rstrip().rstrip("`").rstrip().rstrip(",") + "}"
    obj = _loads_lenient(snippet)
    return [({str(k).strip().lower(): v for k, v in obj.items()}, m.group(0))] if obj else []


def _isup_from_json(obj: dict[str, Any], snippet: str) -> ParsedAnswer:
    """The grade of a PANDA JSON object: ``isup_grade`` when it is 0-5 (a Gleason score like "3+4"
    in it is converted), null / "N/A" / "Benign" with no patterns is 0, else the patterns decide."""
    details: dict[str, Any] = {
        k: obj.get(k)
        for k in ("primary_pattern", "secondary_pattern", "total_score", "isup_grade")
        if k in obj
    }
    grade_key = next(
        (k for k in ("isup_grade", "isup", "isup_grade_group", "grade_group") if k in obj), None
    )
    grade_raw = obj[grade_key] if grade_key else None
    grade = _to_int(grade_raw)
    if grade is not None and 0 <= grade <= 5:
        return ParsedAnswer(
            value=grade, raw=snippet, ok=True, method="json_isup_grade", details=details
        )
    primary, secondary = _to_int(obj.get("primary_pattern")), _to_int(obj.get("secondary_pattern"))
    total = _to_int(obj.get("total_score"))
    # "3+4" written as the grade, the Gleason score or the total
    pairs = [_pattern_pair(obj.get(k)) for k in (grade_key, "gleason_score", "total_score") if k]
    pair = next((p for p in pairs if p is not None), None)
    if grade_key and _null_grade(grade_raw) and not (primary or secondary or total or pair):
        # the PANDA prompt defines grades 1-5 only; null / "N/A" / "Benign" means no cancer
        return ParsedAnswer(value=0, raw=snippet, ok=True, method="isup_null", details=details)
    if (primary is None or secondary is None) and pair is not None:
        primary, secondary = pair
    derived = isup_from_gleason(primary, secondary, total)
    if derived is not None:
        return ParsedAnswer(
            value=derived, raw=snippet, ok=True, method="json_gleason", details=details
        )
    error = (
        f"isup_grade {grade_raw!r} is not a grade 0-5"
        if grade_raw is not None
        else "JSON has no usable isup_grade and its Gleason patterns do not decide a grade"
    )
    return ParsedAnswer(raw=snippet, ok=False, method="none", error=error)


def _isup_from_text(text: str) -> ParsedAnswer:
    """A grade stated in prose: the last "ISUP grade N" or "answer is N" (a hedge between two
    grades is no answer), else a Gleason score, else ISUP 0 when the answer says benign and
    nothing in it says cancer."""
    for pattern, method in ((_ISUP_TEXT, "regex_isup"), (_ANSWER_GRADE, "answer_grade")):
        found = [m for m in pattern.finditer(text) if int(m.group(1)) <= 5]
        if not found:
            continue
        m = found[-1]
        if m.group("alt"):
            return ParsedAnswer(
                raw=m.group(0),
                ok=False,
                method="none",
                error=f"hedged between grades ({m.group(0).strip()!r}): no single grade",
            )
        return ParsedAnswer(value=int(m.group(1)), raw=m.group(0), ok=True, method=method)
    gleasons = [
        (g.group(0), int(g.group(1)), int(g.group(2))) for g in _GLEASON_TEXT.finditer(text)
    ]
    pair = _pattern_pair(text)
    if pair:
        gleasons.append((text.strip(), *pair))
    if gleasons:
        raw, primary, secondary = gleasons[-1]
        derived = isup_from_gleason(primary, secondary)
        if derived is not None:
            return ParsedAnswer(
                value=derived,
                raw=raw,
                ok=True,
                method="regex_gleason",
                details={"primary_pattern": primary, "secondary_pattern": secondary},
            )
    bare = text.strip().strip("`*_\"'")
    if _null_grade(bare) or (_BENIGN_TEXT.search(text) and not _states_cancer(text)):
        return ParsedAnswer(value=0, raw=_tail(text), ok=True, method="benign_text")
    error = "no ISUP grade found (expected JSON with isup_grade)"
    if _BENIGN_TEXT.search(text):
        error = "the reply calls some tissue benign but also describes cancer: no grade stated"
    return ParsedAnswer(raw=_tail(text), ok=False, method="none", error=error)


def _parse_isup(text: str) -> ParsedAnswer:
    found = extract_json_objects(text)
    objs = [(o, s) for o, s in found if any(k in o for k in _ISUP_KEYS)]
    if not objs:
        objs = [(o, s) for o, s in _salvage_open_json(text) if any(k in o for k in _ISUP_KEYS)]
    from_json = _isup_from_json(*objs[-1]) if objs else None
    if from_json is not None and from_json.ok:
        return from_json
    from_text = _isup_from_text(text)
    if (
        not from_text.ok
        and from_json is not None
        and from_text.error
        and "no ISUP" in from_text.error
    ):
        from_text.error = from_json.error
    return from_text


_ANSWER_LETTER = re.compile(
    r"\banswer\b\s*[*_]*\s*[:\uff1a]\s*[*_]*\s*[\[(]?\s*([A-Za-z])\s*[\])]?(?![A-Za-z0-9])(?P<rest>[^\n]{0,3})",
    re.I,
)
_BOXED = re.compile(r"\\boxed\s*\{\s*(?:\\text\{)?\s*\(?([A-Za-z])\)?\s*\}?\s*\}")
_ANSWER_IS = re.compile(
    r"\b(?:final\s+answer|correct\s+answer|answer|correct\s+option)\s+is\s*[:*_\s]*[\[(]?([A-Z])[\])]?(?![A-Za-z0-9])"
)


def _letter_ok(letter: str, rest: str) -> bool:
    """False when the 'letter' is really a word: ``Answer: I think`` or ``answer: a tricky``."""
    return not (letter in "aAI" or letter.islower()) or not re.match(r"\s[a-z]", rest)


def _parse_letter(text: str, options: list[str]) -> ParsedAnswer:
    n = len(options) or 26
    valid = LETTERS[:n]
    lines = [m for m in _ANSWER_LETTER.finditer(text) if _letter_ok(m.group(1), m.group("rest"))]
    if lines:
        m = lines[-1]
        letter = m.group(1).upper()
        if letter in valid:
            return ParsedAnswer(value=letter, raw=m.group(0).strip(), ok=True, method="answer_line")
        return ParsedAnswer(
            raw=m.group(0).strip(),
            ok=False,
            method="answer_line",
            error=f"answer letter {letter} is not among the options A-{valid[-1]}",
        )
    for pattern, method in ((_BOXED, "boxed"), (_ANSWER_IS, "answer_is")):
        found = [m for m in pattern.finditer(text) if m.group(1).upper() in valid]
        if found:
            return ParsedAnswer(
                value=found[-1].group(1).upper(), raw=found[-1].group(0), ok=True, method=method
            )
    bare = re.fullmatch(r"[\s*_`\"']*[\[(]?([A-Za-z])[\])]?[.:]?[\s*_`\"']*", text or "")
    if bare and bare.group(1).upper() in valid:
        return ParsedAnswer(value=bare.group(1).upper(), raw=text.strip(), ok=True, method="bare")
    line = _last_line(text)
    if options and line:
        idx = _label_index(line, options) or _mentioned_option(line, options)
        if idx is not None:
            return ParsedAnswer(
                value=LETTERS[idx - 1], raw=line[:200], ok=True, method="label_mention"
            )
    return ParsedAnswer(
        raw=_tail(text), ok=False, method="none", error="no final 'Answer: LETTER' line found"
    )


_RESPONSE = re.compile(r"<response>\s*(.*?)\s*(?:</response>|$)", re.S | re.I)


_REPORT = re.compile(r"<report>(.*?)(?:</report>|$)", re.S | re.I)


def report_block(text: str | None) -> str | None:
    """The content of the last ``<report>...</report>`` block (GIANT's report part), if any."""
    blocks = _REPORT.findall(text or "")
    return blocks[-1].strip() if blocks and blocks[-1].strip() else None


def split_reply(text: str | None) -> tuple[str, str]:
    """``(answer, rationale)`` of a final reply: the ``<response>`` and ``<report>`` parts when the
    reply has them, else the whole reply as the answer and the reply without the answer's JSON
    block as the rationale."""
    text = (text or "").strip()
    response = response_block(text)
    if response is not None:
        return response.strip(), report_block(text) or _RESPONSE.sub("", text).strip()
    rationale = re.sub(r"```(?:json)?\s*\{.*?\}\s*```", "", text, flags=re.S).strip()
    return text, rationale if rationale else text


def response_block(text: str | None) -> str | None:
    """The content of the last ``<response>...</response>`` block (an unclosed last block counts)."""
    blocks = _RESPONSE.findall(text or "")
    return blocks[-1] if blocks and blocks[-1].strip() else None


def parse_medframeqa_official(text: str | None, options: list[str]) -> ParsedAnswer:
    """MedFrameQA's official extraction (``core.medframeqa_rules``: its rules, quirks included).

    Only an exactly empty reply is an ``empty reply`` (the official score leaves those out of
    its denominator); a reply the rules find no letter in is unparsed and scores as wrong."""
    if not text:
        return ParsedAnswer(raw="", ok=False, method="none", error="empty reply")
    letter, rule = official_letter(text, options)
    if not letter:
        return ParsedAnswer(
            raw=_tail(text),
            ok=False,
            method="none",
            error="no answer letter found (official rules)",
        )
    return ParsedAnswer(value=letter, raw=_tail(text), ok=True, method=f"official_{rule}")


# "medframeqa": letter answers follow MedFrameQA's official parser (a preset's ``parser``)
ParseMode = Literal["default", "medframeqa"]


def parse_answer(
    text: str | None, sample: _SampleLike, mode: ParseMode = "default"
) -> ParsedAnswer:
    """Parse a final reply for ``sample`` (anything with ``answer_format`` and ``options``).

    ``mode="medframeqa"``: letter questions follow MedFrameQA's official rules."""
    text = text or ""
    fmt = sample.answer_format
    options = list(sample.options or [])
    if fmt == "letter" and mode == "medframeqa":
        return parse_medframeqa_official(text, options)
    if not text.strip():
        return ParsedAnswer(raw="", ok=False, method="none", error="empty reply")
    block = response_block(text)
    if fmt == "free":
        return ParsedAnswer(value=(block or text).strip(), raw=_tail(text), ok=True, method="free")
    if block is not None:
        parsed = parse_answer(block, sample, mode)
        if parsed.ok:
            parsed.details["from"] = "response_tag"
            return parsed
    if fmt == "isup_json":
        return _parse_isup(text)
    if fmt == "letter":
        return _parse_letter(text, options)
    if fmt in ("index", "label"):
        if not options:
            return ParsedAnswer(
                raw=_tail(text), ok=False, method="none", error="the sample has no options"
            )
        parsed = _parse_options_answer(text, options)
        if parsed.ok and fmt == "label":
            parsed.details["index"] = parsed.value
            parsed.value = options[int(parsed.value) - 1]  # type: ignore[arg-type]
        return parsed
    return ParsedAnswer(
        raw=_tail(text), ok=False, method="none", error=f"unknown answer format {fmt!r}"
    )
