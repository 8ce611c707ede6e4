"""LangChain's standard integration suites: the vector store (sync and async, with a
foreign 6-dimensional embedding and with Lichen's own model), both retrievers, and the
embeddings."""

from __future__ import annotations

from collections.abc import Generator

import pytest
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from langchain_lichen import (
    LichenContextRetriever,
    LichenEmbeddings,
    LichenRetriever,
    LichenVectorStore,
)
from langchain_tests.integration_tests import (
    EmbeddingsIntegrationTests,
    RetrieversIntegrationTests,
    VectorStoreIntegrationTests,
)
from lichen import Client, DocumentInfo, SessionIndex

TURNS = [
    DocumentInfo(id="turn-1", text="Customer: I was charged twice for my subscription.", metadata={"speaker": "customer"}),
    DocumentInfo(id="turn-2", text="Agent: I see two payments on the 3rd of the month.", metadata={"speaker": "agent"}),
    DocumentInfo(id="turn-3", text="Customer: please refund the duplicate charge.", metadata={"speaker": "customer"}),
]
FAQS = [
    DocumentInfo(id="faq-1", text="Duplicate charges are refunded within 5 business days.", metadata={"topic": "billing"}),
    DocumentInfo(id="faq-2", text="You can reset your password from the login page.", metadata={"topic": "account"}),
    DocumentInfo(id="faq-3", text="Invoices are emailed on the first day of each month.", metadata={"topic": "billing"}),
]


class TestLichenVectorStoreCustomEmbeddings(VectorStoreIntegrationTests):
    """The suite's own 6-dimensional fake embeddings: a ``model_id="custom"`` session."""

    @pytest.fixture
    def vectorstore(self) -> Generator[VectorStore, None, None]:  # type: ignore[override]
        store = LichenVectorStore(self.get_embeddings())
        try:
            yield store
        finally:
            store.delete(delete_all=True)


class TestLichenVectorStoreBuiltinModel(VectorStoreIntegrationTests):
    """The same suite with Lichen's shipped model: the session embeds by itself."""

    @staticmethod
    def get_embeddings() -> Embeddings:
        return LichenEmbeddings()

    @pytest.fixture
    def vectorstore(self, client: Client) -> Generator[VectorStore, None, None]:  # type: ignore[override]
        store = LichenVectorStore(self.get_embeddings(), index=client.session_sync("standard-suite"))
        try:
            yield store
        finally:
            store.delete(delete_all=True)


class TestLichenRetrieverStandard(RetrieversIntegrationTests):
    @pytest.fixture(autouse=True, scope="class")
    @classmethod
    def _index(cls) -> None:
        cls.index = SessionIndex("call-standard")
        cls.index.add_docs_sync(TURNS + FAQS)

    @property
    def retriever_constructor(self) -> type[LichenRetriever]:
        return LichenRetriever

    @property
    def retriever_constructor_params(self) -> dict:
        return {"index": self.index, "k": 2}

    @property
    def retriever_query_example(self) -> str:
        return "refund for a double charge"


class TestLichenContextRetrieverStandard(RetrieversIntegrationTests):
    @pytest.fixture(autouse=True, scope="class")
    @classmethod
    def _sources(cls, tmp_path_factory: pytest.TempPathFactory) -> None:
        client = Client(home=tmp_path_factory.mktemp("lichen-home"))
        client.create_index_sync("support-faqs", FAQS)
        client.load_index_sync("support-faqs")
        session = client.session_sync("call-standard")
        session.add_docs_sync(TURNS)
        cls.sources = {"session": session, "client": client, "indexes": ["support-faqs"]}

    @property
    def retriever_constructor(self) -> type[LichenContextRetriever]:
        return LichenContextRetriever

    @property
    def retriever_constructor_params(self) -> dict:
        return {**self.sources, "k": 2}

    @property
    def retriever_query_example(self) -> str:
        return "refund for a double charge"


class TestLichenEmbeddingsIntegration(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[LichenEmbeddings]:
        return LichenEmbeddings
