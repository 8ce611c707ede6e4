"""The per-turn rules the conversation adapters share (``lichen.turn_context``): the
search a turn makes, how its passages read to the LLM, and what a turn is stored as.
pipecat-lichen and livekit-plugins-lichen test them again through their frameworks."""

from __future__ import annotations

import pytest

from lichen import ContextHit, DocumentInfo, QueryOptions, QueryResultDocument, SessionIndex
from lichen.turn_context import TurnContextOptions


def hit(source: str, doc_id: str, score: float, text: str, **metadata) -> ContextHit:
    return ContextHit(doc=QueryResultDocument(id=doc_id, text=text, metadata=metadata, score=score), source=source, score=score)


def test_render_puts_the_session_first_then_each_index_in_order_best_first():
    options = TurnContextOptions(indexes=("faqs", "policies"), passage_template="{source}/{id}/{metadata[topic]}")
    hits = [
        hit("policies", "p1", 0.9, "a policy"),
        hit("faqs", "f1", 0.8, "a faq", topic="refunds"),
        hit("session", "turn-2", 0.7, "user: hi"),
        hit("faqs", "f2", 0.6, "another faq"),
    ]
    rendered = options.render(hits)
    assert rendered.splitlines()[1:] == ["session/turn-2/", "faqs/f1/refunds", "faqs/f2/", "policies/p1/"]
    assert rendered.startswith("Context for this turn")


def test_a_turn_is_stored_under_its_number_with_its_speaker():
    options = TurnContextOptions(speakers={"user": "caller", "assistant": "agent"}, turn_template="{speaker} said {text}")
    doc = options.turn_document("user", "my card was charged twice", 7, [1.0, 0.0])
    assert doc == DocumentInfo(
        id="turn-7", text="caller said my card was charged twice", metadata={"speaker": "caller", "turn": 7},
        embedding=[1.0, 0.0],
    )
    with pytest.raises(KeyError):
        options.turn_document("system", "not a speaker", 8, [1.0, 0.0])


def test_the_search_is_the_merge_of_the_sources_with_the_options(isolated_home):
    session = SessionIndex("turns", model_id="custom")
    session.add_docs_sync(
        [DocumentInfo(id=f"d{i}", text=f"doc {i}", metadata={"i": i}, embedding=[1.0, i / 10, 0.0]) for i in range(6)]
    )
    options = TurnContextOptions(top_k=2, filter={"i": {"$gte": 3}})
    search = options.context_search(session, None, owner="Adapter")
    got = search.search("q", embedding=[1.0, 0.9, 0.0])
    want = session.query_sync("q", QueryOptions(top_k=2, filter={"i": {"$gte": 3}}, embedding=[1.0, 0.9, 0.0])).docs
    assert [(h.source, h.doc.id) for h in got] == [("session", d.id) for d in want]
    with pytest.raises(ValueError, match=r"need the client that loaded them: Adapter\(session, client"):
        TurnContextOptions(indexes=("faqs",)).context_search(session, None, owner="Adapter")
