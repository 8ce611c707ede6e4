"""A LiveKit voice agent with live-call context from Lichen (``livekit-plugins-lichen``).

The seed's live call, in LiveKit Agents. ``LichenContext`` plugs into the agent's
documented extension points:

* ``Agent.on_user_turn_completed``: before the LLM answers a turn, the earlier turns of
  the call (the call's Lichen session) and the FAQ passages most related to what the
  customer just said go into that turn's chat context (LiveKit keeps the message for this
  reply only, so context never piles up);
* a ``function_tool`` (``lichen.search_tool()``) the LLM can call to look something up;
* the AgentSession's events (``lichen.attach(session)``): interim transcripts are
  embedded while the customer is still speaking (so a final transcript that matches the
  last interim one costs only the search), every customer and agent message is indexed
  into the session, and the session is pushed when the AgentSession closes. When the
  customer calls back, the same call id resumes the earlier call's turns.

Offline stand-ins, so this runs anywhere with no LiveKit server, no room and no API key:
``SilentMic`` (an ``AudioInput`` of silence) and ``ScriptedSTT`` (a streaming STT that
transcribes what the caller script says, interim transcripts word by word, then the
final one and the end of speech; ``turn_detection="stt"`` ends the turn there), and
``ScriptedLLM``, which answers from the context it is given, printing it, and calls the
search tool when asked to look something up. No TTS: the replies stay text. Everything
else is LiveKit's own ``AgentSession`` and ``Agent``; in a real agent, give the
AgentSession a real STT, LLM and TTS and start it in a room (``ctx.room``).

Run: ``python cookbook/livekit_voice_agent.py``
"""

from __future__ import annotations

import asyncio
import json
import logging

from lichen import Client, DocumentInfo, SessionIndex
from live_call_context import FAQS  # the same FAQ index as the live-call recipe
from livekit import rtc
from livekit.agents import Agent, AgentSession, llm, stt
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN
from livekit.agents.voice.io import AudioInput
from livekit.plugins.lichen import LichenContext, LichenOptions

CONTEXT_HEADER = "Context for this turn (earlier in the call, then the help center):"
WORD_GAP_S = 0.02  # between interim transcripts (an STT sends one every ~250 ms of speech)


def lichen_context(session: SessionIndex, client: Client, faqs: str = "support-faqs") -> LichenContext:
    """Up to 2 earlier turns and 1 FAQ per turn; turns stored as "customer: ..." / "agent: ..."."""
    return LichenContext(
        session,
        client,
        options=LichenOptions(
            indexes=[faqs],
            top_k=3,
            per_source_k={"session": 2, faqs: 1},
            context_template=CONTEXT_HEADER + "\n{passages}",
            speakers={"user": "customer", "assistant": "agent"},
        ),
    )


class SupportAgent(Agent):
    def __init__(self, lichen: LichenContext) -> None:
        super().__init__(instructions="You are a billing support agent on a phone call.", tools=[lichen.search_tool()])
        self.lichen = lichen

    async def on_user_turn_completed(self, turn_ctx: llm.ChatContext, new_message: llm.ChatMessage) -> None:
        turn = await self.lichen.on_user_turn_completed(turn_ctx, new_message)
        for line in (turn.context or "").splitlines()[1:]:
            print(f"    {line[:100]}")
        print(f"    (lichen context in {turn.latency_ms:.1f} ms, query prepared while speaking: {turn.query.match})")


# ---------------------------------------------------------------------- offline stand-ins
class SilentMic(AudioInput):
    """The caller's microphone: 20 ms frames of silence (ScriptedSTT ignores them)."""

    def __init__(self) -> None:
        super().__init__(label="SilentMic")

    async def __anext__(self) -> rtc.AudioFrame:
        await asyncio.sleep(0.02)
        return rtc.AudioFrame(data=b"\x00\x00" * 320, sample_rate=16000, num_channels=1, samples_per_channel=320)


class ScriptedSTT(stt.STT):
    """Stands in for a streaming STT: transcribes what ``say`` is given, as a streaming
    STT reports speech (start, interim transcripts, the final one, end)."""

    def __init__(self) -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=True, interim_results=True))
        self._stream: ScriptedSpeech | None = None
        self._listening = asyncio.Event()

    async def _recognize_impl(self, buffer, *, language, conn_options) -> stt.SpeechEvent:
        return stt.SpeechEvent(type=stt.SpeechEventType.FINAL_TRANSCRIPT, alternatives=[stt.SpeechData(text="", language="en")])

    def stream(self, *, language=NOT_GIVEN, conn_options=DEFAULT_API_CONNECT_OPTIONS) -> ScriptedSpeech:
        self._stream = ScriptedSpeech(stt=self, conn_options=conn_options)
        self._listening.set()
        return self._stream

    async def say(self, text: str) -> None:
        await self._listening.wait()
        self._stream.send(stt.SpeechEventType.START_OF_SPEECH)
        words = text.split()
        for n in range(1, len(words) + 1):  # interim transcripts: lower case, no punctuation
            self._stream.send(stt.SpeechEventType.INTERIM_TRANSCRIPT, " ".join(words[:n]).lower().strip(".,:;?!"))
            await asyncio.sleep(WORD_GAP_S)
        self._stream.send(stt.SpeechEventType.FINAL_TRANSCRIPT, text)
        self._stream.send(stt.SpeechEventType.END_OF_SPEECH)


