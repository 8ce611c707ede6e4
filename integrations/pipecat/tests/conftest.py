"""Fixtures for pipecat-lichen's tests: an isolated embedded store per test, Pipecat's
logging at warnings only, and a record of every text the model embeds.

Calls run through Pipecat's own ``Pipeline``, ``PipelineWorker`` and ``WorkerRunner``
(or ``pipecat.tests.utils.run_test``) with stand-in frames where an STT service and an
LLM service would be: what an STT emits (interim and final transcripts, speaking
started / stopped) is queued, and a recording processor answers in the LLM's place.
"""

from __future__ import annotations

import sys
import threading

import pytest
from lichen import Client, get_embedder
from loguru import logger

logger.remove()  # Pipecat logs every frame at DEBUG
logger.add(sys.stderr, level="WARNING")


@pytest.fixture(autouse=True)
def lichen_home(tmp_path, monkeypatch):
    """A fresh embedded store directory, and no server settings from the environment."""
    home = tmp_path / "lichen-home"
    monkeypatch.setenv("LICHEN_HOME", str(home))
    for name in ("LICHEN_URL", "LICHEN_PROJECT_ID", "LICHEN_PROJECT_KEY"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def client(lichen_home) -> Client:
    return Client(home=lichen_home)


class EmbedRecorder:
    """Every text the built-in model embeds, in order (the model is shared by every
    session and index of the process, so this sees queries, preparations and documents)."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self._lock = threading.Lock()

    def count(self, text: str) -> int:
        with self._lock:
            return self.texts.count(text)

    def since(self, mark: int) -> list[str]:
        with self._lock:
            return self.texts[mark:]


@pytest.fixture
def embedded(monkeypatch) -> EmbedRecorder:
    recorder = EmbedRecorder()
    model = get_embedder("lichen-minilm")
    # Documents run through the float model, queries through its int8 query encoder: both
    # are recorded.
    for runner in {id(m): m for m in (model, model._query_embedder or model)}.values():
        monkeypatch.setattr(runner, "embed", _recording(runner.embed, recorder))
    return recorder


def _recording(embed, recorder: EmbedRecorder):
    def recording_embed(texts, *args, **kwargs):
        with recorder._lock:
            recorder.texts.extend(texts)
        return embed(texts, *args, **kwargs)

    return recording_embed


# ---------------------------------------------------------------------- a call in Pipecat
import asyncio  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

from pipecat.frames.frames import (  # noqa: E402
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
from pipecat.pipeline.pipeline import Pipeline  # noqa: E402
from pipecat.pipeline.worker import PipelineWorker  # noqa: E402
from pipecat.processors.aggregators.llm_context import LLMContext  # noqa: E402
from pipecat.processors.aggregators.llm_response_universal import (  # noqa: E402
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor  # noqa: E402
from pipecat.turns.user_turn_strategies import ExternalUserTurnStrategies  # noqa: E402
from pipecat.utils.time import time_now_iso8601  # noqa: E402
from pipecat.workers.runner import WorkerRunner  # noqa: E402


@dataclass
class Turn:
    """One user turn as an STT service reports it, and the stand-in LLM's reply."""

    final: str | list[str]
    """The final transcript, or its final segments (a turn the user paused in)."""
    interims: list = field(default_factory=list)
    """Interim transcripts before the final one (a list per segment for segments)."""
    reply: str = "Noted."


@dataclass
class Seen:
    """What the stand-in LLM was given for one turn."""

    messages: list[dict]
    turn: object  # the processor's LichenTurn for it


class RecordingLLM(FrameProcessor):
    """In place of an LLM service: records each context it is given and answers with the
    scripted reply, framed as an LLM service frames its output."""

    def __init__(self, lichen) -> None:
        super().__init__()
        self.lichen = lichen
        self.seen: list[Seen] = []
        self.replies: list[str] = []
        self.replied = asyncio.Event()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if not isinstance(frame, LLMContextFrame):
            await self.push_frame(frame, direction)
            return
        self.seen.append(Seen([dict(m) for m in frame.context.get_messages()], self.lichen.last_turn))
        await self.push_frame(LLMFullResponseStartFrame())
        await self.push_frame(LLMTextFrame(self.replies.pop(0) if self.replies else "Noted."))
        await self.push_frame(LLMFullResponseEndFrame())
        self.replied.set()


async def run_call(lichen, turns: list[Turn], *, end: str = "end", word_gap: float = 0.04, listener: bool = True):
    """Run a call through Pipecat: listener -> user aggregator -> lichen -> LLM stand-in
    -> assistant aggregator. ``end`` is ``"end"`` (EndFrame), ``"cancel"``
    (``worker.cancel()``: CancelFrame). Returns (LLMContext, RecordingLLM)."""
    context = LLMContext([{"role": "system", "content": "You are a support agent on a call."}])
    aggregators = LLMContextAggregatorPair(
        context, user_params=LLMUserAggregatorParams(user_turn_strategies=ExternalUserTurnStrategies())
    )
    llm = RecordingLLM(lichen)
    processors = [aggregators.user(), lichen, llm, aggregators.assistant()]
    if listener:
        processors.insert(0, lichen.transcript_listener())
    worker = PipelineWorker(Pipeline(processors), cancel_on_idle_timeout=False)
    started = asyncio.Event()

    @worker.event_handler("on_pipeline_started")
    async def on_started(worker, frame):
        started.set()

    async def caller() -> None:
        await started.wait()
        for turn in turns:
            llm.replies.append(turn.reply)
            llm.replied.clear()
            await worker.queue_frame(UserStartedSpeakingFrame())
            if isinstance(turn.final, str):
                segments = [(turn.final, turn.interims)]
            else:  # a final transcript per segment, each after its own interim transcripts
                segments = list(zip(turn.final, turn.interims or [[] for _ in turn.final]))
            for segment, interims in segments:
                for interim in interims:
                    await worker.queue_frame(InterimTranscriptionFrame(interim, user_id="u", timestamp=time_now_iso8601()))
                    await asyncio.sleep(word_gap)
                await worker.queue_frame(TranscriptionFrame(segment, user_id="u", timestamp=time_now_iso8601()))
            await worker.queue_frame(UserStoppedSpeakingFrame())
            await asyncio.wait_for(llm.replied.wait(), 30)
            await asyncio.sleep(0.05)  # the assistant aggregator records the reply
        if end == "end":
            await worker.queue_frame(EndFrame())
        else:
            await worker.cancel()

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await asyncio.wait_for(asyncio.gather(runner.run(), caller()), 60)
    return context, llm


def words_of(text: str) -> list[str]:
    """Interim transcripts of ``text`` as an STT sends them: a word more each time, lower
    case, no punctuation."""
    bare = [w.strip(".,:;?!").lower() for w in text.split()]
    return [" ".join(bare[:n]) for n in range(1, len(bare) + 1)]


@pytest.fixture
def voice():
    """The call harness: ``voice.Turn``, ``voice.run_call``, ``voice.words_of`` (test
    modules cannot import this conftest by name: another conftest.py is on the path)."""
    from types import SimpleNamespace

    return SimpleNamespace(Turn=Turn, run_call=run_call, words_of=words_of)
