"""LichenContextProcessor in Pipecat pipelines: context before the LLM each turn
(replaced, never piled up), turns indexed, the session pushed at the end of the call,
the options, and the interim path: hit, near miss and miss, seen in what the model
embeds."""

from __future__ import annotations

import numpy as np
import pytest
from lichen import DocumentInfo
from pipecat.frames.frames import LLMContextFrame
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.tests.utils import run_test
from pipecat_lichen import LichenContextProcessor, LichenParams

FAQS = [
    ("faq-double", "If you were charged twice for one order, the duplicate charge is refunded automatically."),
    ("faq-refund-time", "Refunds go back to the original payment method within 3-5 business days."),
    ("faq-password", "Reset a forgotten password with the link on the sign-in page."),
    ("faq-address", "A delivery address can be changed within 2 hours of ordering."),
]


@pytest.fixture
async def faqs(client):
    await client.create_index("faqs", [DocumentInfo(id=i, text=t, metadata={"kind": "faq"}) for i, t in FAQS])
    await client.load_index("faqs")
    return "faqs"


async def lichen(client, faqs, name="call", **params) -> LichenContextProcessor:
    session = await client.session(name)
    return LichenContextProcessor(session, client, params=LichenParams(indexes=[faqs], **params))


def context_messages(messages: list[dict]) -> list[dict]:
    return [m for m in messages if m["role"] == "system" and m["content"].startswith("Context for this turn")]


# ---------------------------------------------------------------------- the interim path
async def test_hit_a_final_transcript_matching_the_last_interim_costs_only_the_search(voice, client, faqs, embedded):
    processor = await lichen(client, faqs)
    final = "How long until my refund for the hit test arrives?"
    _, llm = await voice.run_call(processor, [voice.Turn(final, voice.words_of(final))])
    turn = llm.seen[0].turn
    assert (turn.query.match, turn.query.ready, turn.query.interims) == ("exact", True, len(final.split()))
    assert turn.query.query == "how long until my refund for the hit test arrives"
    # Each interim was embedded while the user spoke; the final text never was: the
    # query took the prepared vector, and so did the stored turn.
    assert embedded.count("how long until my refund for the hit test arrives") == 1
    assert embedded.count(final) == 0
    assert "[faqs faq-refund-time " in context_messages(llm.seen[0].messages)[0]["content"]
    stored = (await processor.session.get_docs(include_embeddings=True))[0]
    assert stored.text == f"user: {final}"
    # Stored with the prepared vector: the interim's words (which Lichen treats as the
    # same query), not re-embedded with the final's punctuation.
    assert np.dot(stored.embedding, processor.session.embed_query(turn.query.query)) > 0.9999


async def test_near_miss_a_trailing_filler_still_takes_the_prepared_vector(voice, client, faqs, embedded):
    processor = await lichen(client, faqs)
    spoken = "I was charged twice in the near miss test"
    final = spoken + ", um."
    _, llm = await voice.run_call(processor, [voice.Turn(final, voice.words_of(spoken))])
    turn = llm.seen[0].turn
    assert (turn.query.match, turn.query.ready) == ("near", True)
    assert turn.query.query == "i was charged twice in the near miss test"
    assert embedded.count(final) == 0  # the filler changed nothing worth an embedding
    assert "[faqs faq-double " in context_messages(llm.seen[0].messages)[0]["content"]


async def test_miss_a_revised_final_transcript_is_embedded_once(voice, client, faqs, embedded):
    processor = await lichen(client, faqs)
    heard = "I want to cancel the miss test order"
    final = "I want to change the delivery address of the miss test order."
    _, llm = await voice.run_call(processor, [voice.Turn(final, voice.words_of(heard))])
    turn = llm.seen[0].turn
    assert turn.query.match == "miss" and turn.query.query == final
    # Embedded once, as it arrived or at the turn: the query and the stored turn share it.
    assert embedded.count(final) == 1
    assert "[faqs faq-address " in context_messages(llm.seen[0].messages)[0]["content"]


async def test_without_the_listener_every_turn_embeds_its_final_transcript(voice, client, faqs, embedded):
    processor = await lichen(client, faqs)
    final = "Where do I reset my password for the listener test?"
    _, llm = await voice.run_call(processor, [voice.Turn(final, voice.words_of(final))], listener=False)
    assert llm.seen[0].turn.query.match == "none" and not llm.seen[0].turn.query.ready
    assert embedded.count(final) == 1
    assert not any(text.startswith("where do") for text in embedded.texts)  # no interim reached Lichen


async def test_prepare_interim_off_ignores_interim_transcripts(voice, client, faqs, embedded):
    processor = await lichen(client, faqs, prepare_interim=False)
    final = "Where do I reset my password when preparing is off?"
    _, llm = await voice.run_call(processor, [voice.Turn(final, voice.words_of(final))])
    assert llm.seen[0].turn.query.match == "none"
    assert not any(text.startswith("where do") for text in embedded.texts)


