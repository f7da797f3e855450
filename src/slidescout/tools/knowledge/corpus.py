"""Reading reference files into chunks: Markdown sections, text paragraphs, PDF pages.

A chunk is the unit the index stores and cites. Markdown is cut at ``##`` headings (``###`` makes
a sub-section ``Heading / Sub``); plain text is cut into runs of paragraphs cited by line range;
a PDF gives one chunk per page (more when a page is long), cited as ``p. N``. Sections longer than
``MAX_CHUNK_CHARS`` are split at paragraph boundaries and keep their heading.
"""

from __future__ import annotations

import codecs
import hashlib
import logging
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from slidescout.errors import DatasetError

SUPPORTED_SUFFIXES = (".md", ".markdown", ".txt", ".pdf")
MAX_CHUNK_CHARS = 2000

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+")
# A section's reference line, e.g. "**Source.** WHO Classification of Tumours, 5th ed., ...".
SOURCE_LINE = re.compile(r"^\s*\*\*Source\.\*\*\s*(.+?)\s*(?:\n\s*\n|\Z)", re.S | re.M)


def section_source(text: str) -> str:
    """The reference a section names in its ``**Source.**`` line ('' when it names none)."""
    match = SOURCE_LINE.search(text)
    return " ".join(match.group(1).split()).rstrip(".") if match else ""


def without_source(text: str) -> str:
    """The text with its ``**Source.**`` line removed (what is searched and quoted)."""
    return SOURCE_LINE.sub("", text, count=1).strip()


@dataclass(frozen=True)
class Chunk:
    """One citable piece of a document."""

    section: str
    text: str


@dataclass
class Document:
    """A parsed file: its title and chunks, plus the hash of its bytes (to skip unchanged files)."""

    path: Path
    title: str
    sha256: str
    chunks: list[Chunk] = field(default_factory=list)


def starter_corpus_dir() -> Path:
    """The folder holding the starter corpus shipped with slidescout (package data)."""
    return Path(str(resources.files("slidescout.tools.knowledge") / "corpus"))


def starter_files() -> list[Path]:
    """The starter corpus Markdown files, sorted by name."""
    folder = starter_corpus_dir()
    return sorted(p for p in folder.glob("*.md") if p.is_file())


def is_supported(path: Path) -> bool:
    return path.suffix.lower() in SUPPORTED_SUFFIXES


