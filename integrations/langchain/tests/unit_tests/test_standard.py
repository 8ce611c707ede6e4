"""LangChain's standard unit tests for the embeddings class."""

from __future__ import annotations

from langchain_lichen import LichenEmbeddings
from langchain_tests.unit_tests import EmbeddingsUnitTests


class TestLichenEmbeddingsStandard(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[LichenEmbeddings]:
        return LichenEmbeddings

    @property
    def embedding_model_params(self) -> dict:
        return {"model_id": "lichen-minilm"}
