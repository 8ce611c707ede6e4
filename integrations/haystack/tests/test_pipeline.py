"""The components in real Haystack pipelines: indexing through DocumentWriter, querying
through the embedder and retrievers, hybrid through DocumentJoiner, and a pipeline that
is dumped to YAML, loaded back, and answers the same."""

from __future__ import annotations

from haystack import Document, Pipeline
from haystack.components.joiners import DocumentJoiner
from haystack.components.writers import DocumentWriter
from haystack.document_stores.types import DuplicatePolicy
from haystack_integrations.components.embedders.lichen import LichenTextEmbedder
from haystack_integrations.components.retrievers.lichen import LichenBM25Retriever, LichenEmbeddingRetriever
from haystack_integrations.document_stores.lichen import LichenDocumentStore

DOCS = [
    Document(id="refund", content="Refunds go back to the original card within 5 business days."),
    Document(id="invoice", content="Invoices are emailed on the first day of each month."),
    Document(id="password", content="Reset a forgotten password from the sign-in page."),
    Document(id="shipping", content="Orders ship within two days; tracking numbers arrive by email."),
]


def index(store: LichenDocumentStore) -> None:
    indexing = Pipeline()
    indexing.add_component("writer", DocumentWriter(store, policy=DuplicatePolicy.OVERWRITE))
    assert indexing.run({"writer": {"documents": DOCS}}) == {"writer": {"documents_written": 4}}


def query_pipeline(store: LichenDocumentStore) -> Pipeline:
    pipeline = Pipeline()
    pipeline.add_component("embedder", LichenTextEmbedder())
    pipeline.add_component("retriever", LichenEmbeddingRetriever(store, top_k=2))
    pipeline.connect("embedder.embedding", "retriever.query_embedding")
    return pipeline


def test_index_then_query(store):
    index(store)
    result = query_pipeline(store).run({"embedder": {"text": "when do I get my money back?"}})
    assert [d.id for d in result["retriever"]["documents"]] == ["refund", "invoice"]


def test_a_dumped_pipeline_loads_and_answers_the_same(store):
    index(store)
    store.push()  # the YAML names the index; loading reopens what was pushed
    pipeline = query_pipeline(store)
    loaded = Pipeline.loads(pipeline.dumps())
    question = {"embedder": {"text": "how do I change my password"}}
    assert loaded.run(question) == pipeline.run(question)
    assert loaded.get_component("retriever").document_store is not store


def test_hybrid_with_haystacks_document_joiner(store):
    index(store)
    hybrid = Pipeline()
    hybrid.add_component("embedder", LichenTextEmbedder())
    hybrid.add_component("vector", LichenEmbeddingRetriever(store, top_k=3))
    hybrid.add_component("keyword", LichenBM25Retriever(store, top_k=3))
    hybrid.add_component("joiner", DocumentJoiner(join_mode="reciprocal_rank_fusion", top_k=2))
    hybrid.connect("embedder.embedding", "vector.query_embedding")
    hybrid.connect("vector", "joiner")
    hybrid.connect("keyword", "joiner")
    text = "tracking numbers"
    result = hybrid.run({"embedder": {"text": text}, "keyword": {"query": text}})
    assert result["joiner"]["documents"][0].id == "shipping"


async def test_pipeline_run_async(store):
    index(store)
    pipeline = Pipeline()  # Haystack 3: one Pipeline, run or run_async
    pipeline.add_component("embedder", LichenTextEmbedder())
    pipeline.add_component("retriever", LichenEmbeddingRetriever(store, top_k=1))
    pipeline.connect("embedder.embedding", "retriever.query_embedding")
    result = await pipeline.run_async({"embedder": {"text": "invoice date"}})
    assert [d.id for d in result["retriever"]["documents"]] == ["invoice"]
