"""Interim transcripts: embed the question while the user is still speaking.

An STT service sends interim transcripts as the user speaks, then the final one. The
last interim transcript is usually the final one already, give or take punctuation and
case, so its query vector can be ready before the turn ends: :class:`InterimQueries`
hands each transcript of the turn to Lichen's ``prepare`` (which embeds it and keeps the
vector in the model's prepared-query cache) and, when the turn ends, says which text to
query with so that the query finds its vector there and costs only the search.

The rule, applied to the final transcript against every text prepared during the turn
(newest first):

* **exact**: the same words, ignoring case, punctuation and spacing (Unicode NFKC, case
  folded, ``\\w+`` words): Lichen's own rule for a prepared query.
* **near**: the same words once filler words (``um``, ``uh``, ``erm``, ...; see
  :data:`FILLER_WORDS`) are removed from both, wherever they stand. A final "Refund,
  um, please" matches the interim "refund please" and the reverse; they mean the same
  to the embedding model.
* otherwise **miss**: the final transcript is embedded when queried, as without
  interim transcripts. **none**: nothing was prepared during the turn.

On a match the query is asked with the prepared text itself (its words are the final
transcript's, less fillers), so Lichen finds the vector whatever its normalisation.
A preparation still running when the turn ends is awaited if it matches (it finishes
sooner than a new embedding would) and abandoned otherwise.

This module knows nothing of any voice framework: the Pipecat processor feeds it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import unicodedata
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["FILLER_WORDS", "InterimQueries", "TurnQuery", "match_prepared", "transcript_words"]

logger = logging.getLogger(__name__)

#: Words an STT service may or may not transcribe that carry no meaning for retrieval.
FILLER_WORDS: frozenset[str] = frozenset(
    {"ah", "eh", "er", "erm", "hm", "hmm", "mhm", "mm", "mmm", "uh", "uhh", "uhm", "um", "umm"}
)

_WORDS = re.compile(r"\w+")
# Interim transcripts kept per turn: a turn of a few dozen words prepares a few dozen.
_MAX_PREPARED = 64

MatchKind = Literal["exact", "near", "miss", "none"]


def transcript_words(text: str) -> tuple[str, ...]:
    """The words of a transcript as Lichen keys a prepared query: NFKC, case folded."""
    return tuple(_WORDS.findall(unicodedata.normalize("NFKC", text).casefold()))


def _without_fillers(words: tuple[str, ...], fillers: frozenset[str]) -> tuple[str, ...]:
    return tuple(word for word in words if word not in fillers)


@dataclass(frozen=True)
class TurnQuery:
    """What to query with at the end of a user turn, and why."""

    final: str
    """The final transcript of the turn."""
    query: str
    """The text to query with: the matching prepared text, or the final transcript."""
    match: MatchKind
    """``exact`` / ``near``: a prepared text matched (its vector is ready); ``miss``:
    texts were prepared, none matched; ``none``: nothing was prepared this turn."""
    prepared: int = 0
    """How many texts were prepared during the turn."""


def match_prepared(
    final: str, prepared: Iterable[str], filler_words: frozenset[str] = FILLER_WORDS
) -> TurnQuery:
    """Apply the rule to ``final`` against ``prepared`` (oldest first)."""
    texts = list(prepared)
    if not texts:
        return TurnQuery(final, final, "none", 0)
    words = transcript_words(final)
    bare = _without_fillers(words, filler_words)
    newest_first = texts[::-1]
    for text in newest_first:
        if transcript_words(text) == words:
            return TurnQuery(final, text, "exact", len(texts))
    if bare:
        for text in newest_first:
            if _without_fillers(transcript_words(text), filler_words) == bare:
                return TurnQuery(final, text, "near", len(texts))
    return TurnQuery(final, final, "miss", len(texts))


@dataclass
class _Turn:
    segments: list[str] = field(default_factory=list)  # final segments committed this turn
    prepared: dict[tuple[str, ...], str] = field(default_factory=dict)  # words -> text, oldest first
    running: dict[tuple[str, ...], tuple[str, asyncio.Future[bool]]] = field(default_factory=dict)
    pending: str | None = None
    worker: asyncio.Task[None] | None = None
    closed: bool = False


class InterimQueries:
    """Prepares the transcripts of the current user turn, one at a time, newest first.

    ``prepare`` is Lichen's ``session.prepare``. Call :meth:`heard` for every STT result
    (never blocks: embedding runs in the background; while one text is being embedded,
    only the newest of those that arrive meanwhile is kept for next) and :meth:`finish`
    when the turn ends, to learn what to query with.
    """

    def __init__(
        self,
        prepare: Callable[[str], Awaitable[object]],
        *,
        filler_words: Iterable[str] = FILLER_WORDS,
    ) -> None:
        self._prepare = prepare
        self.filler_words = frozenset(word.casefold() for word in filler_words)
        self._turn = _Turn()

    def heard(self, text: str, *, final: bool = False) -> None:
        """An STT result of the current turn: an interim transcript of the segment being
        spoken, or (``final=True``) that segment's final transcript. Earlier final
        segments of the turn are prepended, as the turn's message will hold them all."""
        turn = self._turn
        if not text.strip():
            return
        spoken = " ".join([*turn.segments, text.strip()])
        if final:
            turn.segments.append(text.strip())
        key = transcript_words(spoken)
        if not key or key in turn.prepared or key in turn.running or len(turn.prepared) >= _MAX_PREPARED:
            return
        turn.pending = spoken
        if turn.worker is None or turn.worker.done():
            turn.worker = asyncio.get_running_loop().create_task(self._work(turn))

    async def _work(self, turn: _Turn) -> None:
        while turn.pending is not None and not turn.closed:
            text, turn.pending = turn.pending, None
            key = transcript_words(text)
            done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            turn.running[key] = (text, done)
            try:
                await self._prepare(text)
            except asyncio.CancelledError:
                done.set_result(False)
                raise
            except Exception:  # a failed preparation only costs the embedding later
                logger.exception("preparing an interim transcript failed")
                done.set_result(False)
            else:
                turn.prepared[key] = text
                done.set_result(True)
            finally:
                turn.running.pop(key, None)

    async def finish(self, final: str) -> TurnQuery:
        """The turn ended with ``final``: which text to query with. Starts a new turn."""
        turn, self._turn = self._turn, _Turn()
        turn.closed, turn.pending = True, None  # nothing new starts for this turn
        # The text being embedded right now, if any, is the newest one.
        running = [text for text, _ in turn.running.values()]
        found = match_prepared(final, [*turn.prepared.values(), *running], self.filler_words)
        key = transcript_words(found.query)
        if found.match in ("exact", "near") and key in turn.running:
            if not await turn.running[key][1]:  # it failed: the query embeds
                return TurnQuery(final, final, "miss", len(turn.prepared))
        return found

    async def aclose(self) -> None:
        """Stop preparing (the call is over)."""
        turn = self._turn
        turn.closed, turn.pending = True, None
        if turn.worker is not None and not turn.worker.done():
            turn.worker.cancel()
            try:
                await turn.worker
            except asyncio.CancelledError:
                pass
