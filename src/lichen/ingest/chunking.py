"""Chunking strategies: where a text is cut, and the contract every chunk keeps.

Every chunk is a span of the text it came from: ``chunk.text == text[chunk.start:chunk.end]``
(for a PDF, ``text`` is its pages joined by blank lines, and ``chunk.pages`` says which
pages the span covers). What is embedded is :attr:`Chunk.document_text`: the span, led by
its heading path (``Returns > Refunds``) when the markdown strategy found one.

Sizes are counted by a :class:`~lichen.ingest.tokens.Measure`: the embedding model's own
word pieces by default, so that no chunk is longer than the model reads (the built-in
model: 254 word pieces besides its two markers), or characters (``unit="chars"``). Every
strategy cuts at the coarsest boundary that keeps a piece within the size, and packs
neighbouring pieces up to it:

- ``recursive``: blank lines (paragraphs), then line breaks, then sentence ends, then
  spaces; a single word longer than the size is cut at word-piece (or character)
  boundaries, the hard ceiling.
- ``sentence``: whole sentences packed together (a paragraph break also ends one), then
  spaces, then the hard ceiling.
- ``markdown``: one section per heading (ATX ``#`` and setext, none inside fenced code,
  front matter left out), each chunked recursively; each chunk is led by its heading path.
- ``page``: one chunk per page of a PDF (pages longer than the size are chunked
  recursively within the page); other texts are chunked recursively.

``overlap`` repeats up to that many units of the previous chunk's last pieces at the start
of the next. Cutting is deterministic: the same text and settings always give the same
chunks, which is what keeps chunk ids stable across runs.

Custom strategies: any object with ``fingerprint`` and ``chunk(content, measure)`` (the
:class:`Chunker` protocol), or a plain callable ``text -> iterable of str or (start, end)``
(see :func:`as_chunker`).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .._errors import InvalidArgumentError
from .readers import FileContent
from .tokens import CharMeasure, Measure, Sizer

__all__ = [
    "Chunk",
    "Chunker",
    "RecursiveChunker",
    "SentenceChunker",
    "MarkdownChunker",
    "PageChunker",
    "AutoChunker",
    "FunctionChunker",
    "as_chunker",
    "chunk_text",
    "markdown_sections",
    "STRATEGIES",
    "DEFAULT_CHAR_SIZE",
]

#: Chunk size in characters when ``unit="chars"`` and no size is given (about as much
#: English text as the built-in model's 254 word pieces).
DEFAULT_CHAR_SIZE = 1000
HEADING_SEPARATOR = " > "


@dataclass(frozen=True)
class Chunk:
    """One chunk: ``text`` is exactly ``source_text[start:end]``; ``heading`` the heading
    path of its markdown section (``None`` outside one); ``lead`` what leads the text when
    embedded (the heading path, shortened to its last heading if the full path would take
    more than half the chunk size, ``None`` if even that would); ``pages`` the first and
    last page (1-based) it covers, for paged sources."""

    text: str
    start: int
    end: int
    heading: str | None = None
    pages: tuple[int, int] | None = None
    lead: str | None = None

    @property
    def document_text(self) -> str:
        """What is embedded and indexed: the lead (heading path), a blank line, the text."""
        return f"{self.lead}\n\n{self.text}" if self.lead else self.text


@runtime_checkable
class Chunker(Protocol):
    """A chunking strategy. ``fingerprint`` names it with every setting that changes its
    output; it is stored (hashed) with each chunk, so changing it re-chunks on sync."""

    fingerprint: str

    def chunk(self, content: FileContent, measure: Measure) -> list[Chunk]:
        """Chunks of ``content`` (``kind`` ``"text"``, ``"markdown"`` or ``"pages"``), in
        order, sized by ``measure`` unless the strategy counts characters."""


# ---------------------------------------------------------------------------- boundaries
#: Each level is a pattern whose matches end where a piece may end (the separator stays
#: with the piece before it, so the pieces tile the text).
_PARAGRAPH = re.compile(r"\n[^\S\n]*\n\s*")
_LINE = re.compile(r"\n\s*")
_SENTENCE = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019)\]]*\s+|[\u3002\uff01\uff1f]+\s*|\n[^\S\n]*\n\s*")
_WORD = re.compile(r"\s+")
_RECURSIVE_LEVELS = (_PARAGRAPH, _LINE, _SENTENCE, _WORD)
_SENTENCE_LEVELS = (_SENTENCE, _WORD)


class _Splitter:
    """Cuts spans of one text into pieces of at most ``limit`` units, coarsest boundary
    first, and packs neighbouring pieces (with ``overlap``) into chunks."""

    def __init__(self, text: str, sizer: Sizer, levels: Sequence[re.Pattern[str]], limit: int, overlap: int) -> None:
        self.text, self.sizer, self.levels = text, sizer, levels
        self.limit, self.overlap = max(1, limit), max(0, min(overlap, limit - 1))

    def spans(self, start: int, end: int) -> list[tuple[int, int]]:
        return [span for span in (self._trim(a, b) for a, b in self._split(start, end, 0)) if span is not None]

    def _split(self, start: int, end: int, level: int) -> list[tuple[int, int]]:
        size = self.sizer.size
        if size(start, end) <= self.limit:
            return [(start, end)]
        if level >= len(self.levels):
            cuts = [start, *self.sizer.cuts(start, end, self.limit), end]
            return list(zip(cuts, cuts[1:]))
        pattern = self.levels[level]
        inside = self.sizer.inside_unit
        bounds = [m.end() for m in pattern.finditer(self.text, start, end) if start < m.end() < end and not inside(m.end())]
        if not bounds:
            return self._split(start, end, level + 1)
        pieces = list(zip([start, *bounds], [*bounds, end]))
        out: list[tuple[int, int]] = []
        small: list[tuple[int, int]] = []
        for a, b in pieces:
            if size(a, b) <= self.limit:
                small.append((a, b))
                continue
            out.extend(self._merge(small))
            small = []
            out.extend(self._split(a, b, level + 1))
        out.extend(self._merge(small))
        return out

    def _merge(self, pieces: list[tuple[int, int]]) -> list[tuple[int, int]]:
        size = self.sizer.size
        chunks: list[tuple[int, int]] = []
        current: list[tuple[int, int]] = []
        for piece in pieces:
            if current and size(current[0][0], piece[1]) > self.limit:
                chunks.append((current[0][0], current[-1][1]))
                # Keep the last pieces as the overlap, while they fit the overlap and
                # leave room for the piece that starts the next chunk (none without an
                # overlap, not even pieces of no size, such as a control character).
                while current and (
                    not self.overlap
                    or size(current[0][0], current[-1][1]) > self.overlap
                    or size(current[0][0], piece[1]) > self.limit
                ):
                    current.pop(0)
            current.append(piece)
        if current:
            chunks.append((current[0][0], current[-1][1]))
        return chunks

    def _trim(self, start: int, end: int) -> tuple[int, int] | None:
        text = self.text
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        return (start, end) if start < end else None


# ---------------------------------------------------------------------------- strategies
class _Strategy:
    """Size settings shared by the built-in strategies."""

    name = ""
    _levels: Sequence[re.Pattern[str]] = _RECURSIVE_LEVELS

    def __init__(self, size: int | None = None, overlap: int = 0, *, unit: str = "tokens") -> None:
        if unit not in ("tokens", "chars"):
            raise InvalidArgumentError(f"unit must be 'tokens' (the model's word pieces) or 'chars', got {unit!r}")
        for what, value in (("size", size), ("overlap", overlap)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise InvalidArgumentError(f"chunk {what} must be a non-negative integer, got {value!r}")
        if size == 0:
            raise InvalidArgumentError("chunk size must be positive")
        if size is not None and overlap >= size:
            raise InvalidArgumentError(f"overlap ({overlap}) must be smaller than the chunk size ({size})")
        self.size, self.overlap, self.unit = size, overlap, unit

    @property
    def fingerprint(self) -> str:
        size = "max" if self.size is None else self.size
        return f"{self.name}(size={size},overlap={self.overlap},unit={self.unit})"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size!r}, overlap={self.overlap!r}, unit={self.unit!r})"

    def _measure(self, measure: Measure) -> Measure:
        return CharMeasure() if self.unit == "chars" else measure

    def limit(self, measure: Measure) -> int:
        """The chunk size in ``measure``'s units: the given size, or the model's ceiling."""
        if measure.unit == "chars":
            return self.size or DEFAULT_CHAR_SIZE
        ceiling = measure.ceiling
        if self.size is None:
            return ceiling or DEFAULT_CHAR_SIZE
        if ceiling is not None and self.size > ceiling:
            raise InvalidArgumentError(
                f"chunks of {self.size} tokens would be cut short when embedded: {measure.name} reads at most "
                f"{ceiling} (leave size unset for that ceiling, or count in characters with unit='chars')"
            )
        return self.size

    def chunk(self, content: FileContent, measure: Measure) -> list[Chunk]:
        measure = self._measure(measure)
        limit = self.limit(measure)
        if self.overlap >= limit:
            raise InvalidArgumentError(f"overlap ({self.overlap}) must be smaller than the chunk size ({limit} {measure.unit})")
        text = content.text
        sizer = measure.sizer(text)
        spans = self._sections(content, sizer, measure, limit)
        return _with_pages(content, spans)

    def _sections(self, content: FileContent, sizer: Sizer, measure: Measure, limit: int) -> list[Chunk]:
        return _fit(content.text, sizer, measure, self._levels, limit, self.overlap, [(0, len(content.text), None)])


def _fit(
    text: str,
    sizer: Sizer,
    measure: Measure,
    levels: Sequence[re.Pattern[str]],
    limit: int,
    overlap: int,
    sections: Iterable[tuple[int, int, str | None]],
) -> list[Chunk]:
    """Chunks of each ``(start, end, heading)`` section, each within ``limit`` units once
    its lead is added. Sizes come from the whole text's tokens; each chunk is then counted
    on its own as the embedder will see it (all of a text's chunks in one batch), and the
    rare one that grew (a word cut in two tokenizes differently: ``unds`` is two pieces on
    its own, one inside ``Refunds``) is cut again with a tighter limit, and at last
    character by character."""
    sections = list(sections)
    leads = _heading_rooms([heading for _, _, heading in sections], measure, limit)
    planned: list[tuple[str | None, str | None, int, tuple[int, int]]] = []  # heading, lead, room, span
    for start, end, heading in sections:
        lead, room = leads[heading]
        splitter = _Splitter(text, sizer, levels, room, overlap)
        planned.extend((heading, lead, room, span) for span in splitter.spans(start, end))
    if measure.unit != "chars":
        for attempt in range(3):
            counts = measure.count([_led(lead, text[a:b]) for _, lead, _, (a, b) in planned])
            if all(count <= limit for count in counts):
                break
            refit: list[tuple[str | None, str | None, int, tuple[int, int]]] = []
            for (heading, lead, room, (a, b)), count in zip(planned, counts):
                if count <= limit:
                    refit.append((heading, lead, room, (a, b)))
                    continue
                if attempt < 2:
                    tighter = _Splitter(text, sizer, levels, max(1, room - (count - limit) - attempt), overlap)
                    spans = tighter.spans(a, b)
                else:
                    spans = _cut_to_fit(text, a, b, lambda x, y, lead=lead: measure.count([_led(lead, text[x:y])])[0] <= limit)
                refit.extend((heading, lead, room, span) for span in spans)
            planned = refit
    return [Chunk(text[a:b], a, b, heading, None, lead) for heading, lead, _, (a, b) in planned]


def _led(lead: str | None, text: str) -> str:
    return f"{lead}\n\n{text}" if lead else text


def _cut_to_fit(text: str, start: int, end: int, fits: Callable[[int, int], bool]) -> list[tuple[int, int]]:
    """The last resort: the longest prefixes that fit, found by bisection over characters
    (a single character is always taken, whatever it counts)."""
    spans = []
    while start < end:
        if fits(start, end):
            spans.append((start, end))
            break
        low, high = start + 1, end - 1
        while low < high:
            middle = (low + high + 1) // 2
            if fits(start, middle):
                low = middle
            else:
                high = middle - 1
        spans.append((start, low))
        start = low
        while start < end and text[start].isspace():
            start += 1
    trimmed = []
    for a, b in spans:
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if a < b:
            trimmed.append((a, b))
    return trimmed


def _heading_rooms(
    headings: Sequence[str | None], measure: Measure, limit: int
) -> dict[str | None, tuple[str | None, int]]:
    """For each heading path, what leads its chunks and the units left for their text:
    the path; its last heading if the path would take more than half the size; nothing if
    even that would (the path stays in the ``heading`` metadata). Counted in one batch."""
    rooms: dict[str | None, tuple[str | None, int]] = {None: (None, limit)}
    paths = [heading for heading in dict.fromkeys(headings) if heading]
    candidates = [(path, lead) for path in paths for lead in dict.fromkeys((path, path.rsplit(HEADING_SEPARATOR, 1)[-1]))]
    counts = measure.count([lead + "\n\n" for _, lead in candidates])
    for (path, lead), used in zip(candidates, counts):
        if path not in rooms and used <= limit // 2:
            rooms[path] = (lead, limit - used)
    for path in paths:
        rooms.setdefault(path, (None, limit))
    return rooms


def _with_pages(content: FileContent, chunks: list[Chunk]) -> list[Chunk]:
    if content.kind != "pages" or not content.pages:
        return chunks
    starts = content.page_starts
    located = []
    for chunk in chunks:
        first = bisect.bisect_right(starts, chunk.start)
        last = bisect.bisect_right(starts, chunk.end - 1)
        located.append(Chunk(chunk.text, chunk.start, chunk.end, chunk.heading, (first, last), chunk.lead))
    return located


class RecursiveChunker(_Strategy):
    """Paragraphs, then lines, then sentences, then words, then the hard ceiling."""

    name = "recursive"
    _levels = _RECURSIVE_LEVELS


class SentenceChunker(_Strategy):
    """Whole sentences packed up to the size; an over-long sentence is cut at spaces."""

    name = "sentence"
    _levels = _SENTENCE_LEVELS


class PageChunker(_Strategy):
    """One chunk per page; a page longer than the size is chunked recursively within it.
    A text without pages is chunked recursively."""

    name = "page"

    def _sections(self, content: FileContent, sizer: Sizer, measure: Measure, limit: int) -> list[Chunk]:
        if content.kind != "pages" or content.pages is None:
            return super()._sections(content, sizer, measure, limit)
        sections = [(start, start + len(page), None) for start, page in zip(content.page_starts, content.pages)]
        return _fit(content.text, sizer, measure, self._levels, limit, self.overlap, sections)


class MarkdownChunker(_Strategy):
    """One section per heading, chunked recursively; each chunk led by its heading path
    (``Returns > Refunds``), which also goes into its ``heading`` metadata."""

    name = "markdown"

    def _sections(self, content: FileContent, sizer: Sizer, measure: Measure, limit: int) -> list[Chunk]:
        sections = markdown_sections(content.text)
        chunks = _fit(content.text, sizer, measure, self._levels, limit, self.overlap, sections)
        if not chunks and content.text.strip():  # headings only: keep them searchable
            return super()._sections(content, sizer, measure, limit)
        return chunks


# ---------------------------------------------------------------------------- markdown
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
_ATX = re.compile(r" {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r" {0,3}(=+|-+)[ \t]*$")
_FRONT_MATTER_END = re.compile(r"(?m)^(?:---|\.\.\.)[ \t]*$\n?")


def markdown_sections(text: str) -> list[tuple[int, int, str | None]]:
    """``(start, end, heading path)`` of the text under each heading (heading lines
    themselves excluded), in order; text before the first heading has no path."""
    body_start = 0
    if text.startswith("---\n"):  # YAML front matter: metadata, not content
        closing = _FRONT_MATTER_END.search(text, 4)
        if closing is not None:
            body_start = closing.end()
    lines: list[tuple[int, int]] = []  # (start, end without the newline)
    position = body_start
    while position < len(text):
        newline = text.find("\n", position)
        end = len(text) if newline < 0 else newline
        lines.append((position, end))
        position = end + 1
    headings: list[tuple[int, int, int, str]] = []  # (line start, body start, level, title)
    fence: str | None = None
    previous_is_text = False
    previous_line = (0, 0)
    previous_single = False  # the previous line is a paragraph of one line
    blank_before_previous = True
    for start, end in lines:
        line = text[start:end]
        next_start = min(end + 1, len(text))
        if fence is not None:
            stripped = line.strip()
            if stripped.startswith(fence) and set(stripped) == {fence[0]}:
                fence = None
            previous_is_text = False
            continue
        opening = _FENCE.match(line)
        if opening:
            fence = opening.group(1)
            previous_is_text = False
            continue
        atx = _ATX.match(line)
        if atx:
            headings.append((start, next_start, len(atx.group(1)), " ".join((atx.group(2) or "").split())))
            previous_is_text = False
            blank_before_previous = False
            continue
        setext = _SETEXT.match(line)
        if setext and previous_is_text and previous_single:
            prev_start, prev_end = previous_line
            title = " ".join(text[prev_start:prev_end].split())
            headings.append((prev_start, next_start, 1 if setext.group(1)[0] == "=" else 2, title))
            previous_is_text = False
            continue
        if line.strip():
            previous_single = not previous_is_text and blank_before_previous
            previous_is_text = True
            previous_line = (start, end)
            blank_before_previous = False
        else:
            previous_is_text = False
            blank_before_previous = True
    sections: list[tuple[int, int, str | None]] = []
    first = headings[0][0] if headings else len(text)
    if first > body_start:
        sections.append((body_start, first, None))
    stack: list[tuple[int, str]] = []
    for i, (_, body, level, title) in enumerate(headings):
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title))
        end = headings[i + 1][0] if i + 1 < len(headings) else len(text)
        path = HEADING_SEPARATOR.join(name for _, name in stack if name)
        if end > body:
            sections.append((body, end, path or None))
    return sections


# ---------------------------------------------------------------------------- choosing
class AutoChunker:
    """The strategy each kind of content calls for: markdown for ``.md`` (and DOCX and
    HTML, whose headings the readers keep), page for PDF, recursive for the rest."""

    def __init__(self, size: int | None = None, overlap: int = 0, *, unit: str = "tokens") -> None:
        self._by_kind: dict[str, _Strategy] = {
            "markdown": MarkdownChunker(size, overlap, unit=unit),
            "pages": PageChunker(size, overlap, unit=unit),
            "text": RecursiveChunker(size, overlap, unit=unit),
        }
        self.size, self.overlap, self.unit = size, overlap, unit

    @property
    def fingerprint(self) -> str:
        size = "max" if self.size is None else self.size
        return f"auto(size={size},overlap={self.overlap},unit={self.unit})"

    def strategy_for(self, kind: str) -> _Strategy:
        return self._by_kind.get(kind, self._by_kind["text"])

    def chunk(self, content: FileContent, measure: Measure) -> list[Chunk]:
        return self.strategy_for(content.kind).chunk(content, measure)

    def __repr__(self) -> str:
        return f"AutoChunker(size={self.size!r}, overlap={self.overlap!r}, unit={self.unit!r})"


class FunctionChunker:
    """A callable ``text -> iterable of str, (start, end) or Chunk`` as a :class:`Chunker`.

    Strings must occur in the text in order (each is looked for from just after the
    previous one's start, so overlapping chunks are fine); spans are taken as given; a
    Chunk must be its span of the text (its ``heading`` and ``lead`` are kept)."""

    def __init__(self, function: Callable[[str], Iterable[str | tuple[int, int]]], *, fingerprint: str | None = None) -> None:
        if not callable(function):
            raise InvalidArgumentError(f"a chunker must be callable, got {type(function).__name__}")
        self.function = function
        name = getattr(function, "__qualname__", None) or type(function).__name__
        self.fingerprint = fingerprint or f"custom:{getattr(function, '__module__', '')}.{name}"

    def chunk(self, content: FileContent, measure: Measure) -> list[Chunk]:
        text = content.text
        chunks: list[Chunk] = []
        cursor = 0
        for index, piece in enumerate(self.function(text)):
            if isinstance(piece, str):
                start = text.find(piece, cursor)
                if start < 0 or not piece:
                    raise InvalidArgumentError(
                        f"chunker {self.fingerprint} returned chunk {index} ({piece[:40]!r}...), which is not in the text "
                        "after the previous chunk: return pieces of the text itself, or (start, end) offsets"
                    )
                end = start + len(piece)
            elif isinstance(piece, Chunk):
                start, end = piece.start, piece.end
                if not 0 <= start < end <= len(text) or text[start:end] != piece.text:
                    raise InvalidArgumentError(
                        f"chunker {self.fingerprint} returned chunk {index} whose text is not the text at {start}:{end}"
                    )
            elif isinstance(piece, tuple) and len(piece) == 2 and all(type(v) is int for v in piece):
                start, end = piece
                if not 0 <= start < end <= len(text):
                    raise InvalidArgumentError(
                        f"chunker {self.fingerprint} returned span {piece} for a text of {len(text)} characters"
                    )
            else:
                raise InvalidArgumentError(
                    f"chunker {self.fingerprint} returned {type(piece).__name__}; return strings, (start, end) tuples or Chunks"
                )
            chunks.append(piece if isinstance(piece, Chunk) else Chunk(text[start:end], start, end))
            cursor = start + 1
        return _with_pages(content, chunks)


STRATEGIES: dict[str, type[_Strategy]] = {
    "recursive": RecursiveChunker,
    "sentence": SentenceChunker,
    "markdown": MarkdownChunker,
    "page": PageChunker,
}


def as_chunker(
    chunker: str | Chunker | Callable[[str], Iterable[str | tuple[int, int]]] | None = None,
    *,
    size: int | None = None,
    overlap: int = 0,
    unit: str = "tokens",
) -> Chunker:
    """A :class:`Chunker` from what a caller passed: ``None`` or ``"auto"`` (the strategy
    each file type calls for), a strategy name, a :class:`Chunker`, or a callable.
    ``size`` / ``overlap`` / ``unit`` apply to the built-in strategies only."""
    if chunker is None or chunker == "auto":
        return AutoChunker(size, overlap, unit=unit)
    if isinstance(chunker, str):
        strategy = STRATEGIES.get(chunker)
        if strategy is None:
            raise InvalidArgumentError(f"unknown chunking strategy {chunker!r}; choose auto, {', '.join(STRATEGIES)}")
        return strategy(size, overlap, unit=unit)
    if size is not None or overlap or unit != "tokens":
        raise InvalidArgumentError("size, overlap and unit configure the built-in strategies; set them on your own chunker")
    if isinstance(chunker, Chunker):
        return chunker
    return FunctionChunker(chunker)


def chunk_text(
    text: str,
    chunker: str | Chunker | Callable[[str], Iterable[str | tuple[int, int]]] | None = "recursive",
    *,
    size: int | None = None,
    overlap: int = 0,
    unit: str = "tokens",
    model_id: str | None = None,
    kind: str = "text",
) -> list[Chunk]:
    """Chunk one text (``kind="markdown"`` for markdown) as ingestion would; sizes in the
    tokens of ``model_id`` (default: the built-in model) unless ``unit="chars"``."""
    if not isinstance(text, str):
        raise InvalidArgumentError(f"text must be a string, got {type(text).__name__}")
    strategy = as_chunker(chunker, size=size, overlap=overlap, unit=unit)
    from .tokens import DEFAULT_MODEL_ID, token_measure

    measure: Measure = CharMeasure() if unit == "chars" else token_measure(model_id or DEFAULT_MODEL_ID)
    return strategy.chunk(FileContent(kind, text), measure)
