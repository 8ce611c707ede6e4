"""``LichenContext``: a call's Lichen retrieval inside a LiveKit ``AgentSession``.

It plugs into LiveKit's documented extension points: ``Agent.on_user_turn_completed``
(context for the reply, before the LLM runs), a ``function_tool`` the LLM can call, and
the session's ``user_input_transcribed`` (interim transcripts, prepared while the user
speaks), ``conversation_item_added`` (each user and assistant message indexed into the
call's session) and ``close`` (the session pushed) events.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from lichen import Client, ContextHit, PushIndexResult, SessionIndex
from lichen.interim import InterimQueries, TurnQuery
from livekit.agents import AgentSession, function_tool, llm
from livekit.agents.voice.events import CloseEvent, ConversationItemAddedEvent, UserInputTranscribedEvent

from .log import logger
from .options import LichenOptions

__all__ = ["LichenContext", "LichenTurn"]

SEARCH_TOOL_DESCRIPTION = (
    "Search this call's earlier conversation and the knowledge base for passages relevant "
    "to a question. Use it when the context you were given does not answer the user."
)


@dataclass
class LichenTurn:
    """What LichenContext did for one user turn (``lichen.last_turn``)."""

    query: TurnQuery
    """The final transcript, the text queried with, and how it matched what was prepared."""
    hits: list[ContextHit] = field(default_factory=list)
    """The passages given to the LLM, best first over all sources."""
    context: str | None = None
    """The message added to the turn's chat context (``None``: nothing relevant found)."""
    latency_ms: float = 0.0
    """Time spent in ``on_user_turn_completed``: matching, search and rendering."""