async def test_a_turn_in_segments_matches_the_segments_joined(voice, client, faqs, embedded):
    processor = await lichen(client, faqs)
    first, second = "I was charged twice", "for one segmented order."
    interims = [voice.words_of(first), voice.words_of(second)]  # the STT restarts its interims per segment
    _, llm = await voice.run_call(processor, [voice.Turn([first, second], interims)])
    turn = llm.seen[0].turn
    assert turn.query.final == f"{first} {second}"
    # The second segment's last interim, after the first segment's final: the whole turn.
    assert (turn.query.match, turn.query.query) == ("exact", "I was charged twice for one segmented order")
    assert embedded.count("I was charged twice for one segmented order") == 1  # while the user spoke
    assert embedded.count(turn.query.final) == 0


# ---------------------------------------------------------------------- context and turns
async def test_context_sits_before_the_users_turn_and_is_replaced_each_turn(voice, client, faqs):
    processor = await lichen(
        client, faqs, per_source_k={"session": 1, "faqs": 2}, speakers={"user": "customer", "assistant": "agent"}
    )
    turns = [
        voice.Turn("I was charged twice for my order.", reply="Sorry, the duplicate is refunded."),
        voice.Turn("How long does a refund take?", reply="Three to five business days."),
        voice.Turn("And if I forgot my password?", reply="Use the sign-in page link."),
    ]
    context, llm = await voice.run_call(processor, turns)
    for n, seen in enumerate(llm.seen):
        injected = context_messages(seen.messages)
        assert len(injected) == 1, "one context message per turn, never piled up"
        assert seen.messages[-2] is not None and seen.messages[-2]["content"] == injected[0]["content"]
        assert seen.messages[-1] == {"role": "user", "content": turns[n].final}
    assert "[session " not in llm.seen[0].turn.context  # nothing said yet
    assert "[session turn-1 " in llm.seen[1].turn.context  # the first turn, after it was indexed
    assert "[faqs faq-password " in llm.seen[2].turn.context
    assert not context_messages(context.get_messages())[:-1]  # at most the last turn's remains

    docs = await processor.session.get_docs()
    assert [d.text for d in docs] == [
        "customer: I was charged twice for my order.",
        "agent: Sorry, the duplicate is refunded.",
        "customer: How long does a refund take?",
        "agent: Three to five business days.",
        "customer: And if I forgot my password?",
        "agent: Use the sign-in page link.",  # indexed at EndFrame
    ]
    assert [d.metadata for d in docs[:2]] == [{"speaker": "customer", "turn": 1}, {"speaker": "agent", "turn": 2}]


async def test_the_session_is_pushed_at_end_frame_and_resumed_on_callback(voice, client, faqs):
    processor = await lichen(client, faqs, name="callback")
    pushed = []
    processor.add_event_handler("on_session_pushed", lambda proc, result: pushed.append(result))
    await voice.run_call(processor, [voice.Turn("I was charged twice.", reply="Refunded automatically.")])
    assert processor.last_push.doc_count == 2 and processor.last_push.version == 1
    assert pushed == [processor.last_push]

    again = await lichen(client, faqs, name="callback")
    assert again.session.doc_count == 2
    _, llm = await voice.run_call(again, [voice.Turn("Has the double charge been refunded?")])
    assert "[session turn-" in llm.seen[0].turn.context  # the first call's turns answer
    assert again.last_push.doc_count == 4 and again.last_push.version == 2


async def test_the_session_is_pushed_when_the_call_is_cancelled(voice, client, faqs):
    processor = await lichen(client, faqs, name="cancelled")
    await voice.run_call(processor, [voice.Turn("I was charged twice.", reply="Refunded automatically.")], end="cancel")
    assert processor.last_push is not None and processor.last_push.doc_count == 2
    assert (await client.session("cancelled")).doc_count == 2


async def test_a_processor_prepares_again_in_its_next_pipeline(voice, client, faqs):
    processor = await lichen(client, faqs, name="twice")
    await voice.run_call(processor, [voice.Turn("I was charged twice.", voice.words_of("I was charged twice."))])
    final = "How long does a refund take in the second pipeline?"
    _, llm = await voice.run_call(processor, [voice.Turn(final, voice.words_of(final))])
    assert llm.seen[0].turn.query.match == "exact"
    assert processor.last_push.doc_count == 4 and processor.last_push.version == 2


async def test_push_on_end_off_keeps_the_session_in_memory(voice, client, faqs):
    processor = await lichen(client, faqs, name="unpushed", push_on_end=False)
    await voice.run_call(processor, [voice.Turn("I was charged twice.")])
    assert processor.last_push is None and processor.session.doc_count == 2
    assert (await client.session("unpushed")).doc_count == 0


async def test_index_turns_off_retrieves_without_writing(voice, client, faqs):
    processor = await lichen(client, faqs, index_turns=False)
    _, llm = await voice.run_call(processor, [voice.Turn("I was charged twice."), voice.Turn("How long does a refund take?")])
    assert processor.session.doc_count == 0 and processor.last_push is None
    assert "[faqs faq-refund-time " in llm.seen[1].turn.context


