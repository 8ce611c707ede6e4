"""``LichenContextProcessor``: per user turn, Lichen context just before the LLM; the
call's turns indexed into its session; the session pushed when the call ends.

``LichenTranscriptListener`` (from :meth:`LichenContextProcessor.transcript_listener`)
sits right after the STT service, where interim transcripts still flow (the user context
aggregator consumes them), and prepares their query vectors while the user speaks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lichen import Client, ContextHit, PushIndexResult, SessionIndex
from lichen.interim import InterimQueries, TurnQuery
from loguru import logger
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InterimTranscriptionFrame,
    LLMContextFrame,
    StartFrame,
    TranscriptionFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext, LLMSpecificMessage
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from .params import LichenParams

__all__ = ["LichenContextProcessor", "LichenTranscriptListener", "LichenTurn"]

INDEX_DELAY_S = 0.02  # after a turn's context frame has gone on, before its messages are embedded


@dataclass
class LichenTurn:
    """What the processor did for one user turn (``processor.last_turn``, and the
    argument of the ``on_context_retrieved`` event)."""

    query: TurnQuery
    """The final transcript, the text queried with, and how it matched what was prepared."""
    hits: list[ContextHit] = field(default_factory=list)
    """The passages injected, best first over all sources."""
    context: str | None = None
    """The system message injected (``None``: nothing relevant was found)."""
    latency_ms: float = 0.0
    """From the context frame's arrival to the context being in place."""


