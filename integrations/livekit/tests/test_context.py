"""LichenContext in LiveKit agent sessions run offline: context added in
on_user_turn_completed (one per turn, never piled up), the interim path (hit, near miss,
miss) seen in what the model embeds, turns indexed from conversation_item_added, the
session pushed on close, the search tool through session.run and RunResult, and the
options."""

from __future__ import annotations

import numpy as np
import pytest
from lichen import DocumentInfo
from livekit.plugins.lichen import LichenContext, LichenOptions

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


async def lichen_for(client, faqs, name="call", **options) -> LichenContext:
    return LichenContext(await client.session(name), client, options=LichenOptions(indexes=[faqs], **options))


def lichen_messages(chat_ctx, livekit) -> list[str]:
    return [text for role, text in livekit.messages(chat_ctx) if text.startswith("Context for this turn")]


# ---------------------------------------------------------------------- the interim path
async def test_hit_a_final_transcript_matching_the_last_interim_costs_only_the_search(livekit, client, faqs, embedded):
    lichen = await lichen_for(client, faqs)
    model = livekit.ScriptedLLM()
    session, stt = await livekit.start_session(lichen, model)
    final = "How long until my refund for the hit test arrives?"
    await livekit.spoken_turn(stt, model, final, livekit.words_of(final))
    turn = lichen.last_turn
    assert (turn.query.match, turn.query.ready, turn.query.interims) == ("exact", True, len(final.split()))
    assert turn.query.query == "how long until my refund for the hit test arrives"
    # Each interim was embedded while the user spoke; the final transcript never was.
    assert embedded.count("how long until my refund for the hit test arrives") == 1
    assert embedded.count(final) == 0
    assert "[faqs faq-refund-time " in lichen_messages(model.contexts[-1], livekit)[0]
    await session.aclose()
    await lichen.aclose()
    stored = (await lichen.session.get_docs(include_embeddings=True))[0]
    assert stored.text == f"user: {final}"
    assert np.dot(stored.embedding, lichen.session.embed_query(turn.query.query)) > 0.9999  # the prepared vector


async def test_near_miss_a_trailing_filler_still_takes_the_prepared_vector(livekit, client, faqs, embedded):
    lichen = await lichen_for(client, faqs)
    model = livekit.ScriptedLLM()
    session, stt = await livekit.start_session(lichen, model)
    spoken = "I was charged twice in the near miss test"
    final = spoken + ", um."
    await livekit.spoken_turn(stt, model, final, livekit.words_of(spoken))
    assert (lichen.last_turn.query.match, lichen.last_turn.query.ready) == ("near", True)
    assert embedded.count(final) == 0
    assert "[faqs faq-double " in lichen_messages(model.contexts[-1], livekit)[0]
    await session.aclose()


async def test_miss_a_revised_final_transcript_is_embedded_once(livekit, client, faqs, embedded):
    lichen = await lichen_for(client, faqs)
    model = livekit.ScriptedLLM()
    session, stt = await livekit.start_session(lichen, model)
    final = "I want to change the delivery address of the miss test order."
    await livekit.spoken_turn(stt, model, final, livekit.words_of("I want to cancel the miss test order"))
    assert lichen.last_turn.query.match == "miss" and lichen.last_turn.query.query == final
    await session.aclose()
    await lichen.aclose()
    assert embedded.count(final) == 1  # the query and the stored turn share one embedding
    assert "[faqs faq-address " in lichen_messages(model.contexts[-1], livekit)[0]


async def test_prepare_interim_off_embeds_the_final_transcript(livekit, client, faqs, embedded):
    lichen = await lichen_for(client, faqs, prepare_interim=False)
    model = livekit.ScriptedLLM()
    session, stt = await livekit.start_session(lichen, model)
    final = "Where do I reset my password when preparing is off?"
    await livekit.spoken_turn(stt, model, final, livekit.words_of(final))
    assert (lichen.last_turn.query.match, lichen.last_turn.query.ready) == ("none", False)
    assert not any(text.startswith("where do") for text in embedded.texts)
    assert embedded.count(final) == 1
    await session.aclose()