def read_document(path: Path) -> Document:
    """Parse one file into chunks. Raises DatasetError when the file cannot be read or has no text."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc.strerror or exc}") from exc
    sha = hashlib.sha256(data).hexdigest()
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        title, chunks = _pdf_chunks(path, data)
    else:
        text = _decode(data, path)
        if suffix in (".md", ".markdown"):
            title, chunks = markdown_chunks(text, default_title=path.stem)
        else:
            title, chunks = path.stem, text_chunks(text)
    if not chunks:
        raise DatasetError(f"{path} has no text to index")
    return Document(path=path, title=title, sha256=sha, chunks=chunks)


_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE: its BOM starts the same way
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def _decode(data: bytes, path: Path) -> str:
    """Text by its byte-order mark (UTF-8, UTF-16, UTF-32), else UTF-8, else Latin-1. Text full
    of NUL characters is UTF-16 or UTF-32 without a mark: an error, not garbage to index."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError as exc:
                raise DatasetError(
                    f"{path} starts with a {encoding} byte-order mark but is not {encoding}: {exc.reason}"
                ) from exc
    if data.count(b"\x00") > len(data) // 8:
        raise DatasetError(
            f"{path} looks like UTF-16 or UTF-32 text without a byte-order mark; "
            "save it as UTF-8 (or with a byte-order mark) to index it"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


# ----------------------------------------------------------------------------- Markdown


def markdown_chunks(text: str, default_title: str = "") -> tuple[str, list[Chunk]]:
    """Split Markdown at ``#``/``##``/``###`` headings. Returns (document title, chunks)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    lines = _strip_front_matter(lines)
    title = ""
    h2 = ""
    h3 = ""
    buffer: list[str] = []
    sections: list[tuple[str, str]] = []
    in_fence = False

    def flush() -> None:
        body = "\n".join(buffer).strip()
        buffer.clear()
        if body:
            name = (
                f"{h2} / {h3}"
                if h2 and h3
                else (h3 or h2 or title or default_title or "Introduction")
            )
            sections.append((name, body))

    for line in lines:
        if _FENCE.match(line):
            in_fence = not in_fence
            buffer.append(line)
            continue
        match = None if in_fence else _HEADING.match(line)
        if not match:
            buffer.append(line)
            continue
        level, heading = len(match.group(1)), _clean_heading(match.group(2))
        flush()
        if level == 1 and not title:
            title = heading
        elif level <= 2:
            h2, h3 = heading, ""
        elif level == 3:
            h3 = heading
        else:  # deeper headings stay inside their section as bold lines
            buffer.append(f"**{heading}**")
    flush()
    chunks = [Chunk(section, piece) for section, body in sections for piece in split_long(body)]
    return title or default_title, chunks


def _strip_front_matter(lines: list[str]) -> list[str]:
    if lines and lines[0].strip() == "---":
        for i in range(1, min(len(lines), 200)):
            if lines[i].strip() in ("---", "..."):
                return lines[i + 1 :]
    return lines


def _clean_heading(heading: str) -> str:
    return re.sub(r"[*_`]", "", heading).strip()


# ----------------------------------------------------------------------------- plain text


def text_chunks(text: str, max_chars: int = MAX_CHUNK_CHARS) -> list[Chunk]:
    """Group blank-line paragraphs into chunks of at most ``max_chars``; cite them by line range."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    paragraphs: list[tuple[int, int, str]] = []  # (first line, last line, text), 1-based
    start: int | None = None
    current: list[str] = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            if start is None:
                start = number
            current.append(line.strip())
        elif start is not None:
            paragraphs.append((start, number - 1, " ".join(current)))
            start, current = None, []
    if start is not None:
        paragraphs.append((start, len(lines), " ".join(current)))

    chunks: list[Chunk] = []
    group: list[tuple[int, int, str]] = []
    size = 0
    for para in paragraphs:
        if group and size + len(para[2]) > max_chars:
            chunks.extend(_line_group(group, max_chars))
            group, size = [], 0
        group.append(para)
        size += len(para[2]) + 2
    if group:
        chunks.extend(_line_group(group, max_chars))
    return chunks


def _line_group(group: list[tuple[int, int, str]], max_chars: int) -> list[Chunk]:
    first, last = group[0][0], group[-1][1]
    section = f"line {first}" if first == last else f"lines {first}-{last}"
    body = "\n\n".join(p[2] for p in group)
    return [Chunk(section, piece) for piece in split_long(body, max_chars)]


# ----------------------------------------------------------------------------- PDF


def _pdf_chunks(path: Path, data: bytes) -> tuple[str, list[Chunk]]:
    import io

    try:
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError
    except ImportError as exc:  # pragma: no cover - pypdf is a dependency
        raise DatasetError("reading PDFs needs pypdf: pip install pypdf") from exc
    pdf_log = logging.getLogger("pypdf")
    level = pdf_log.level
    pdf_log.setLevel(logging.ERROR)  # broken files are reported once, as a skipped file
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise DatasetError(f"{path} is encrypted; save a decrypted copy to index it")
        title = path.stem
        try:
            meta_title = reader.metadata.get("/Title") if reader.metadata else None
            if isinstance(meta_title, str) and meta_title.strip():
                title = meta_title.strip()
        except Exception:  # noqa: BLE001 - metadata is optional and often malformed
            pass
        chunks: list[Chunk] = []
        for number, page in enumerate(reader.pages, start=1):
            text = _tidy_pdf_text(page.extract_text() or "")
            chunks.extend(Chunk(f"p. {number}", piece) for piece in split_long(text))
    except DatasetError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError, RecursionError) as exc:
        raise DatasetError(f"{path} is not a readable PDF ({type(exc).__name__}: {exc})") from exc
    except Exception as exc:  # noqa: BLE001 - pypdf raises many kinds on broken files
        raise DatasetError(f"{path} is not a readable PDF ({type(exc).__name__}: {exc})") from exc
    finally:
        pdf_log.setLevel(level)
    if not chunks:
        raise DatasetError(f"{path} has no text layer (a scanned PDF?); run OCR first to index it")
    return title, chunks


def _tidy_pdf_text(text: str) -> str:
    text = re.sub(r"-\n(?=[a-z])", "", text)  # words hyphenated across lines
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


# ----------------------------------------------------------------------------- splitting


def split_long(body: str, max_chars: int = MAX_CHUNK_CHARS) -> list[str]:
    """Split a section body into pieces of at most ``max_chars`` at paragraph, then sentence, breaks."""
    body = body.strip()
    if not body:
        return []
    if len(body) <= max_chars:
        return [body]
    units: list[str] = []
    for para in re.split(r"\n\s*\n", body):
        para = para.strip()
        if not para:
            continue
        if len(para) <= max_chars:
            units.append(para)
            continue
        units.extend(_split_sentences(para, max_chars))
    pieces: list[str] = []
    current = ""
    for unit in units:
        if current and len(current) + 2 + len(unit) > max_chars:
            pieces.append(current)
            current = unit
        else:
            current = f"{current}\n\n{unit}" if current else unit
    if current:
        pieces.append(current)
    return pieces


def _split_sentences(para: str, max_chars: int) -> list[str]:
    out: list[str] = []
    current = ""
    for sentence in _SENTENCE_END.split(para):
        while len(sentence) > max_chars:  # a run-on "sentence" (tables, PDF text): hard cut
            out.append(sentence[:max_chars])
            sentence = sentence[max_chars:]
        if current and len(current) + 1 + len(sentence) > max_chars:
            out.append(current)
            current = sentence
        else:
            current = f"{current} {sentence}" if current else sentence
    if current:
        out.append(current)
    return out
