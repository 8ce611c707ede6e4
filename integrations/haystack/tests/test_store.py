"""LichenDocumentStore's own behaviour beyond Haystack's suites: embedding on write,
what it refuses, duplicate policies within one batch, persistence and serialisation."""

from __future__ import annotations

import numpy as np
import pytest
from haystack import Document
from haystack.dataclasses import ByteStream, SparseEmbedding
from haystack.document_stores.errors import DuplicateDocumentError
from haystack.document_stores.types import DuplicatePolicy
from haystack.errors import FilterError
from haystack_integrations.document_stores.lichen import LichenDocumentStore
from lichen import InvalidArgumentError, SessionIndex, get_embedder


def ids(documents: list[Document]) -> list[str]:
    return [d.id for d in documents]


def test_documents_without_an_embedding_are_embedded_by_the_index_model(store):
    store.write_documents([Document(id="r", content="Refunds take five business days.")])
    (stored,) = store.filter_documents()
    expected = get_embedder("lichen-minilm").embed(["Refunds take five business days."])[0]
    np.testing.assert_allclose(stored.embedding, expected, atol=1e-6)


def test_given_embeddings_are_kept_as_unit_vectors(store):
    store.write_documents([Document(id="v", content="x", embedding=[3.0] + [0.0] * 383)])
    assert store.filter_documents()[0].embedding == [1.0] + [0.0] * 383


def test_return_embedding_false_leaves_vectors_out(client):
    store = LichenDocumentStore("no-vectors", client=client, return_embedding=False)
    store.write_documents([Document(content="x")])
    assert store.filter_documents()[0].embedding is None


def test_custom_model_takes_any_dimension_and_requires_vectors(client):
    store = LichenDocumentStore("custom", model_id="custom", client=client)
    store.write_documents([Document(id="a", content="x", embedding=[1.0, 0.0, 0.0])])
    with pytest.raises(InvalidArgumentError, match="has no embedding"):
        store.write_documents([Document(id="b", content="y")])
    with pytest.raises(InvalidArgumentError, match="dimension|size|length"):
        store.write_documents([Document(id="c", content="z", embedding=[1.0, 0.0])])
    assert ids(store.filter_documents()) == ["a"]


@pytest.mark.parametrize(
    ("document", "complaint"),
    [
        (Document(id="n"), "has no content"),
        (Document(id="b", content="x", blob=ByteStream(b"pdf")), "has a blob"),
        (Document(id="s", content="x", sparse_embedding=SparseEmbedding(indices=[1], values=[0.5])), "sparse"),
        (Document(id="m", content="x", meta={"raw": b"bytes"}), "metadata 'raw'"),
        (Document(id="e", content="x", embedding=[1.0, 2.0]), "dimension|size|length"),
    ],
)
def test_what_lichen_cannot_hold_is_refused_and_nothing_is_written(store, document, complaint):
    ok = Document(id="ok", content="fine")
    with pytest.raises(ValueError, match=complaint):
        store.write_documents([ok, document])
    assert store.count_documents() == 0


def test_duplicate_policies_within_one_batch(store):
    first, second = Document(id="1", content="first"), Document(id="1", content="second")
    with pytest.raises(DuplicateDocumentError):
        store.write_documents([first, second], policy=DuplicatePolicy.FAIL)
    assert store.count_documents() == 0  # refused whole, not half written

    assert store.write_documents([first, second], policy=DuplicatePolicy.SKIP) == 1
    assert [d.content for d in store.filter_documents()] == ["first"]

    assert store.write_documents([second, first, second], policy=DuplicatePolicy.OVERWRITE) == 3
    assert [d.content for d in store.filter_documents()] == ["second"]


def test_skip_writes_only_the_new_documents(store):
    store.write_documents([Document(id="a", content="old")])
    written = store.write_documents(
        [Document(id="a", content="new"), Document(id="b", content="b")], policy=DuplicatePolicy.SKIP
    )
    assert written == 1
    assert [(d.id, d.content) for d in store.filter_documents()] == [("a", "old"), ("b", "b")]


def test_update_by_filter_keeps_text_and_vector(store):
    store.write_documents([Document(id="a", content="x", meta={"k": 1}), Document(id="b", content="y", meta={"k": 2})])
    before = store.filter_documents()[0]
    assert store.update_by_filter({"field": "meta.k", "operator": "==", "value": 1}, {"seen": True}) == 1
    after = store.filter_documents()[0]
    assert after.meta == {"k": 1, "seen": True} and after.content == before.content
    np.testing.assert_allclose(after.embedding, before.embedding, atol=1e-7)


def test_delete_by_filter_needs_a_filter(store):
    store.write_documents([Document(content="x")])
    with pytest.raises(FilterError, match="delete_all_documents"):
        store.delete_by_filter({})
    assert store.count_documents() == 1


def test_push_then_a_new_store_resumes_the_index(client):
    store = LichenDocumentStore("handbook", client=client)
    store.write_documents([Document(id="a", content="Refunds take five days.", meta={"topic": "billing"})])
    assert store.push().doc_count == 1
    resumed = LichenDocumentStore("handbook", client=client)
    assert [(d.id, d.meta) for d in resumed.filter_documents()] == [("a", {"topic": "billing"})]


def test_to_dict_names_the_index_and_from_dict_reopens_it(lichen_home):
    store = LichenDocumentStore("serialised", return_embedding=False)
    store.write_documents([Document(id="a", content="x")])
    store.push()
    data = store.to_dict()
    assert data == {
        "type": "haystack_integrations.document_stores.lichen.document_store.LichenDocumentStore",
        "init_parameters": {
            "index_name": "serialised",
            "model_id": "lichen-minilm",
            "return_embedding": False,
            "read_only": False,
        },
    }
    reopened = LichenDocumentStore.from_dict(data)
    assert reopened.index_name == "serialised" and reopened.return_embedding is False
    assert ids(reopened.filter_documents()) == ["a"]


def test_read_only_store_serves_a_loaded_index_and_refuses_writes(client):
    writer = LichenDocumentStore("faq", client=client)
    writer.write_documents([Document(id="q", content="Reset your password.")])
    writer.push()

    store = LichenDocumentStore("faq", read_only=True, client=client)
    assert ids(store.filter_documents()) == ["q"]
    assert store.to_dict()["init_parameters"]["read_only"] is True
    with pytest.raises(InvalidArgumentError, match="read-only"):
        store.write_documents([Document(id="w", content="x")])


def test_wraps_a_standalone_session():
    store = LichenDocumentStore(session=SessionIndex("scratch"))
    store.write_documents([Document(content="x")])
    assert store.count_documents() == 1 and store.index_name == "scratch"


async def test_async_faces_share_the_translation(store):
    await store.write_documents_async([Document(id="a", content="x", meta={"k": 1})])
    assert await store.count_documents_by_filter_async({"field": "meta.k", "operator": "==", "value": 1}) == 1
    await store.push_async()
    await store.delete_documents_async(["a"])
    assert await store.count_documents_async() == 0

