"""A Pipecat voice agent with live-call context from Lichen.

The seed's live call, in a real voice-agent framework. In a Pipecat pipeline

    transport in -> STT -> user context aggregator -> LichenContextProcessor -> LLM -> TTS -> transport out -> assistant aggregator

``LichenContextProcessor`` sits just before the LLM. For each ``LLMContextFrame`` (one per
user turn) it indexes the conversation turns it has not seen yet (the customer's and the
agent's) into the call's Lichen session, retrieves the earlier turns and the FAQ passages
most related to what the customer just said, and puts them into the LLM context as one
system message (replacing the previous turn's, so context does not pile up). The
customer's turn is embedded once: the same vector queries the session and the FAQ index
and is stored with the turn. At call end the session is pushed; when the customer calls
back, the same call id resumes the earlier call's turns.

Offline stand-ins, so this runs anywhere with no audio hardware and no API key: the
transport and STT are replaced by queueing the frames an STT service emits for each
utterance (``UserStartedSpeakingFrame``, ``TranscriptionFrame``,
``UserStoppedSpeakingFrame``), and the LLM by ``ScriptedLLM``, which answers from the
context it is given, printing it. Everything else is Pipecat's own: ``Pipeline``,
``PipelineWorker``, ``WorkerRunner``, ``LLMContext`` and its aggregator pair. Replace the
stand-ins with a transport, an STT, an LLM and a TTS service for a real call.

Run: ``python cookbook/pipecat_voice_agent.py``
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence

from live_call_context import FAQS  # the same FAQ index as the live-call recipe
from loguru import logger
from lichen import Client, DocumentInfo, QueryOptions, QueryResultDocument, SessionIndex
from pipecat.frames.frames import (
    EndFrame,
    Frame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TranscriptionFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext, LLMSpecificMessage
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair, LLMUserAggregatorParams
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.turns.user_turn_strategies import ExternalUserTurnStrategies
from pipecat.utils.time import time_now_iso8601
from pipecat.workers.runner import WorkerRunner

SPEAKERS = {"user": "customer", "assistant": "agent"}
CONTEXT_HEADER = "Context for this turn (earlier in the call, then the help center):"


class LichenContextProcessor(FrameProcessor):
    """Index each conversation turn into a Lichen session and inject session + FAQ
    context into the LLM context, just before the LLM runs.

    Place it between the user context aggregator and the LLM service. ``knowledge`` names
    long-term indexes already loaded in ``client`` (``client.load_index(name)``).
    """

    def __init__(
        self,
        session: SessionIndex,
        client: Client,
        knowledge: Sequence[str],
        *,
        session_k: int = 2,
        knowledge_k: int = 1,
    ) -> None:
        super().__init__()
        self.session, self.client, self.knowledge = session, client, list(knowledge)
        self.session_k, self.knowledge_k = session_k, knowledge_k
        self.last_latency_ms = 0.0
        self._indexed = 0  # conversation messages already in the session
        self._injected: dict | None = None
        self._context: LLMContext | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMContextFrame):
            await self._prepare(frame.context)
        elif isinstance(frame, EndFrame) and self._context is not None:
            await self._index(self._new_turns(self._context.get_messages()))  # the agent's last reply
        await self.push_frame(frame, direction)

    def _new_turns(self, messages: list) -> list[dict]:
        conversation = [
            m for m in messages
            if not isinstance(m, LLMSpecificMessage) and m is not self._injected
            and m.get("role") in SPEAKERS and isinstance(m.get("content"), str)
        ]
        return conversation[self._indexed :]

    async def _index(self, turns: list[dict], vectors=None) -> None:
        if not turns:
            return
        if vectors is None:
            vectors = await asyncio.to_thread(self.session.embed_texts, [m["content"] for m in turns])
        start = self.session.doc_count + 1
        await self.session.add_docs([
            DocumentInfo(
                id=f"turn-{start + i}",
                text=f"{SPEAKERS[m['role']]}: {m['content']}",
                metadata={"speaker": SPEAKERS[m["role"]], "turn": start + i},
                embedding=vector,
            )
            for i, (m, vector) in enumerate(zip(turns, vectors))
        ])
        self._indexed += len(turns)

    async def _prepare(self, context: LLMContext) -> None:
        started = time.perf_counter()
        self._context = context
        messages = [m for m in context.get_messages() if m is not self._injected]
        turns = self._new_turns(messages)
        if not turns or turns[-1]["role"] != "user":
            context.set_messages(messages)
            return
        # One embedding per new turn, in one batch; the customer's vector also queries.
        vectors = await asyncio.to_thread(self.session.embed_texts, [m["content"] for m in turns])
        question, vector = turns[-1]["content"], vectors[-1]
        earlier, knowledge = await asyncio.gather(
            self.session.query(question, QueryOptions(top_k=self.session_k, embedding=vector)),
            self.client.query_many(self.knowledge, question, QueryOptions(top_k=self.knowledge_k, embedding=vector)),
        )
        await self._index(turns, vectors)  # after the query: a turn is not its own context
        self._injected = {"role": "system", "content": render(earlier.docs, knowledge.docs)}
        messages.insert(len(messages) - 1, self._injected)  # just before the customer's turn
        context.set_messages(messages)
        self.last_latency_ms = (time.perf_counter() - started) * 1000.0


def render(earlier: list[QueryResultDocument], knowledge: list[QueryResultDocument]) -> str:
    lines = [CONTEXT_HEADER]
    lines += [f"[session {d.id} {d.score:.2f}] {d.text}" for d in earlier]
    lines += [f"[{d.index_name} {d.id} {d.score:.2f}] {d.text}" for d in knowledge]
    return "\n".join(lines)


class ScriptedLLM(FrameProcessor):
    """Stands in for an LLM service: prints the Lichen context it was given and answers
    with the next line written for its best FAQ passage, framed as an LLM service frames
    its output (start, text, end), so the assistant aggregator records the reply."""

    ANSWERS = {
        "faq-double-charge": [
            "Sorry about that: the duplicate charge is refunded automatically.",
            "I can see both 99-dollar charges; the second one is flagged for that refund.",
        ],
        "faq-refund-time": ["The refund goes back to your card within 3 to 5 business days."],
    }

    def __init__(self, lichen: LichenContextProcessor) -> None:
        super().__init__()
        self.lichen = lichen
        self.replied = asyncio.Event()
        self.answers = {faq: list(lines) for faq, lines in self.ANSWERS.items()}

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if not isinstance(frame, LLMContextFrame):
            await self.push_frame(frame, direction)
            return
        context = next(m["content"] for m in frame.context.get_messages() if str(m.get("content")).startswith(CONTEXT_HEADER))
        lines = context.splitlines()[1:]
        for line in lines:
            print(f"    {line[:100]}")
        print(f"    (lichen context in {self.lichen.last_latency_ms:.1f} ms)")
        best_faq = next(line.split()[1] for line in lines if line.startswith("[support-faqs "))
        await self.push_frame(LLMFullResponseStartFrame())
        lines_left = self.answers.get(best_faq) or ["Let me look into that for you."]
        await self.push_frame(LLMTextFrame(lines_left.pop(0) if len(lines_left) > 1 else lines_left[0]))
        await self.push_frame(LLMFullResponseEndFrame())
        self.replied.set()


async def call(client: Client, call_id: str, utterances: list[str]) -> None:
    session = await client.session(index_name=call_id)
    print(f"[{call_id}] session opened with {session.doc_count} earlier turns")
    context = LLMContext([{"role": "system", "content": "You are a billing support agent on a phone call."}])
    aggregators = LLMContextAggregatorPair(
        context, user_params=LLMUserAggregatorParams(user_turn_strategies=ExternalUserTurnStrategies())
    )
    lichen = LichenContextProcessor(session, client, ["support-faqs"])
    llm = ScriptedLLM(lichen)
    worker = PipelineWorker(Pipeline([aggregators.user(), lichen, llm, aggregators.assistant()]), cancel_on_idle_timeout=False)
    started = asyncio.Event()

    @worker.event_handler("on_pipeline_started")
    async def on_started(worker, frame):
        started.set()

    async def caller() -> None:
        await started.wait()
        for text in utterances:  # what an STT service emits for each utterance
            print(f"  customer: {text}")
            llm.replied.clear()
            await worker.queue_frames([
                UserStartedSpeakingFrame(),
                TranscriptionFrame(text, user_id="caller", timestamp=time_now_iso8601()),
                UserStoppedSpeakingFrame(),
            ])
            await llm.replied.wait()
            await asyncio.sleep(0.05)  # the assistant aggregator records the reply
            print(f"  agent: {context.get_messages()[-1]['content']}")
        await worker.queue_frame(EndFrame())

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await asyncio.gather(runner.run(), caller())
    result = await session.push_index()
    print(f"[{call_id}] pushed {result.doc_count} turns (version {result.version})")


async def main() -> None:
    logger.remove()  # Pipecat logs every frame at DEBUG; keep warnings only
    logger.add(sys.stderr, level="WARNING")
    client = Client()  # LICHEN_HOME, as the other recipes
    if not any(info.name == "support-faqs" for info in await client.list_indexes()):
        await client.create_index("support-faqs", [DocumentInfo(id=i, text=t) for i, t in FAQS])
    await client.load_index("support-faqs")
    await call(client, "voice-call-7", [
        "Hi, I was billed twice for my annual renewal this morning.",
        "Both charges are 99 dollars on the same card.",
        "How long until I get the money back?",
    ])
    # The customer calls back: the same call id resumes the first call's turns.
    await call(client, "voice-call-7", ["Just checking: has the refund for the double charge gone through?"])


if __name__ == "__main__":
    asyncio.run(main())