class LichenContext:
    """Retrieval from a call's Lichen session and long-term indexes, per user turn::

        lichen = LichenContext(session, client, options=LichenOptions(indexes=["faqs"]))

        class Assistant(Agent):
            def __init__(self) -> None:
                super().__init__(instructions="...", tools=[lichen.search_tool()])

            async def on_user_turn_completed(self, turn_ctx, new_message):
                await lichen.on_user_turn_completed(turn_ctx, new_message)

        agent_session = AgentSession(stt=..., llm=..., tts=...)
        lichen.attach(agent_session)
        await agent_session.start(Assistant(), room=ctx.room)

    :meth:`on_user_turn_completed` queries the session and the indexes with the user's
    words and adds the best passages to that turn's chat context (LiveKit keeps the
    change for this reply only, so contexts never pile up). :meth:`attach` subscribes to
    the session's events: interim transcripts are embedded as they arrive
    (``session.prepare``), so a final transcript that matches one (see
    :mod:`lichen.interim`) costs only the search; every user and
    assistant message is indexed into the session after the turn that retrieved for it;
    when the AgentSession closes, the session is pushed (``await lichen.aclose()`` waits
    for that, and returns the ``PushIndexResult``).
    """

    def __init__(self, session: SessionIndex, client: Client | None = None, *, options: LichenOptions | None = None) -> None:
        self.options = options = options or LichenOptions()
        self._search = options.context_search(session, client, owner="LichenContext")
        self.session, self.client = session, client
        self._interim = InterimQueries(session.prepare, filler_words=options.filler_words)
        self._writes: set[asyncio.Task[None]] = set()
        self._write_lock = asyncio.Lock()
        self._queried: dict[str, str] = {}  # final transcript -> the text its vector is prepared under
        self._closing: asyncio.Task[PushIndexResult | None] | None = None
        self.last_turn: LichenTurn | None = None
        self.last_push: PushIndexResult | None = None

    # ------------------------------------------------------------------ wiring
    def attach(self, agent_session: AgentSession) -> None:
        """Listen to ``agent_session``: interim transcripts, messages, close."""
        agent_session.on("user_input_transcribed", self._on_transcribed)
        agent_session.on("conversation_item_added", self._on_item_added)
        agent_session.on("close", self._on_close)

    def _on_transcribed(self, event: UserInputTranscribedEvent) -> None:
        if self.options.prepare_interim and self.options.top_k > 0 and self._closing is None:
            self._interim.heard(event.transcript, final=event.is_final)

    def _on_item_added(self, event: ConversationItemAddedEvent) -> None:
        item = event.item
        if getattr(item, "type", None) != "message" or item.role not in self.options.speakers:
            return
        text = (item.text_content or "").strip()
        if text and self.options.index_turns and self._closing is None:
            task = asyncio.ensure_future(self._index(item.role, text))
            self._writes.add(task)
            task.add_done_callback(self._write_done)

    def _write_done(self, task: asyncio.Task[None]) -> None:
        self._writes.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("indexing a turn into the Lichen session failed", exc_info=task.exception())

    def _on_close(self, event: CloseEvent) -> None:
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close())

    # ------------------------------------------------------------------ one turn
    async def on_user_turn_completed(self, turn_ctx: llm.ChatContext, new_message: llm.ChatMessage) -> LichenTurn | None:
        """Call from your ``Agent.on_user_turn_completed``: adds this turn's context to
        ``turn_ctx``. Returns what it did (also ``self.last_turn``), ``None`` for a
        message without text."""
        started = time.perf_counter()
        text = (new_message.text_content or "").strip()
        if not text:
            return None
        await self._settled()  # earlier turns are in the session before this one queries
        query = await self._interim.finish(text)
        if not query.ready:
            # Embedded once, here: the search and the turn's document both take this vector.
            await self.session.prepare(query.query)
        self._queried = {query.final: query.query}
        hits = await self._search.asearch(query.query) if self.options.top_k > 0 else []
        rendered = self.options.render(hits) if hits else None
        if rendered is not None:
            turn_ctx.add_message(role=self.options.context_role, content=rendered)
        self.last_turn = LichenTurn(query, hits, rendered, (time.perf_counter() - started) * 1000.0)
        return self.last_turn

    async def search(self, query: str, k: int | None = None) -> list[ContextHit]:
        """The passages for ``query`` over the session and the indexes, best first."""
        await self._settled()
        return await self._search.asearch(query, k)

    def search_tool(self, *, name: str = "search_knowledge", description: str = SEARCH_TOOL_DESCRIPTION) -> Any:
        """A LiveKit ``function_tool`` the LLM can call with a ``query``: it answers with
        the passages, rendered as the turn's context is, or says nothing was found."""

        async def search_knowledge(query: str) -> str:
            """Search the call so far and the knowledge base.

            Args:
                query: What to look for, in plain words: passages are matched by meaning.
            """
            hits = await self.search(query)
            return self.options.render(hits) if hits else "Nothing relevant was found."

        return function_tool(search_knowledge, name=name, description=description)

    # ------------------------------------------------------------------ the session
    async def _settled(self) -> None:
        if self._writes:
            await asyncio.gather(*list(self._writes), return_exceptions=True)

    async def _index(self, role: str, text: str) -> None:
        async with self._write_lock:  # numbered in the order the messages came
            prepared = self._queried.get(text)
            if prepared is not None:  # the turn just queried: its vector is prepared
                vector = await asyncio.to_thread(self.session.embed_query, prepared)
            else:
                vector = (await asyncio.to_thread(self.session.embed_texts, [text]))[0]
            await self.session.add_docs([self.options.turn_document(role, text, self.session.doc_count + 1, vector)])

    async def _close(self) -> PushIndexResult | None:
        await self._interim.aclose()
        await self._settled()
        if self.options.push_on_close and self.options.index_turns:
            try:
                self.last_push = await self.session.push_index()
            except Exception:
                logger.exception("pushing Lichen session %r failed", self.session.name)
                raise
        return self.last_push

    async def aclose(self) -> PushIndexResult | None:
        """Finish the call: stop preparing, index what is pending and push the session
        (``options.push_on_close``). Called when the attached AgentSession closes;
        awaiting it again returns the same result."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close())
        return await asyncio.shield(self._closing)
