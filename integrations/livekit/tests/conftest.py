"""Fixtures for livekit-plugins-lichen's tests: an isolated embedded store per test, a
record of every text the model embeds, and LiveKit agent sessions that run offline.

No LiveKit server, no room, no keys: a real ``AgentSession`` runs the agent with
stand-ins for the three models, built on LiveKit's own extension classes:

* ``ScriptedSTT`` (an ``stt.STT`` whose stream emits what a test says: start of speech,
  interim transcripts, the final transcript, end of speech), fed by ``SilentMic`` (an
  ``AudioInput`` of silence), with ``turn_detection="stt"``: the session ends the user's
  turn on the STT's end of speech and calls ``Agent.on_user_turn_completed``, and emits
  the ``user_input_transcribed`` events, as with any streaming STT;
* ``ScriptedLLM`` (an ``llm.LLM``) that records every chat context it is given and answers
  with a scripted reply, or with a tool call followed by a reply built from the tool's
  output;
* no TTS: replies stay text.

``session.run(user_input=...)`` and its ``RunResult`` (LiveKit's test helper) drive text
turns; ``ScriptedSTT.say`` drives spoken ones.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from types import SimpleNamespace

import pytest
from lichen import Client, get_embedder
from livekit import rtc
from livekit.agents import Agent, AgentSession, llm, stt
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN
from livekit.agents.voice.io import AudioInput


@pytest.fixture(autouse=True)
def lichen_home(tmp_path, monkeypatch):
    """A fresh embedded store directory, and no server settings from the environment."""
    home = tmp_path / "lichen-home"
    monkeypatch.setenv("LICHEN_HOME", str(home))
    for name in ("LICHEN_URL", "LICHEN_PROJECT_ID", "LICHEN_PROJECT_KEY", "LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def client(lichen_home) -> Client:
    return Client(home=lichen_home)


class EmbedRecorder:
    """Every text the built-in model embeds, in order (the model is shared by every
    session and index of the process: queries, preparations and documents)."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self._lock = threading.Lock()

    def count(self, text: str) -> int:
        with self._lock:
            return self.texts.count(text)


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


# ---------------------------------------------------------------------- speech in
class SilentMic(AudioInput):
    """The user's microphone: 20 ms frames of silence (the scripted STT ignores them)."""

    def __init__(self) -> None:
        super().__init__(label="SilentMic")

    async def __anext__(self) -> rtc.AudioFrame:
        await asyncio.sleep(0.02)
        return rtc.AudioFrame(data=b"\x00\x00" * 320, sample_rate=16000, num_channels=1, samples_per_channel=320)


class ScriptedSTT(stt.STT):
    """A streaming STT with interim results that transcribes what the test says."""

    def __init__(self) -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=True, interim_results=True))
        self._streams: list[ScriptedSpeechStream] = []
        self._streaming = asyncio.Event()

    async def _recognize_impl(self, buffer, *, language, conn_options) -> stt.SpeechEvent:
        return stt.SpeechEvent(type=stt.SpeechEventType.FINAL_TRANSCRIPT, alternatives=[stt.SpeechData(text="", language="en")])

    def stream(self, *, language=NOT_GIVEN, conn_options=DEFAULT_API_CONNECT_OPTIONS) -> ScriptedSpeechStream:
        stream = ScriptedSpeechStream(stt=self, conn_options=conn_options)
        self._streams.append(stream)
        self._streaming.set()
        return stream

    async def say(self, final: str | list[str], interims: list | None = None, *, gap: float = 0.04) -> None:
        """One user utterance: its interim transcripts ``gap`` apart, then the final one
        (or, for a list, each segment's interims and final), then the end of speech."""
        await asyncio.wait_for(self._streaming.wait(), 5)
        stream = self._streams[-1]
        segments = [(final, interims or [])] if isinstance(final, str) else list(zip(final, interims or [[]] * len(final)))
        stream.send(stt.SpeechEventType.START_OF_SPEECH)
        for segment, segment_interims in segments:
            for text in segment_interims:
                stream.send(stt.SpeechEventType.INTERIM_TRANSCRIPT, text)
                await asyncio.sleep(gap)
            stream.send(stt.SpeechEventType.FINAL_TRANSCRIPT, segment)
        stream.send(stt.SpeechEventType.END_OF_SPEECH)


class ScriptedSpeechStream(stt.RecognizeStream):
    def send(self, kind: stt.SpeechEventType, text: str | None = None) -> None:
        alternatives = [stt.SpeechData(text=text, language="en")] if text is not None else []
        self._event_ch.send_nowait(stt.SpeechEvent(type=kind, alternatives=alternatives))

    async def _run(self) -> None:
        async for _ in self._input_ch:  # audio in; the transcripts come from say()
            pass