async def test_a_turn_in_segments_matches_the_segments_joined(livekit, client, faqs, embedded):
    lichen = await lichen_for(client, faqs)
    model = livekit.ScriptedLLM()
    session, stt = await livekit.start_session(lichen, model)
    first, second = "I was charged twice", "for one segmented order."
    await livekit.spoken_turn(stt, model, [first, second], [livekit.words_of(first), livekit.words_of(second)])
    turn = lichen.last_turn
    assert turn.query.final == f"{first} {second}"
    assert (turn.query.match, turn.query.query) == ("exact", "I was charged twice for one segmented order")
    assert embedded.count(turn.query.final) == 0
    await session.aclose()


# ---------------------------------------------------------------------- context and turns
async def test_context_is_added_for_each_turn_and_never_piles_up(livekit, client, faqs):
    lichen = await lichen_for(client, faqs, per_source_k={"session": 1, "faqs": 2},
                              speakers={"user": "customer", "assistant": "agent"})
    replies = iter(["Sorry, the duplicate is refunded.", "Three to five business days.", "Use the sign-in page link."])
    model = livekit.ScriptedLLM(lambda chat_ctx: next(replies))
    session, stt = await livekit.start_session(lichen, model)
    said = ["I was charged twice for my order.", "How long does a refund take?", "And if I forgot my password?"]
    for text in said:
        await livekit.spoken_turn(stt, model, text, livekit.words_of(text))
    for n, chat_ctx in enumerate(model.contexts):
        assert len(lichen_messages(chat_ctx, livekit)) == 1, "one context message per turn"
        assert livekit.messages(chat_ctx)[-2] == ("user", said[n])  # LiveKit adds it after the user's message
    assert "[session " not in lichen_messages(model.contexts[0], livekit)[0]
    assert "[session turn-" in lichen_messages(model.contexts[1], livekit)[0]  # the first exchange, indexed
    assert "[faqs faq-password " in lichen_messages(model.contexts[2], livekit)[0]
    assert not lichen_messages(session.history, livekit)  # the agent's own history stays clean

    await session.aclose()
    result = await lichen.aclose()
    docs = await lichen.session.get_docs()
    assert [d.text for d in docs] == [
        "customer: I was charged twice for my order.",
        "agent: Sorry, the duplicate is refunded.",
        "customer: How long does a refund take?",
        "agent: Three to five business days.",
        "customer: And if I forgot my password?",
        "agent: Use the sign-in page link.",
    ]
    assert [d.metadata for d in docs[:2]] == [{"speaker": "customer", "turn": 1}, {"speaker": "agent", "turn": 2}]
    assert result is lichen.last_push and result.doc_count == 6 and result.version == 1


async def test_the_session_is_pushed_on_close_and_resumed_on_callback(livekit, client, faqs):
    lichen = await lichen_for(client, faqs, name="callback")
    model = livekit.ScriptedLLM(lambda chat_ctx: "Refunded automatically.")
    session, stt = await livekit.start_session(lichen, model)
    await livekit.spoken_turn(stt, model, "I was charged twice.")
    await session.aclose()  # the close event starts the push
    assert (await lichen.aclose()).doc_count == 2
    assert await lichen.aclose() is lichen.last_push  # once

    again = await lichen_for(client, faqs, name="callback")
    assert again.session.doc_count == 2
    model = livekit.ScriptedLLM()
    session, stt = await livekit.start_session(again, model)
    await livekit.spoken_turn(stt, model, "Has the double charge been refunded?")
    assert "[session turn-" in again.last_turn.context
    await session.aclose()
    assert (await again.aclose()).version == 2


async def test_push_on_close_off_and_index_turns_off(livekit, client, faqs):
    kept = await lichen_for(client, faqs, name="unpushed", push_on_close=False)
    model = livekit.ScriptedLLM()
    session, stt = await livekit.start_session(kept, model)
    await livekit.spoken_turn(stt, model, "I was charged twice.")
    await session.aclose()
    assert await kept.aclose() is None and kept.session.doc_count == 2
    assert (await client.session("unpushed")).doc_count == 0

    reader = await lichen_for(client, faqs, name="read-only", index_turns=False)
    model = livekit.ScriptedLLM()
    session, stt = await livekit.start_session(reader, model)
    await livekit.spoken_turn(stt, model, "How long does a refund take?")
    await session.aclose()
    assert await reader.aclose() is None and reader.session.doc_count == 0
    assert "[faqs faq-refund-time " in reader.last_turn.context


