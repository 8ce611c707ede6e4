"""LichenKnowledgeStorage driven through CrewAI's own classes, as an agent drives it:
``Knowledge`` with ``StringKnowledgeSource`` (chunking, ``add_sources``, ``query``,
``reset``, and their async twins)."""

from __future__ import annotations

import hashlib

import pytest
from crewai.knowledge.knowledge import Knowledge
from crewai.knowledge.source.string_knowledge_source import StringKnowledgeSource
from crewai.knowledge.storage.base_knowledge_storage import BaseKnowledgeStorage
from crewai_lichen import LichenKnowledgeStorage, knowledge_index_name
from lichen import DocumentInfo, InvalidArgumentError

HANDBOOK = (
    "Refunds go back to the original card within 5 business days. "
    "Invoices are emailed on the first day of each month. "
    "Reset a forgotten password from the sign-in page."
)


def source() -> StringKnowledgeSource:
    # Small chunks, so the handbook is several records.
    return StringKnowledgeSource(content=HANDBOOK, chunk_size=64, chunk_overlap=0)


@pytest.fixture
def storage(client) -> LichenKnowledgeStorage:
    return LichenKnowledgeStorage.open("knowledge_support", client=client)


def test_is_a_crewai_knowledge_storage(storage):
    assert isinstance(storage, BaseKnowledgeStorage)


def test_knowledge_saves_chunks_and_finds_them_by_meaning(storage):
    knowledge = Knowledge("support", sources=[source()], storage=storage)
    knowledge.add_sources()
    chunks = source()._chunk_text(HANDBOOK)
    assert storage.session.doc_count == len(chunks) == 3
    stored = storage.session.get_docs_sync()
    assert [(d.id, d.text) for d in stored] == [(hashlib.sha256(c.encode()).hexdigest(), c) for c in chunks]

    results = knowledge.query(["when will I get my money back?"], results_limit=2, score_threshold=0.0)
    assert [set(r) for r in results] == [{"id", "content", "metadata", "score"}] * 2
    assert results[0]["content"].startswith("Refunds go back")
    assert 0.0 <= results[1]["score"] <= results[0]["score"] <= 1.0


def test_scores_are_crewais_scale_and_the_threshold_applies_to_them(storage):
    storage.save(source()._chunk_text(HANDBOOK))
    lichen = storage.session.query_sync("refund", {"top_k": 3})
    results = storage.search(["refund"], limit=3, score_threshold=0.0)
    assert [r["score"] for r in results] == pytest.approx([(1 + d.score) / 2 for d in lichen.docs])
    threshold = (results[0]["score"] + results[1]["score"]) / 2
    assert [r["id"] for r in storage.search(["refund"], limit=3, score_threshold=threshold)] == [results[0]["id"]]


def test_saving_the_same_chunk_again_is_one_record(storage):
    storage.save(["a chunk", "a chunk"])
    storage.save(["a chunk"])
    assert storage.session.doc_count == 1


def test_the_query_strings_are_joined(storage):
    storage.save(["Refunds take five days.", "Passwords are reset online."])
    joined = storage.search(["refunds", "five days"], score_threshold=0.0)
    assert joined == storage.search(["refunds five days"], score_threshold=0.0)
    with pytest.raises(ValueError, match="non-empty list of strings"):
        storage.search([])


def test_metadata_filters_are_lichens(storage):
    storage.session.add_docs_sync([
        DocumentInfo(id="a", text="Refunds take five days.", metadata={"region": "eu"}),
        DocumentInfo(id="b", text="Refunds take ten days.", metadata={"region": "us"}),
    ])
    results = storage.search(["refund"], metadata_filter={"region": {"$in": ["us"]}}, score_threshold=0.0)
    assert [(r["id"], r["metadata"]) for r in results] == [("b", {"region": "us"})]


def test_reset_then_push_stores_the_empty_index(storage, client):
    knowledge = Knowledge("support", sources=[source()], storage=storage)
    knowledge.add_sources()
    storage.push()
    assert LichenKnowledgeStorage.open("knowledge_support", client=client).session.doc_count == 3
    knowledge.reset()
    storage.push()
    assert LichenKnowledgeStorage.open("knowledge_support", client=client).session.doc_count == 0


def test_a_loaded_long_term_index_is_searched_and_never_written(storage, client):
    storage.save(source()._chunk_text(HANDBOOK))
    storage.push()
    loaded = LichenKnowledgeStorage(session=client.load_index_sync("knowledge_support"))
    knowledge = Knowledge("support", sources=[], storage=loaded)
    assert "password" in knowledge.query(["password"], score_threshold=0.0)[0]["content"]
    with pytest.raises(InvalidArgumentError, match="read-only"):
        loaded.save(["new"])


async def test_async_faces(storage):
    knowledge = Knowledge("support", sources=[source()], storage=storage)
    await knowledge.aadd_sources()
    results = await knowledge.aquery(["password"], score_threshold=0.0)
    assert results == knowledge.query(["password"], score_threshold=0.0)
    await storage.apush()
    await knowledge.areset()
    assert storage.session.doc_count == 0


@pytest.mark.parametrize(
    ("collection", "index"),
    [("crew", "knowledge_crew"), ("Support Agent", "knowledge_Support Agent"), ("QA/Tester", "knowledge_QA_Tester"), (None, "knowledge")],
)
def test_index_names_follow_crewais_collection_names(collection, index):
    assert knowledge_index_name(collection) == index