# ---------------------------------------------------------------------- options
async def test_top_k_and_per_source_k(voice, client, faqs):
    processor = await lichen(client, faqs, top_k=2, per_source_k={"session": 1})
    turns = [voice.Turn("I was charged twice."), voice.Turn("Charged twice again?"), voice.Turn("Is a duplicate charge refunded?")]
    _, llm = await voice.run_call(processor, turns)
    hits = llm.seen[2].turn.hits
    assert len(hits) == 2 and [h.source for h in hits].count("session") == 1
    assert len(llm.seen[2].turn.context.splitlines()) == 3  # the header and two passages


async def test_min_score_drops_weak_passages_and_no_context_is_injected(voice, client, faqs):
    processor = await lichen(client, faqs, min_score=0.99)
    _, llm = await voice.run_call(processor, [voice.Turn("What colour is the sky on Mars?")])
    assert llm.seen[0].turn.hits == [] and llm.seen[0].turn.context is None
    assert context_messages(llm.seen[0].messages) == []


async def test_filter_applies_to_every_source(voice, client, faqs):
    processor = await lichen(client, faqs, filter={"speaker": {"$ne": "assistant"}})
    turns = [voice.Turn("I was charged twice.", reply="I was charged twice, you say?"), voice.Turn("Charged twice, yes.")]
    _, llm = await voice.run_call(processor, turns)
    sources = {(h.source, h.doc.metadata.get("speaker")) for h in llm.seen[1].turn.hits}
    assert ("session", "assistant") not in sources and ("session", "user") in sources
    assert any(source == "faqs" for source, _ in sources)  # FAQs have no speaker: $ne matches them


async def test_alpha_blends_keyword_ranking(voice, client, faqs):
    processor = await lichen(client, faqs, alpha=0.5, merge="rrf")
    _, llm = await voice.run_call(processor, [voice.Turn("password sign-in link")])
    best = llm.seen[0].turn.hits[0].doc
    assert best.id == "faq-password" and best.keyword_score is not None and best.vector_score is not None


async def test_templates(voice, client, faqs):
    processor = await lichen(
        client, faqs,
        context_template="Use these notes:\n{passages}\n(end of notes)",
        passage_template="- {text} ({source}/{id}, {score:.1f}, kind={metadata[kind]})",
        per_source_k={"session": 0},
    )
    _, llm = await voice.run_call(processor, [voice.Turn("How do I reset my password?")])
    lines = llm.seen[0].turn.context.splitlines()
    assert lines[0] == "Use these notes:" and lines[-1] == "(end of notes)"
    assert lines[1].startswith("- Reset a forgotten password with the link on the sign-in page. (faqs/faq-password, 0.")
    assert lines[1].endswith(", kind=faq)")


# ---------------------------------------------------------------------- Pipecat's run_test
async def test_under_pipecats_run_test_a_context_without_a_new_user_turn_loses_the_old_context(client, faqs):
    processor = await lichen(client, faqs)
    context = LLMContext([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "I was charged twice."}])
    down, _ = await run_test(processor, frames_to_send=[LLMContextFrame(context)], expected_down_frames=[LLMContextFrame])
    assert [m["role"] for m in down[0].context.get_messages()] == ["system", "system", "user"]

    context.add_message({"role": "assistant", "content": "Let me check."})  # e.g. a tool result turn
    down, _ = await run_test(processor, frames_to_send=[LLMContextFrame(context)], expected_down_frames=[LLMContextFrame])
    assert [m["role"] for m in down[0].context.get_messages()] == ["system", "user", "assistant"]
    assert [d.text for d in await processor.session.get_docs()] == ["user: I was charged twice.", "assistant: Let me check."]


async def test_text_parts_are_read_as_text(client, faqs):
    processor = await lichen(client, faqs)
    parts = [{"type": "text", "text": "How do I reset"}, {"type": "text", "text": "my password?"}]
    context = LLMContext([{"role": "user", "content": parts}])
    down, _ = await run_test(processor, frames_to_send=[LLMContextFrame(context)], expected_down_frames=[LLMContextFrame])
    assert processor.last_turn.query.final == "How do I reset my password?"
    assert "[faqs faq-password " in processor.last_turn.context


# ---------------------------------------------------------------------- refusals
def test_params_are_checked(client):
    with pytest.raises(ValueError, match="context_template must contain"):
        LichenParams(context_template="no placeholder")
    with pytest.raises(ValueError, match="not one string"):
        LichenParams(indexes="faqs")
    with pytest.raises(ValueError, match="top_k"):
        LichenParams(top_k=-1)
    with pytest.raises(ValueError, match="alpha"):
        LichenParams(alpha=1.5)
    with pytest.raises(ValueError, match="per_source_k"):
        LichenParams(per_source_k={"session": -1})
    with pytest.raises(ValueError, match="passage_template"):
        LichenParams(passage_template="{nope}")
    with pytest.raises(ValueError, match="extra"):
        LichenParams(topk=3)
    with pytest.raises(ValueError, match="need the client"):
        LichenContextProcessor(client.session_sync("x"), params=LichenParams(indexes=["faqs"]))