# ---------------------------------------------------------------------- the model
class ScriptedLLM(llm.LLM):
    """Records each chat context and answers with ``respond(chat_ctx)``: a string, or
    ``("tool", name, arguments)`` for a tool call (its output comes back in the next
    chat context, and ``respond`` is asked again)."""

    def __init__(self, respond: Callable[[llm.ChatContext], object] | None = None) -> None:
        super().__init__()
        self.respond = respond or (lambda chat_ctx: "Noted.")
        self.contexts: list[llm.ChatContext] = []
        self.replied = asyncio.Event()

    def chat(self, *, chat_ctx, tools=None, conn_options=DEFAULT_API_CONNECT_OPTIONS, parallel_tool_calls=NOT_GIVEN,
             tool_choice=NOT_GIVEN, extra_kwargs=NOT_GIVEN) -> llm.LLMStream:
        self.contexts.append(chat_ctx.copy())
        return ScriptedLLMStream(self, chat_ctx=chat_ctx, tools=tools or [], conn_options=conn_options)


class ScriptedLLMStream(llm.LLMStream):
    async def _run(self) -> None:
        model: ScriptedLLM = self._llm  # type: ignore[assignment]
        answer = model.respond(self.chat_ctx)
        if isinstance(answer, tuple) and answer[0] == "tool":
            _, name, arguments = answer
            call = llm.FunctionToolCall(name=name, arguments=json.dumps(arguments), call_id=f"call-{len(model.contexts)}")
            self._event_ch.send_nowait(llm.ChatChunk(id="scripted", delta=llm.ChoiceDelta(role="assistant", tool_calls=[call])))
            return
        self._event_ch.send_nowait(llm.ChatChunk(id="scripted", delta=llm.ChoiceDelta(role="assistant", content=str(answer))))
        model.replied.set()


def messages(chat_ctx: llm.ChatContext) -> list[tuple[str, str]]:
    """(role, text) of each message of a chat context."""
    return [(item.role, item.text_content or "") for item in chat_ctx.items if item.type == "message"]


class LichenAgent(Agent):
    """The agent as a user writes it: Lichen's context in on_user_turn_completed and its
    search tool in the agent's tools."""

    def __init__(self, lichen, *, tools: bool = True) -> None:
        super().__init__(instructions="You are a support agent on a call.", tools=[lichen.search_tool()] if tools else [])
        self.lichen = lichen

    async def on_user_turn_completed(self, turn_ctx: llm.ChatContext, new_message: llm.ChatMessage) -> None:
        await self.lichen.on_user_turn_completed(turn_ctx, new_message)


async def start_session(lichen, model: ScriptedLLM, *, speech: bool = True, tools: bool = True):
    """An AgentSession running LichenAgent offline; returns (session, stt or None)."""
    speech_to_text = ScriptedSTT() if speech else None
    session = AgentSession(
        stt=speech_to_text if speech else NOT_GIVEN,
        llm=model,
        turn_handling={"turn_detection": "stt" if speech else "manual", "endpointing": {"min_delay": 0.0, "max_delay": 0.5}},
        session_close_transcript_timeout=0.0,  # nothing is left to transcribe when a test closes
    )
    if speech:
        session.input.audio = SilentMic()
    lichen.attach(session)
    await session.start(LichenAgent(lichen, tools=tools))
    return session, speech_to_text


async def spoken_turn(session_stt: ScriptedSTT, model: ScriptedLLM, final, interims=None, *, gap: float = 0.04):
    """Say an utterance and wait for the agent's reply (and its indexing) to be done."""
    model.replied.clear()
    await session_stt.say(final, interims, gap=gap)
    await asyncio.wait_for(model.replied.wait(), 10)
    await asyncio.sleep(0.1)  # the reply reaches the chat context


def words_of(text: str) -> list[str]:
    """Interim transcripts of ``text`` as an STT sends them: a word more each time, lower
    case, no punctuation."""
    bare = [w.strip(".,:;?!").lower() for w in text.split()]
    return [" ".join(bare[:n]) for n in range(1, len(bare) + 1)]


@pytest.fixture
def livekit():
    """The offline harness (test modules cannot import this conftest by name: another
    conftest.py is on the path)."""
    return SimpleNamespace(
        ScriptedLLM=ScriptedLLM, start_session=start_session, spoken_turn=spoken_turn, words_of=words_of,
        messages=messages, LichenAgent=LichenAgent,
    )
