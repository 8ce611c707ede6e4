"""LlamaIndex vector store over a Lichen index: ``LichenVectorStore``."""

from llama_index.vector_stores.lichen.base import LichenVectorStore
from llama_index.vector_stores.lichen.filters import OPERATOR_MAP, to_lichen_filter

__all__ = ["LichenVectorStore", "to_lichen_filter", "OPERATOR_MAP"]
