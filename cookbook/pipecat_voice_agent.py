"""A Pipecat voice agent with live-call context from Lichen (``pipecat-lichen``).

The seed's live call, in a real voice-agent framework. In a Pipecat pipeline

    transport in -> STT -> transcript listener -> user context aggregator -> LichenContextProcessor -> LLM -> TTS -> transport out -> assistant aggregator

``LichenContextProcessor`` (from ``pipecat_lichen``) sits just before the LLM. For each
user turn it retrieves the earlier turns of the call (the call's Lichen session) and the
FAQ passages most related to what the customer just said and puts them into the LLM
context as one system message (replacing the previous turn's, so context does not pile
up); then it indexes the new turns (the customer's and the agent's) into the session. Its
transcript listener, right after the STT, embeds each interim transcript while the
customer is still speaking, so when the final transcript matches the last interim one
the turn costs only the search. At call end the session is pushed; when the customer
calls back, the same call id resumes the earlier call's turns.

Offline stand-ins, so this runs anywhere with no audio hardware and no API key: the
transport and STT are replaced by queueing the frames an STT service emits for each
utterance (``UserStartedSpeakingFrame``, an ``InterimTranscriptionFrame`` per word,
``TranscriptionFrame``, ``UserStoppedSpeakingFrame``), and the LLM by ``ScriptedLLM``,
which answers from the context it is given, printing it. Everything else is Pipecat's
own: ``Pipeline``, ``PipelineWorker``, ``WorkerRunner``, ``LLMContext`` and its
aggregator pair. Replace the stand-ins with a transport, an STT, an LLM and a TTS service
for a real call.

Run: ``python cookbook/pipecat_voice_agent.py``
"""

from __future__ import annotations

import asyncio
import sys

from lichen import Client, DocumentInfo, SessionIndex
from live_call_context import FAQS  # the same FAQ index as the live-call recipe
from loguru import logger
from pipecat.frames.frames import (
    EndFrame,
    Frame,
    InterimTranscriptionFrame,
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
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair, LLMUserAggregatorParams
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.turns.user_turn_strategies import ExternalUserTurnStrategies
from pipecat.utils.time import time_now_iso8601
from pipecat.workers.runner import WorkerRunner
from pipecat_lichen import LichenContextProcessor, LichenParams

CONTEXT_HEADER = "Context for this turn (earlier in the call, then the help center):"
WORD_GAP_S = 0.02  # between interim transcripts (an STT sends one every ~250 ms of speech)


def lichen_processor(session: SessionIndex, client: Client, faqs: str = "support-faqs") -> LichenContextProcessor:
    """Up to 2 earlier turns and 1 FAQ per turn; turns stored as "customer: ..." / "agent: ..."."""
    return LichenContextProcessor(
        session,
        client,
        params=LichenParams(
            indexes=[faqs],
            top_k=3,
            per_source_k={"session": 2, faqs: 1},
            context_template=CONTEXT_HEADER + "\n{passages}",
            speakers={"user": "customer", "assistant": "agent"},
        ),
    )


class ScriptedLLM(FrameProcessor):
    """Stands in for an LLM service: prints the Lichen context it was given and answers
    with the next line written for its best FAQ passage, framed as an LLM service frames
    its output (start, text, end), so the assistant aggregator records the reply.

    The session's passages come first ("[session turn-n score] speaker: text"), then the
    FAQ's ("[support-faqs id score] text")."""

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
        turn = self.lichen.last_turn
        print(f"    (lichen context in {turn.latency_ms:.1f} ms, query prepared while speaking: {turn.query.match})")
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
    lichen = lichen_processor(session, client)
    llm = ScriptedLLM(lichen)
    pipeline = Pipeline([lichen.transcript_listener(), aggregators.user(), lichen, llm, aggregators.assistant()])
    worker = PipelineWorker(pipeline, cancel_on_idle_timeout=False)
    started = asyncio.Event()

    @worker.event_handler("on_pipeline_started")
    async def on_started(worker, frame):
        started.set()

    async def caller() -> None:
        await started.wait()
        for text in utterances:  # what an STT service emits for each utterance
            print(f"  customer: {text}")
            llm.replied.clear()
            await worker.queue_frame(UserStartedSpeakingFrame())
            words = text.split()
            for n in range(1, len(words) + 1):  # interim transcripts: lower case, no punctuation
                heard = " ".join(words[:n]).lower().strip(".,:;?!")
                await worker.queue_frame(InterimTranscriptionFrame(heard, user_id="caller", timestamp=time_now_iso8601()))
                await asyncio.sleep(WORD_GAP_S)
            await worker.queue_frames([
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
    result = lichen.last_push  # pushed by the processor at EndFrame
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