# ---------------------------------------------------------------------- the search tool
async def test_the_llm_calls_the_search_tool_and_answers_from_its_output(livekit, client, faqs):
    lichen = await lichen_for(client, faqs)

    def respond(chat_ctx):
        last = chat_ctx.items[-1]
        if last.type == "function_call_output":
            return "From the help center: " + next(line for line in last.output.splitlines() if line.startswith("[faqs "))
        return ("tool", "search_knowledge", {"query": "forgotten password"})

    model = livekit.ScriptedLLM(respond)
    session, _ = await livekit.start_session(lichen, model, speech=False)
    result = await session.run(user_input="I can't log in")  # a text turn: LiveKit's test helper
    result.expect.next_event().is_function_call(name="search_knowledge", arguments={"query": "forgotten password"})
    output = result.expect.next_event().is_function_call_output().event().item.output
    lines = output.splitlines()[1:]
    assert lines[0].startswith("[session turn-1 ") and lines[0].endswith("user: I can't log in")  # said a moment ago
    assert lines[1].startswith("[faqs faq-password ")
    message = result.expect.next_event().is_message(role="assistant").event().item
    assert message.text_content.startswith("From the help center: [faqs faq-password ")
    result.expect.no_more_events()
    await session.aclose()
    await lichen.aclose()
    # Text turns are indexed too (conversation_item_added), the tool's call is not.
    assert [d.text.split(":")[0] for d in await lichen.session.get_docs()] == ["user", "assistant"]


async def test_the_tool_as_the_llm_sees_it(client, faqs):
    lichen = await lichen_for(client, faqs)
    tool = lichen.search_tool()
    assert tool.info.name == "search_knowledge"
    assert tool.info.description.startswith("Search this call's earlier conversation and the knowledge base")
    renamed = lichen.search_tool(name="handbook_search", description="Search the handbook.")
    assert (renamed.info.name, renamed.info.description) == ("handbook_search", "Search the handbook.")
    assert await tool("what colour is the sky on mars, zebra crossing") != ""
    nothing = LichenContext(lichen.session, client, options=LichenOptions(indexes=[faqs], min_score=0.99))
    assert await nothing.search_tool()("what colour is the sky on mars") == "Nothing relevant was found."


# ---------------------------------------------------------------------- options
async def test_min_score_no_context_and_top_k_zero(livekit, client, faqs):
    lichen = await lichen_for(client, faqs, min_score=0.99)
    model = livekit.ScriptedLLM()
    session, stt = await livekit.start_session(lichen, model)
    await livekit.spoken_turn(stt, model, "What colour is the sky on Mars?")
    assert lichen.last_turn.hits == [] and lichen.last_turn.context is None
    assert lichen_messages(model.contexts[-1], livekit) == []
    await session.aclose()


async def test_filter_role_and_templates(livekit, client, faqs):
    lichen = await lichen_for(
        client, faqs,
        filter={"kind": "faq"},
        context_role="assistant",
        context_template="Context for this turn, notes:\n{passages}",
        passage_template="- {text} ({source}/{id}, kind={metadata[kind]})",
    )
    model = livekit.ScriptedLLM()
    session, stt = await livekit.start_session(lichen, model)
    await livekit.spoken_turn(stt, model, "I was charged twice.")
    await livekit.spoken_turn(stt, model, "How do I reset my password?")
    role, text = next((r, t) for r, t in livekit.messages(model.contexts[-1]) if t.startswith("Context for this turn"))
    assert role == "assistant"
    lines = text.splitlines()[1:]
    assert all(line.endswith("kind=faq)") for line in lines)  # the filter kept the session's turns out
    assert lines[0] == "- Reset a forgotten password with the link on the sign-in page. (faqs/faq-password, kind=faq)"
    await session.aclose()


def test_options_are_checked(client):
    with pytest.raises(ValueError, match="context_template must contain"):
        LichenOptions(context_template="no placeholder")
    with pytest.raises(ValueError, match="not one string"):
        LichenOptions(indexes="faqs")
    with pytest.raises(ValueError, match="passage_template"):
        LichenOptions(passage_template="{nope}")
    with pytest.raises(ValueError, match="context_role"):
        LichenOptions(context_role="narrator")
    with pytest.raises(ValueError, match="extra"):
        LichenOptions(topk=3)
    with pytest.raises(ValueError, match="need the client"):
        LichenContext(client.session_sync("x"), options=LichenOptions(indexes=["faqs"]))
