"""CrewAI ships no conformance suite for knowledge storage, so LichenKnowledgeStorage is
compared with CrewAI's own ``KnowledgeStorage``, the reference: the same operations on
both, the same answers.

The reference runs on an in-memory Chroma client (CrewAI's default backend) with
Lichen's model as its embedding function, so any difference is the storage's, not the
model's: record ids, de-duplication, which chunks a search returns, in which order, with
which score, and what the threshold keeps."""

from __future__ import annotations

import pytest
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
from chromadb.config import Settings
from crewai.knowledge.knowledge import Knowledge
from crewai.knowledge.source.string_knowledge_source import StringKnowledgeSource
from crewai.knowledge.storage.knowledge_storage import KnowledgeStorage
from crewai.rag.chromadb.config import ChromaDBConfig
from crewai.rag.config.utils import clear_rag_config, set_rag_config
from crewai_lichen import LichenKnowledgeStorage
from lichen import get_embedder

TEXT = (
    "Refunds go back to the original card within 5 business days. Invoices are emailed on the first day "
    "of each month. Reset a forgotten password from the sign-in page. Orders ship within two days, and "
    "tracking numbers arrive by email. Gift cards cannot be refunded. Contact support by chat or phone."
)
# CrewAI's and Chroma's own deprecation notices about their internals, not about this package.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Use `crewai.utilities.import_utils:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:The class LichenEmbeddings does not implement get_config:DeprecationWarning"),
]
QUERIES = [["refund"], ["when", "does my order ship"], ["forgot password"], ["gift card refund"], ["phone"]]


class LichenEmbeddings(EmbeddingFunction):  # type: ignore[type-arg]
    """Chroma's embedding-function interface over Lichen's built-in model."""

    def __init__(self) -> None:
        self._embedder = get_embedder("lichen-minilm")

    def __call__(self, input: Documents) -> Embeddings:  # noqa: A002 - Chroma's parameter name
        return list(self._embedder.embed_documents(list(input)))

    def embed_query(self, input: Documents) -> Embeddings:  # noqa: A002
        # Chroma embeds query texts through this (its own hook for models with a query
        # side): the built-in model's int8 query encoder, as Lichen queries do.
        return list(self._embedder.embed_queries(list(input)))

    @staticmethod
    def name() -> str:
        return "lichen-minilm"


@pytest.fixture
def reference(tmp_path):
    # Chroma writes segment folders under persist_directory even when not persistent
    # (default: ./chroma in the working directory).
    set_rag_config(
        ChromaDBConfig(
            embedding_function=LichenEmbeddings(),
            settings=Settings(
                is_persistent=False, persist_directory=str(tmp_path / "chroma"), anonymized_telemetry=False,
                allow_reset=True,
            ),
        )
    )
    storage = KnowledgeStorage(collection_name="reference")
    storage.reset()
    yield storage
    storage.reset()
    clear_rag_config()


def both_learn(reference, lichen) -> None:
    for storage in (reference, lichen):
        knowledge = Knowledge("support", sources=[StringKnowledgeSource(content=TEXT, chunk_size=60, chunk_overlap=10)], storage=storage)
        knowledge.add_sources()
        knowledge.add_sources()  # the same chunks again: upserts, not copies


@pytest.mark.parametrize("threshold", [0.0, 0.6, 0.7])
@pytest.mark.parametrize("limit", [1, 3, 10])
def test_same_results_as_crewais_knowledge_storage(reference, client, threshold, limit):
    lichen = LichenKnowledgeStorage.open("knowledge_support", client=client)
    both_learn(reference, lichen)
    for query in QUERIES:
        expected = reference.search(query, limit=limit, score_threshold=threshold)
        got = lichen.search(query, limit=limit, score_threshold=threshold)
        assert [(r["id"], r["content"], r["metadata"]) for r in got] == [
            (r["id"], r["content"], r["metadata"]) for r in expected
        ], query
        assert [r["score"] for r in got] == pytest.approx([r["score"] for r in expected], abs=1e-5)


def test_reset_empties_both(reference, client):
    lichen = LichenKnowledgeStorage.open("knowledge_support", client=client)
    both_learn(reference, lichen)
    for storage in (reference, lichen):
        storage.reset()
        assert storage.search(["refund"], score_threshold=0.0) == []
