"""LlamaIndex vector store over a Lichen index: ``LichenVectorStore``."""

from llama_index.vector_stores.lichen.base import HYBRID_DEFAULT_ALPHA, SCORE_KEYS, LichenVectorStore
from llama_index.vector_stores.lichen.filters import OPERATOR_MAP, to_lichen_filter

__all__ = ["LichenVectorStore", "to_lichen_filter", "OPERATOR_MAP", "HYBRID_DEFAULT_ALPHA", "SCORE_KEYS"]
