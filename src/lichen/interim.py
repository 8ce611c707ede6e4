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

This module knows nothing of any voice framework: pipecat-lichen and
livekit-plugins-lichen build on it (and re-export its names), and so can an adapter for
any STT that sends interim transcripts.
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
    """How the final transcript compares with the turn's interim transcripts: ``exact``
    or ``near`` (a match: its vector was ready), ``miss`` (interim transcripts came, none
    matched) or ``none`` (no interim transcript this turn)."""
    ready: bool = False
    """The query's vector was prepared before the turn ended (a match, or the final
    transcript itself prepared as it arrived, before the turn was over): the query costs
    only the search."""
    interims: int = 0
    """How many distinct interim transcripts were heard during the turn."""


def match_prepared(
    final: str, prepared: Iterable[str], filler_words: frozenset[str] = FILLER_WORDS
) -> TurnQuery:
    """Apply the rule to ``final`` against ``prepared`` (oldest first)."""
    texts = list(prepared)
    if not texts:
        return TurnQuery(final, final, "none")
    words = transcript_words(final)
    bare = _without_fillers(words, filler_words)
    newest_first = texts[::-1]
    for text in newest_first:
        if transcript_words(text) == words:
            return TurnQuery(final, text, "exact", True, len(texts))
    if bare:
        for text in newest_first:
            if _without_fillers(transcript_words(text), filler_words) == bare:
                return TurnQuery(final, text, "near", True, len(texts))
    return TurnQuery(final, final, "miss", False, len(texts))


@dataclass
class _Turn:
    segments: list[str] = field(default_factory=list)  # final segments committed this turn
    interims: set[tuple[str, ...]] = field(default_factory=set)  # words of each interim transcript heard
    prepared: dict[tuple[str, ...], str] = field(default_factory=dict)  # words -> text, oldest first
    running: dict[tuple[str, ...], tuple[str, asyncio.Future[bool]]] = field(default_factory=dict)
    pending: str | None = None
    worker: asyncio.Task[None] | None = None
    closed: bool = False


class InterimQueries:
    """Prepares the transcripts of the current user turn, one at a time, newest first.

    ``prepare`` is Lichen's ``session.prepare``. Call :meth:`heard` for every STT result
    (it never blocks: embedding runs in the background, one text at a time; of the texts
    that arrive while one is being embedded only the newest is kept for next) and
    :meth:`finish` when the turn ends, to learn what to query with. A final segment is
    prepared too as soon as it arrives: turn detection usually decides a little later
    that the turn is over, and its vector can be ready by then even when no interim
    transcript matched.
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
        text = text.strip()
        if not text or turn.closed:
            return
        spoken = " ".join([*turn.segments, text])
        if final:
            turn.segments.append(text)
        key = transcript_words(spoken)
        if not key:
            return
        if not final:
            turn.interims.add(key)
        if key in turn.prepared or key in turn.running or len(turn.prepared) >= _MAX_PREPARED:
            return
        if final and match_prepared(spoken, turn.prepared.values(), self.filler_words).ready:
            return  # an interim transcript prepared already matches it
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
                logger.exception("preparing a transcript failed")
                done.set_result(False)
            else:
                turn.prepared[key] = text
                done.set_result(True)
            finally:
                turn.running.pop(key, None)

    async def finish(self, final: str) -> TurnQuery:
        """The turn ended with ``final``: which text to query with. Starts a new turn.

        A vector already prepared beats one still being embedded (exact before near in
        each); a matching preparation still running is awaited."""
        turn, self._turn = self._turn, _Turn()
        turn.closed, turn.pending = True, None  # nothing new starts for this turn
        unmatched = "miss" if turn.interims else "none"
        found = match_prepared(final, turn.prepared.values(), self.filler_words)
        if not found.ready:
            running = [text for text, _ in turn.running.values()]
            found = match_prepared(final, running, self.filler_words)
            if found.ready and not await turn.running[transcript_words(found.query)][1]:
                found = TurnQuery(final, final, "miss")  # it failed: the query embeds
        if not found.ready:
            return TurnQuery(final, final, unmatched, False, len(turn.interims))
        # A match with the final segment's own preparation is ready, but no interim matched.
        kind = found.match if transcript_words(found.query) in turn.interims else unmatched
        return TurnQuery(final, found.query, kind, True, len(turn.interims))

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