class ScriptedSpeech(stt.RecognizeStream):
    def send(self, kind: stt.SpeechEventType, text: str | None = None) -> None:
        alternatives = [stt.SpeechData(text=text, language="en")] if text is not None else []
        self._event_ch.send_nowait(stt.SpeechEvent(type=kind, alternatives=alternatives))

    async def _run(self) -> None:
        async for _ in self._input_ch:  # the audio; the words come from say()
            pass


class ScriptedLLM(llm.LLM):
    """Stands in for an LLM: answers with the next line written for the best FAQ passage
    in its context (or in the search tool's output), and calls the search tool when the
    customer asks to look something up."""

    ANSWERS = {
        "faq-double-charge": [
            "Sorry about that: the duplicate charge is refunded automatically.",
            "I can see both 99-dollar charges; the second one is flagged for that refund.",
        ],
        "faq-refund-time": ["The refund goes back to your card within 3 to 5 business days."],
    }

    def __init__(self) -> None:
        super().__init__()
        self.replied = asyncio.Event()
        self.answers = {faq: list(lines) for faq, lines in self.ANSWERS.items()}

    def chat(self, *, chat_ctx, tools=None, conn_options=DEFAULT_API_CONNECT_OPTIONS, parallel_tool_calls=NOT_GIVEN,
             tool_choice=NOT_GIVEN, extra_kwargs=NOT_GIVEN) -> llm.LLMStream:
        return ScriptedReply(self, chat_ctx=chat_ctx, tools=tools or [], conn_options=conn_options)

    def answer(self, passages: str) -> str:
        best = next((line.split()[1] for line in passages.splitlines() if line.startswith("[support-faqs ")), None)
        lines_left = self.answers.get(best) or ["Let me look into that for you."]
        return lines_left.pop(0) if len(lines_left) > 1 else lines_left[0]


class ScriptedReply(llm.LLMStream):
    async def _run(self) -> None:
        model: ScriptedLLM = self._llm  # type: ignore[assignment]
        last = self.chat_ctx.items[-1]
        if last.type == "function_call_output":
            print(f"    (the LLM called search_knowledge: {len(last.output.splitlines()) - 1} passages)")
            reply = model.answer(last.output)
        else:
            said = next(i.text_content for i in reversed(self.chat_ctx.items) if i.type == "message" and i.role == "user")
            if "look up" in said:
                call = llm.FunctionToolCall(name="search_knowledge", arguments=json.dumps({"query": said}), call_id="lookup")
                self._event_ch.send_nowait(llm.ChatChunk(id="reply", delta=llm.ChoiceDelta(role="assistant", tool_calls=[call])))
                return
            context = next(i.text_content for i in self.chat_ctx.items if i.type == "message" and i.text_content.startswith(CONTEXT_HEADER))
            reply = model.answer(context)
        self._event_ch.send_nowait(llm.ChatChunk(id="reply", delta=llm.ChoiceDelta(role="assistant", content=reply)))
        model.replied.set()


# ---------------------------------------------------------------------- the call
async def call(client: Client, call_id: str, utterances: list[str]) -> None:
    session = await client.session(index_name=call_id)
    print(f"[{call_id}] session opened with {session.doc_count} earlier turns")
    lichen = lichen_context(session, client)
    speech, model = ScriptedSTT(), ScriptedLLM()
    agent_session = AgentSession(
        stt=speech,
        llm=model,
        turn_handling={"turn_detection": "stt", "endpointing": {"min_delay": 0.0, "max_delay": 0.5}},
        session_close_transcript_timeout=0.0,  # the script has said everything when it hangs up
    )
    agent_session.input.audio = SilentMic()  # in a real agent: start(..., room=ctx.room)
    lichen.attach(agent_session)
    await agent_session.start(SupportAgent(lichen))
    for text in utterances:
        print(f"  customer: {text}")
        model.replied.clear()
        await speech.say(text)
        await model.replied.wait()
        await asyncio.sleep(0.05)  # the reply reaches the chat history
        reply = [i for i in agent_session.history.items if i.type == "message" and i.role == "assistant"][-1]
        print(f"  agent: {reply.text_content}")
    await agent_session.aclose()
    result = await lichen.aclose()  # the push the close event started
    print(f"[{call_id}] pushed {result.doc_count} turns (version {result.version})")


async def main() -> None:
    logging.getLogger("livekit").setLevel(logging.WARNING)
    client = Client()  # LICHEN_HOME, as the other recipes
    if not any(info.name == "support-faqs" for info in await client.list_indexes()):
        await client.create_index("support-faqs", [DocumentInfo(id=i, text=t) for i, t in FAQS])
    await client.load_index("support-faqs")
    await call(client, "livekit-call-9", [
        "Hi, I was billed twice for my annual renewal this morning.",
        "Both charges are 99 dollars on the same card.",
        "How long until I get the money back?",
    ])
    # The customer calls back: the same call id resumes the first call's turns.
    await call(client, "livekit-call-9", ["Could you look up whether the refund for the double charge has gone through?"])


if __name__ == "__main__":
    asyncio.run(main())
