"""File types: turn a file's bytes into text, pages or records.

One reader per type, chosen by the file's suffix:

========================  ===========  ======================================================
suffix                    content      how
========================  ===========  ======================================================
``.txt``                  text         UTF-8 (a byte-order mark is dropped)
``.md``, ``.markdown``    markdown     UTF-8, headings kept for the markdown chunker
``.json``                 records      a JSON array of records (or one record)
``.jsonl``, ``.ndjson``   records      one JSON record a line (blank lines skipped)
``.pdf``                  pages        pypdfium2 (PDFium), one text per page   [files extra]
``.docx``                 markdown     python-docx: headings become ``#`` lines  [files extra]
``.html``, ``.htm``       markdown     lxml.html: headings become ``#`` lines     [files extra]
========================  ===========  ======================================================

A record is a JSON object with ``text`` (required), ``id``, ``metadata`` (an object) and
``embedding`` (a list of numbers) optional, as ``lichen push`` reads them; any other key
goes into the metadata (``{"text": ..., "topic": "billing"}``).

Readers raise :class:`~lichen.ingest.errors.SourceError` naming the file and the problem;
the PDF, DOCX and HTML readers name the ``files`` extra when its libraries are missing.
Why these libraries (measured side by side): ``benchmarks/RESULTS.md``, "Ingestion".
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from .errors import SkippedSource, SourceError

__all__ = [
    "FileContent",
    "Record",
    "read_bytes",
    "parse_records",
    "SUFFIXES",
    "FILES_EXTRA_SUFFIXES",
    "RECORD_SUFFIXES",
    "FILES_EXTRA_HINT",
]

FILES_EXTRA_HINT = "pip install 'lichen[files]'"


@dataclass
class Record:
    """One JSON record: its text, its own id (if it had one), its metadata, its vector
    (if given), and the lines of the file it spans (1-based, inclusive; ``None`` for
    records given in memory)."""

    text: str
    id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    lines: tuple[int, int] | None = None
    embedding: list[float] | None = None


@dataclass
class FileContent:
    """What a reader found: ``kind`` is ``"text"``, ``"markdown"``, ``"pages"`` or
    ``"records"``. ``text`` holds the text (for pages: the pages joined by blank lines,
    see ``page_starts``), ``pages`` the text of each page, ``records`` the records."""

    kind: str
    text: str = ""
    pages: list[str] | None = None
    records: list[Record] | None = None

    @property
    def page_starts(self) -> list[int]:
        """Offset of each page in ``text`` (pages are joined by ``PAGE_JOINER``)."""
        starts, offset = [], 0
        for page in self.pages or []:
            starts.append(offset)
            offset += len(page) + len(PAGE_JOINER)
        return starts


PAGE_JOINER = "\n\n"


def _fail(label: str, reason: str) -> SourceError:
    return SourceError([SkippedSource(label, reason)])


def _decode(data: bytes, label: str) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _fail(label, f"not UTF-8 text (byte {exc.start} is {data[exc.start:exc.start + 1]!r}); save it as UTF-8") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _read_text(data: bytes, label: str) -> FileContent:
    return FileContent("text", _decode(data, label))


def _read_markdown(data: bytes, label: str) -> FileContent:
    return FileContent("markdown", _decode(data, label))


# ---------------------------------------------------------------------------- records
_RECORD_KEYS = ("id", "text", "metadata", "embedding")


class _BadRecord(Exception):
    """A JSON value that is not a record (kept apart from ``ValueError``, which
    :class:`SourceError` also is)."""


def _record(value: Any, where: str, lines: tuple[int, int] | None) -> Record:
    if not isinstance(value, dict):
        raise _BadRecord(f"{where} is {type(value).__name__}, expected an object with a 'text'")
    text = value.get("text")
    if not isinstance(text, str):
        raise _BadRecord(f"{where} has no 'text' string" if text is None else f"{where}: 'text' is {type(text).__name__}, not a string")
    record_id = value.get("id")
    if record_id is not None and (isinstance(record_id, bool) or not isinstance(record_id, (str, int))):
        raise _BadRecord(f"{where}: 'id' must be a string or an integer, got {record_id!r}")
    metadata = value.get("metadata")
    if metadata is None:
        metadata = {}
    elif not isinstance(metadata, dict):
        raise _BadRecord(f"{where}: 'metadata' must be an object, got {type(metadata).__name__}")
    else:
        metadata = dict(metadata)
    embedding = value.get("embedding")
    if embedding is not None and not isinstance(embedding, list):
        raise _BadRecord(f"{where}: 'embedding' must be a list of numbers, got {type(embedding).__name__}")
    for key, item in value.items():
        if key in _RECORD_KEYS:
            continue
        if key in metadata:
            raise _BadRecord(f"{where}: {key!r} is given both as a key and in 'metadata'")
        metadata[key] = item
    return Record(
        text=text, id=None if record_id is None else str(record_id), metadata=metadata, lines=lines, embedding=embedding
    )


def _json_lines(text: str, label: str) -> list[Record]:
    records = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            records.append(_record(orjson.loads(line), f"line {number}", (number, number)))
        except orjson.JSONDecodeError as exc:
            raise _fail(label, f"line {number} is not JSON ({exc})") from None
        except _BadRecord as exc:
            raise _fail(label, str(exc)) from None
    return records


def _line_of(text: str, offset: int, newlines: list[int]) -> int:
    import bisect

    return bisect.bisect_right(newlines, offset - 1) + 1


def _json_array(text: str, label: str) -> list[Record]:
    """Records of a JSON array, each with the lines it spans: elements are decoded one by
    one with ``raw_decode`` so their positions are known."""
    import json

    decoder = json.JSONDecoder()
    newlines = [m.start() for m in re.finditer("\n", text)]
    position = len(text) - len(text.lstrip())
    try:
        if text.startswith("{", position):  # one record
            value, end = decoder.raw_decode(text, position)
            if text[end:].strip():
                raise _fail(label, f"unexpected text after the JSON value at line {_line_of(text, end, newlines)}")
            return [_record(value, "the record", (_line_of(text, position, newlines), _line_of(text, end - 1, newlines)))]
        if not text.startswith("[", position):
            raise _fail(label, "not a JSON array of records (it should start with '[' or '{')")
        records: list[Record] = []
        position += 1
        whitespace = re.compile(r"\s*")
        position = whitespace.match(text, position).end()
        if text.startswith("]", position):
            position += 1
        else:
            while True:
                value, end = decoder.raw_decode(text, position)
                lines = (_line_of(text, position, newlines), _line_of(text, end - 1, newlines))
                records.append(_record(value, f"element {len(records)} (line {lines[0]})", lines))
                position = whitespace.match(text, end).end()
                if text.startswith(",", position):
                    position = whitespace.match(text, position + 1).end()
                    continue
                if text.startswith("]", position):
                    position += 1
                    break
                raise json.JSONDecodeError("expected ',' or ']'", text, position)
        if text[position:].strip():
            raise _fail(label, f"unexpected text after the JSON array at line {_line_of(text, position, newlines)}")
        return records
    except json.JSONDecodeError as exc:
        raise _fail(label, f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except _BadRecord as exc:
        raise _fail(label, str(exc)) from None


def parse_records(text: str, label: str = "JSON text", *, lines: bool | None = None) -> list[Record]:
    """Records from JSON text: an array (or one object) or, with ``lines=True``, JSON
    Lines. ``None`` decides: text starting with ``[`` is an array; otherwise one object
    is one record unless more follow on later lines."""
    if lines is None:
        stripped = text.lstrip()
        if stripped.startswith("["):
            lines = False
        else:
            first, _, rest = stripped.partition("\n")
            lines = bool(rest.strip()) and _is_json_object(first)
    return _json_lines(text, label) if lines else _json_array(text, label)


def _is_json_object(line: str) -> bool:
    try:
        return isinstance(orjson.loads(line), dict)
    except orjson.JSONDecodeError:
        return False


def _read_json(data: bytes, label: str) -> FileContent:
    return FileContent("records", records=parse_records(_decode(data, label), label, lines=False))


def _read_jsonl(data: bytes, label: str) -> FileContent:
    return FileContent("records", records=parse_records(_decode(data, label), label, lines=True))


# ---------------------------------------------------------------------------- files extra
def _missing_extra(label: str, suffix: str, module: str) -> SourceError:
    return _fail(label, f"reading {suffix} files needs the 'files' extra ({module} is not installed): {FILES_EXTRA_HINT}")


#: PDFium is not thread-safe (pypdfium2's documentation); the async faces of an index
#: read on worker threads, so PDF reads take turns.
_pdfium_lock = threading.Lock()


def _read_pdf(data: bytes, label: str) -> FileContent:
    try:
        import pypdfium2 as pdfium
    except ImportError:
        raise _missing_extra(label, ".pdf", "pypdfium2") from None
    pages: list[str] = []
    with _pdfium_lock:
        try:
            document = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            raise _fail(label, f"not a readable PDF ({exc})") from None
        try:
            for index in range(len(document)):
                page = document[index]
                try:
                    textpage = page.get_textpage()
                    try:
                        text = textpage.get_text_bounded()
                    finally:
                        textpage.close()
                finally:
                    page.close()
                pages.append(_clean_pdf_text(text))
        except pdfium.PdfiumError as exc:
            raise _fail(label, f"cannot read page {len(pages) + 1} ({exc})") from None
        finally:
            document.close()
    return FileContent("pages", text=PAGE_JOINER.join(pages), pages=pages)


def _clean_pdf_text(text: str) -> str:
    # PDFium ends lines with CRLF and may leave NULs and form feeds; a soft hyphen at a line
    # end is a word broken by the layout.
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "").replace("\f", "\n")
    text = re.sub("\u00ad\n", "", text)
    return text.replace("\ufffe", "").strip()


_HEADING_STYLE = re.compile(r"(?:Heading|Title)\s*(\d)?$", re.IGNORECASE)


def _read_docx(data: bytes, label: str) -> FileContent:
    try:
        from docx import Document
        from docx.table import Table
    except ImportError:
        raise _missing_extra(label, ".docx", "python-docx") from None
    try:
        document = Document(io.BytesIO(data))
    except Exception as exc:  # python-docx raises zipfile, KeyError, lxml errors, its own
        raise _fail(label, f"not a readable .docx file ({type(exc).__name__}: {exc})") from None
    # Looking a paragraph's style up through python-docx costs ~1 ms a paragraph (it
    # searches the styles part each time): map style ids to names once.
    style_names = {style.style_id: style.name or "" for style in document.styles}
    blocks: list[str] = []
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            for row in block.rows:
                cells = [cell.text.strip() for cell in row.cells]
                if any(cells):
                    blocks.append(" | ".join(cells))
            continue
        text = block.text.strip()
        if not text:
            continue
        heading = _HEADING_STYLE.match(_style_name(block, style_names))
        if heading:
            level = int(heading.group(1) or 1)
            text = "#" * min(max(level, 1), 6) + " " + " ".join(text.split())
        blocks.append(text)
    return FileContent("markdown", "\n\n".join(blocks))


def _style_name(paragraph: Any, names: dict[str, str]) -> str:
    """A paragraph's style name through the id map (``paragraph.style`` is the public way,
    and the slow one)."""
    try:
        return names.get(paragraph._p.style or "", "")
    except AttributeError:  # a python-docx that keeps it elsewhere
        style = paragraph.style
        return style.name or "" if style is not None else ""


_HTML_SKIP = frozenset(
    {"script", "style", "noscript", "template", "svg", "head", "nav", "header", "footer", "aside", "form", "button", "iframe", "select"}
)
#: Elements that stand as paragraphs of their own (a blank line around them) ...
_HTML_BLOCK = frozenset(
    {"p", "div", "section", "article", "main", "ul", "ol", "dl", "table", "pre", "blockquote", "hr", "h1", "h2", "h3",
     "h4", "h5", "h6", "body", "figure", "figcaption", "caption", "details", "summary", "address"}
)
#: ... and elements that are lines within one (list items, table rows).
_HTML_LINE = frozenset({"li", "tr", "br", "dt", "dd"})


def _read_html(data: bytes, label: str) -> FileContent:
    """Visible text with structure: block elements become lines, headings ``#`` lines,
    list items ``- `` lines, table cells `` | ``-separated; scripts, styles and page chrome
    (``nav``, ``header``, ``footer``, ``aside``) are left out."""
    try:
        import lxml.etree
        import lxml.html
    except ImportError:
        raise _missing_extra(label, ".html", "lxml") from None
    if not data.strip():
        return FileContent("markdown", "")
    try:
        root = lxml.html.document_fromstring(data)
    except (lxml.etree.ParserError, ValueError) as exc:
        raise _fail(label, f"not readable HTML ({exc})") from None
    out: list[str] = []

    def walk(element: Any) -> None:
        tag = element.tag if isinstance(element.tag, str) else None
        if tag is None or tag in _HTML_SKIP:  # comments, processing instructions, chrome
            if element.tail:
                out.append(element.tail)
            return
        if tag in _HTML_BLOCK:
            out.append("\n\n")
            if tag[0] == "h" and tag[1:].isdigit():
                out.append("#" * int(tag[1]) + " ")
        elif tag in _HTML_LINE:
            out.append("\n- " if tag == "li" else "\n")
        elif tag in ("td", "th") and element.getprevious() is not None:
            out.append(" | ")
        if tag == "pre":
            out.append(element.text_content())
        else:
            if element.text:
                out.append(element.text)
            for child in element:
                walk(child)
        if tag in _HTML_BLOCK:
            out.append("\n\n")
        if element.tail:
            out.append(element.tail)

    walk(root)
    return FileContent("markdown", _tidy_html_text("".join(out)))


def _tidy_html_text(text: str) -> str:
    lines = [re.sub(r"[ \t\u00a0]+", " ", line).strip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


Reader = Callable[[bytes, str], FileContent]

#: Suffix -> reader. Keys are lower case; a file's suffix is compared lower-cased.
SUFFIXES: dict[str, Reader] = {
    ".txt": _read_text,
    ".md": _read_markdown,
    ".markdown": _read_markdown,
    ".json": _read_json,
    ".jsonl": _read_jsonl,
    ".ndjson": _read_jsonl,
    ".pdf": _read_pdf,
    ".docx": _read_docx,
    ".html": _read_html,
    ".htm": _read_html,
}
FILES_EXTRA_SUFFIXES = frozenset({".pdf", ".docx", ".html", ".htm"})
RECORD_SUFFIXES = frozenset({".json", ".jsonl", ".ndjson"})


def read_bytes(data: bytes, suffix: str, label: str) -> FileContent:
    """Read ``data`` (a file's bytes) as the type its ``suffix`` names; ``label`` names the
    file in errors."""
    reader = SUFFIXES.get(suffix.lower())
    if reader is None:
        known = ", ".join(sorted(SUFFIXES))
        what = f"file type {suffix!r}" if suffix else "a file without a suffix"
        raise _fail(label, f"unsupported {what}; Lichen reads {known}")
    return reader(data, label)
