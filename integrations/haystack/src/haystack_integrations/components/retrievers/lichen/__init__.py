"""Haystack retrievers over a ``LichenDocumentStore``: by embedding and by BM25 keywords."""

from .bm25_retriever import LichenBM25Retriever
from .embedding_retriever import LichenEmbeddingRetriever

__all__ = ["LichenBM25Retriever", "LichenEmbeddingRetriever"]