class LichenContextProcessor(FrameProcessor):
    """Retrieval from a call's Lichen session and long-term indexes, per user turn.

    Place it between the user context aggregator and the LLM service::

        lichen = LichenContextProcessor(session, client, params=LichenParams(indexes=["faqs"]))
        Pipeline([transport.input(), stt, lichen.transcript_listener(), context_aggregator.user(),
                  lichen, llm, tts, transport.output(), context_aggregator.assistant()])

    For each ``LLMContextFrame`` that ends with a new user message it queries the
    session and the indexes with the user's words, puts the best passages into the
    context as one system message just before that message (removing the previous
    turn's), and passes the frame on; then it indexes the conversation messages it has
    not seen yet (the user's, and the assistant's reply to the previous turn) into the
    session. A turn is never its own context: it is indexed after the query.

    With the transcript listener in the pipeline, interim transcripts are embedded as
    they arrive (``session.prepare``), so a final transcript that matches one of them
    (see :mod:`lichen.interim`) costs only the search.

    On ``EndFrame`` or ``CancelFrame`` it indexes what is left (the last reply) and
    pushes the session (``params.push_on_end``). Events: ``on_context_retrieved``
    (processor, :class:`LichenTurn`) and ``on_session_pushed`` (processor,
    ``PushIndexResult``).
    """

    def __init__(
        self,
        session: SessionIndex,
        client: Client | None = None,
        *,
        params: LichenParams | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._params = params = params or LichenParams()
        self._search = params.context_search(session, client, owner="LichenContextProcessor")
        self.session, self.client = session, client
        self._interim = InterimQueries(session.prepare, filler_words=params.filler_words)
        self._listener: LichenTranscriptListener | None = None
        self._indexed = 0  # conversation messages of the context already in the session
        self._indexing: asyncio.Future[None] | None = None
        self._injected: dict[str, Any] | None = None
        self._context: LLMContext | None = None
        self._ended = False
        self.last_turn: LichenTurn | None = None
        self.last_push: PushIndexResult | None = None
        self._register_event_handler("on_context_retrieved")
        self._register_event_handler("on_session_pushed")

    @property
    def params(self) -> LichenParams:
        return self._params

    def transcript_listener(self) -> LichenTranscriptListener:
        """The processor to place right after the STT service: it prepares each interim
        transcript's query vector (one listener per processor)."""
        if self._listener is None:
            self._listener = LichenTranscriptListener(self)
        return self._listener

    # ------------------------------------------------------------------ frames
    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMContextFrame):
            pending, turn = await self._before_llm(frame.context)
            await self.push_frame(frame, direction)
            if turn is not None:
                await self._call_event_handler("on_context_retrieved", turn)
            self._indexed += len(pending)  # counted now; written once the LLM has the frame
            self._indexing = asyncio.ensure_future(self._index_later(pending, turn))
        elif isinstance(frame, StartFrame):
            if self._ended:  # a processor may run in one pipeline after another
                self._ended = False
                self._interim = InterimQueries(self.session.prepare, filler_words=self._params.filler_words)
            await self.push_frame(frame, direction)
        elif isinstance(frame, (EndFrame, CancelFrame)):
            await self._end_call()
            await self.push_frame(frame, direction)
        else:
            await self.push_frame(frame, direction)

    def heard(self, text: str, *, final: bool) -> None:
        """An STT result (from the transcript listener): prepare its query vector."""
        if self._params.prepare_interim and self._params.top_k > 0:
            self._interim.heard(text, final=final)

    # ------------------------------------------------------------------ one turn
    async def _before_llm(self, context: LLMContext) -> tuple[list[dict[str, Any]], LichenTurn | None]:
        """Put this turn's context in place; return the messages still to index, and
        the turn (``None`` when the context does not end with a new user message)."""
        await self._settled()  # the previous turn is in the session before this one queries
        started = time.perf_counter()
        if context is not self._context:  # another conversation (a new pipeline): none of it indexed yet
            self._context, self._indexed, self._injected = context, 0, None
        messages = [m for m in context.get_messages() if m is not self._injected]
        new = self._new_messages(messages)
        if not new or new[-1]["role"] != "user":
            if len(messages) != len(context.get_messages()):
                context.set_messages(messages)  # the previous turn's context goes
            self._injected = None
            return new, None
        text = _text_of(new[-1])
        query = await self._interim.finish(text)
        if not query.ready:
            # Embedded once, here: the search and the turn's document both take this vector.
            await self.session.prepare(query.query)
        hits = await self._search.asearch(query.query) if self._params.top_k > 0 else []
        rendered = self._params.render(hits) if hits else None
        self._injected = {"role": "system", "content": rendered} if rendered else None
        if self._injected is not None:
            messages.insert(len(messages) - 1, self._injected)  # just before the user's turn
        context.set_messages(messages)
        self.last_turn = LichenTurn(query, hits, rendered, (time.perf_counter() - started) * 1000.0)
        return new, self.last_turn

    def _new_messages(self, messages: Sequence[Any]) -> list[dict[str, Any]]:
        conversation = [
            m for m in messages
            if not isinstance(m, LLMSpecificMessage) and m.get("role") in self._params.speakers and _text_of(m)
        ]
        return conversation[self._indexed :]

    async def _index_later(self, messages: list[dict[str, Any]], turn: LichenTurn | None) -> None:
        # Embedding takes both cores for a few milliseconds: start once the frame has
        # moved on, so the LLM request is not kept waiting behind it.
        await asyncio.sleep(INDEX_DELAY_S)
        await self._index(messages, turn)

    async def _settled(self) -> None:
        """Wait for the previous turn's messages to be in the session."""
        if self._indexing is not None:
            indexing, self._indexing = self._indexing, None
            try:
                await indexing
            except Exception as error:  # one turn lost from the session; the call goes on
                logger.error(f"{self}: indexing turns into session {self.session.name!r} failed: {error!r}")

    async def _index(self, messages: list[dict[str, Any]], turn: LichenTurn | None = None) -> None:
        if not messages or not self._params.index_turns:
            return
        texts = [_text_of(m) for m in messages]
        vectors = await asyncio.to_thread(self._vectors, texts, turn)
        first = self.session.doc_count + 1
        docs = [
            self._params.turn_document(message["role"], text, first + i, vector)
            for i, (message, text, vector) in enumerate(zip(messages, texts, vectors))
        ]
        await self.session.add_docs(docs)

    def _vectors(self, texts: list[str], turn: LichenTurn | None) -> list[Any]:
        """Each message embedded from its words alone (not "speaker: ..."); the user's
        turn just queried takes its query vector (prepared while the user spoke or just
        before the search, so ``embed_query`` finds it and nothing is embedded twice)."""
        if turn is None:
            return list(self.session.embed_texts(texts))
        earlier = list(self.session.embed_texts(texts[:-1])) if len(texts) > 1 else []
        return [*earlier, self.session.embed_query(turn.query.query)]

    async def _end_call(self) -> None:
        if self._ended:
            return
        self._ended = True
        await self._interim.aclose()
        await self._settled()
        if self._context is not None:
            messages = [m for m in self._context.get_messages() if m is not self._injected]
            rest = self._new_messages(messages)  # the assistant's last reply
            self._indexed += len(rest)
            await self._index(rest)
        if self._params.push_on_end and self._params.index_turns:
            try:
                self.last_push = await self.session.push_index()
            except Exception as error:  # the call is over either way; say why it was not kept
                logger.error(f"{self}: pushing session {self.session.name!r} failed: {error!r}")
                raise
            await self._call_event_handler("on_session_pushed", self.last_push)


class LichenTranscriptListener(FrameProcessor):
    """Passes every frame on; hands interim and final transcripts to its
    :class:`LichenContextProcessor` so their query vectors are ready when the turn ends.
    Place it right after the STT service (before the user context aggregator, which
    consumes transcription frames)."""

    def __init__(self, lichen: LichenContextProcessor, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._lichen = lichen

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InterimTranscriptionFrame):
            self._lichen.heard(frame.text, final=False)
        elif isinstance(frame, TranscriptionFrame):
            self._lichen.heard(frame.text, final=True)
        await self.push_frame(frame, direction)


def _text_of(message: Any) -> str:
    """A message's text: its string content, or its text parts joined."""
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return content.strip()
    if isinstance(content, list):
        parts = [part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text"]
        return " ".join(p.strip() for p in parts if p.strip())
    return ""
