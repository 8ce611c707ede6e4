"""Preparing a query (``session.prepare(text)``): the vector is computed early and a later
query whose text normalises the same reuses it, in every index of the same model; other
texts are embedded as usual; the store is bounded."""

from __future__ import annotations

import numpy as np
import pytest

import lichen._prepared as prepared_module
from lichen import Client, ContextSearch, DocumentInfo, InvalidArgumentError, QueryOptions, SessionIndex
from lichen._prepared import PreparedQueries, normalise_query, prepared_queries
from lichen.models import DEFAULT_MODEL_ID

DOCS = [
    DocumentInfo(id="refund", text="Refunds arrive within five business days."),
    DocumentInfo(id="password", text="Reset your password from the sign-in page."),
]


class CountingEmbedder:
    """The session's own embedder, counting the texts it embeds."""

    def __init__(self, inner) -> None:
        self.inner, self.texts = inner, []
        self.model_id, self.dimension = inner.model_id, inner.dimension

    def embed(self, texts, **kwargs):
        self.texts.extend(texts)
        return self.inner.embed(texts, **kwargs)


@pytest.fixture
def session():
    prepared_queries(DEFAULT_MODEL_ID).clear()
    index = SessionIndex("prep")
    index.add_docs_sync(DOCS)
    index._embedder = CountingEmbedder(index._embedder)
    yield index
    prepared_queries(DEFAULT_MODEL_ID).clear()


def test_a_prepared_query_is_not_embedded_again_and_answers_as_the_prepared_text(session):
    # The hit answers with the prepared text's vector: what querying that text gives.
    plain = session.query_sync("How long does a refund take", QueryOptions(top_k=2))
    session.prepare_sync("How long does a refund take")
    embedded = list(session._embedder.texts)
    hit = session.query_sync("how long does a refund take?", QueryOptions(top_k=2))
    assert session._embedder.texts == embedded  # the query embedded nothing
    assert [d.id for d in hit.docs] == [d.id for d in plain.docs]
    assert [d.score for d in hit.docs] == pytest.approx([d.score for d in plain.docs], abs=1e-6)


async def test_prepare_has_an_async_face(session):
    await session.prepare("password reset")
    before = len(session._embedder.texts)
    result = await session.query("Password, reset!")
    assert len(session._embedder.texts) == before and result.docs[0].id == "password"


def test_a_text_that_differs_in_more_than_case_punctuation_and_spacing_is_embedded(session):
    session.prepare_sync("how long does a refund")  # an interim transcript...
    before = len(session._embedder.texts)
    session.query_sync("how long does a refund take")  # ...that the final one extended: a miss
    assert session._embedder.texts[before:] == ["how long does a refund take"]


def test_prepared_vectors_serve_every_index_of_the_model_and_the_context_merge():
    prepared_queries(DEFAULT_MODEL_ID).clear()
    client = Client()
    client.create_index_sync("faq", DOCS)
    faq = client.load_index_sync("faq")
    session = SessionIndex("call")
    session.add_docs_sync([DocumentInfo(id="t1", text="I want my refund")])
    counting = CountingEmbedder(session._embedder)
    session._embedder = faq._embedder = counting
    session.prepare_sync("where is my refund")
    start = len(counting.texts)
    ContextSearch(session, client, ["faq"], k=2).search("Where is my refund?")
    faq.query_sync("where is my REFUND")
    assert counting.texts[start:] == []


def test_the_store_is_bounded_and_drops_the_least_recently_used(monkeypatch):
    store = PreparedQueries(capacity=2)
    for i, text in enumerate(["one", "two", "three"]):
        store.put(text, np.full(4, i, dtype=np.float32))
    assert len(store) == 2 and store.get("one") is None
    assert store.get("two") is not None  # two is now the most recent
    store.put("four", np.zeros(4, dtype=np.float32))
    assert store.get("three") is None and store.get("two") is not None and store.get("four") is not None
    assert store.hits == 3 and store.misses == 2


def test_a_prepared_vector_is_a_private_read_only_copy():
    store = PreparedQueries()
    vector = np.ones(4, dtype=np.float32)
    store.put("x", vector)
    vector[:] = 0
    kept = store.get("x")
    assert kept is not None and kept.tolist() == [1, 1, 1, 1] and not kept.flags.writeable


def test_the_normalisation_rule():
    assert normalise_query("Refund, please.") == normalise_query("  refund   PLEASE ") == "refund please"
    assert normalise_query("Ｒｅｆｕｎｄ") == "refund"  # NFKC: full-width letters
    assert normalise_query("?!") == ""
    store = PreparedQueries()
    store.put("?!", np.ones(4, dtype=np.float32))
    assert len(store) == 0  # no words, nothing to match


def test_prepare_refuses_what_a_query_refuses():
    session = SessionIndex("p")
    with pytest.raises(InvalidArgumentError):
        session.prepare_sync(42)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        session.prepare_sync("bad \ud800 surrogate")
    custom = SessionIndex("c", model_id="custom")
    with pytest.raises(InvalidArgumentError, match="custom"):
        custom.prepare_sync("anything")


def test_the_default_capacity_is_bounded():
    assert 16 <= prepared_module.PREPARED_CAPACITY <= 4096
