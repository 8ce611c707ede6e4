"""Texts longer than the embedding model reads: found before they are embedded, recorded
on each document, and warned about once per call.

The embedder cuts every text at its model's window (the built-in model reads 256 word
pieces, its ``[CLS]`` and ``[SEP]`` markers included), so the rest of a long text is not in
its vector: a query about its end does not find it. That must never be silent, so
``add_docs``

- counts the word pieces of every text it is about to embed, except those too short to
  reach the window, which are not even tokenized: an ASCII character is at most one
  piece and no character more than three (Hangul syllables), so a short text is known to
  fit from its length alone, before the tokenizer is loaded (a voice agent adding one
  short turn at a time never loads it);
- records on each document that was cut :data:`TRUNCATION_KEY` =
  the pieces its text has (markers and the model's passage prompt included), which
  ``get_docs`` and query results show;
- warns once per call (:class:`~lichen.TruncationWarning`) with the count.

The key is Lichen's: a document may carry it only with the value Lichen finds (so
documents read back with ``get_docs`` add again unchanged); any other value is refused,
never overwritten in silence. Documents added with their own ``embedding`` are not
embedded, so they are not measured, and keep the key as given.

A folder sync adds in batches; :func:`collected` gathers their counts so that the sync
warns once too. Chunks a built-in strategy sized in the index's own tokens fit by
construction (the chunking property test): ingestion names them with :func:`known_to_fit`
and they are not counted again, unless the model puts a passage prompt before them (the
prompt's tokens were not part of their size).
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from .._errors import InvalidArgumentError, LichenError, TruncationWarning
from .._types import DocumentInfo

__all__ = ["TRUNCATION_KEY", "Truncated", "mark_truncated", "warn_truncated", "collected", "known_to_fit"]

TRUNCATION_KEY = "lichen_truncated_tokens"


@dataclass
class Truncated:
    """What :func:`mark_truncated` found: the documents to add (those cut carry
    :data:`TRUNCATION_KEY`; the others are the caller's own objects), and the id and
    token count of each one cut."""

    documents: Sequence[DocumentInfo]
    cut: list[tuple[str, int]] = field(default_factory=list)
    model_id: str = ""
    window: int = 0

    def warn(self, total: int) -> None:
        """:func:`warn_truncated` for these, of ``total`` documents added."""
        warn_truncated(self, total)


def _measure(model_id: str):  # -> TokenMeasure | None
    from .tokens import token_measure

    try:
        return token_measure(model_id)
    except LichenError:  # no tokenizer to count with (a model without tokenizer.json)
        return None


#: Special tokens a model adds at most, for the length-only test (BERT adds two).
_SPECIAL_TOKENS_BOUND = 4


def _may_exceed(text: str, room: int) -> bool:
    """Whether ``text`` could be more than ``room`` pieces, judged by its length
    (``str.isascii`` is O(1) in CPython)."""
    return len(text) > (room if text.isascii() else room // 3)


def mark_truncated(
    docs: Sequence[DocumentInfo], model_id: str, *, prompt: str = "", max_tokens: int | None = None
) -> Truncated:
    """Find the documents of ``docs`` (already checked) whose text the model would cut,
    and return them marked. ``prompt`` is what the embedder puts before each text;
    ``max_tokens`` its window, if known, lets short texts pass without the tokenizer."""
    result = Truncated(docs, model_id=model_id)
    given = [i for i, doc in enumerate(docs) if doc.metadata and TRUNCATION_KEY in doc.metadata]
    embedded = [i for i, doc in enumerate(docs) if doc.embedding is None]
    fitting = _fitting.get()
    if fitting and not prompt:
        embedded = [i for i in embedded if id(docs[i]) not in fitting]
    if max_tokens is not None and not given:
        room = max_tokens - _SPECIAL_TOKENS_BOUND - 3 * len(prompt)
        embedded = [i for i in embedded if _may_exceed(docs[i].text, room)]
    if not embedded and not given:
        return result
    measure = _measure(model_id)
    if measure is None:
        return result
    window = result.window = measure.max_tokens
    prompt_tokens = measure.count([prompt])[0] if prompt else 0
    room = measure.ceiling - prompt_tokens  # pieces of the text itself that fit
    suspects = [i for i in embedded if _may_exceed(docs[i].text, room)]
    counts = dict(zip(suspects, measure.count([docs[i].text for i in suspects]))) if suspects else {}
    cut = {i: counts[i] + prompt_tokens + measure.special_tokens for i in suspects if counts[i] > room}
    embedded_set = set(embedded)
    for i in given:  # a value given must be the one Lichen finds
        value = docs[i].metadata[TRUNCATION_KEY]
        if i in embedded_set and value != cut.get(i):
            found = f"has {cut[i]} tokens" if i in cut else f"fits the {window}-token window"
            raise InvalidArgumentError(
                f"document {docs[i].id!r}: metadata key {TRUNCATION_KEY!r} is Lichen's (it records that a text was "
                f"longer than model {model_id!r} reads); it gives {value!r} but the text {found}: remove the key"
            )
    if not cut:
        return result
    marked = list(docs)
    for i, tokens in cut.items():
        doc = docs[i]
        if (doc.metadata or {}).get(TRUNCATION_KEY) == tokens:
            continue
        marked[i] = DocumentInfo(id=doc.id, text=doc.text, metadata={**(doc.metadata or {}), TRUNCATION_KEY: tokens})
    result.documents = marked
    result.cut = [(docs[i].id, tokens) for i, tokens in sorted(cut.items())]
    return result


_fitting: contextvars.ContextVar[frozenset[int] | None] = contextvars.ContextVar("lichen_fitting", default=None)


@contextlib.contextmanager
def known_to_fit(docs: Iterable[DocumentInfo]) -> Iterator[None]:
    """Within the block (this thread or task), these document objects are known to fit
    the window, measured when they were chunked: :func:`mark_truncated` skips them."""
    token = _fitting.set(frozenset(id(doc) for doc in docs))
    try:
        yield
    finally:
        _fitting.reset(token)


_collecting: contextvars.ContextVar[list[Truncated] | None] = contextvars.ContextVar("lichen_truncations", default=None)


@contextlib.contextmanager
def collected() -> Iterator[list[Truncated]]:
    """Within the block, :func:`warn_truncated` gathers instead of warning (in this thread
    or task only); at its end, one warning for all of it."""
    found: list[Truncated] = []
    token = _collecting.set(found)
    try:
        yield found
    finally:
        _collecting.reset(token)
    cut = [item for truncated in found for item in truncated.cut]
    if cut:
        first = found[0]
        _warn(cut, None, first.model_id, first.window)


def warn_truncated(truncated: Truncated, total: int) -> None:
    """Warn once about the documents ``truncated`` found (of ``total`` added), or hand
    them to an enclosing :func:`collected`."""
    if not truncated.cut:
        return
    gathering = _collecting.get()
    if gathering is not None:
        gathering.append(truncated)
        return
    _warn(truncated.cut, total, truncated.model_id, truncated.window)


def _warn(cut: list[tuple[str, int]], total: int | None, model_id: str, window: int) -> None:
    count = len(cut)
    of = f" of {total}" if total is not None else ""
    noun = ("documents" if (total or count) > 1 else "document") + (" is" if count == 1 else " are")
    longest = max(tokens for _, tokens in cut)
    shown = ", ".join(repr(doc_id) for doc_id, _ in cut[:3]) + (", ..." if count > 3 else "")
    message = (
        f"{count}{of} {noun} longer than model {model_id!r} reads ({window} tokens; the longest has {longest}): "
        f"only the beginning of each was embedded ({shown}). Their metadata says so under {TRUNCATION_KEY!r}. "
        "Add files or folders to have them chunked (add_docs(paths)), or chunk texts with lichen.ingest.chunk_text"
    )
    warnings.warn(message, TruncationWarning, stacklevel=_outside_lichen())


def _outside_lichen() -> int:
    """The stack level of the first caller outside Lichen, so the warning names the
    user's line."""
    frame = sys._getframe(1)
    level = 1
    while frame is not None and str(frame.f_globals.get("__name__", "")).split(".")[0] == "lichen":
        frame = frame.f_back
        level += 1
    return level
