"""The search engine: documents column by column, one float32 matrix, exact and graph
search, the filter language, BM25 keyword scores and rank fusion. It never embeds text,
never touches disk or network: it adopts and produces :class:`~lichen.format.IndexSnapshot`
objects and answers queries given their vectors."""

from .core import APPROXIMATE_THRESHOLD, IndexCore, top_k_indices
from .filters import CompiledFilter, compile_filter, where_document_filter
from .fusion import (
    DEFAULT_ALPHA,
    DEFAULT_FUSION,
    DEFAULT_RRF_K,
    FUSION_CHOICES,
    FUSION_METHODS,
    fuse_rankings,
)
from .graph import VectorGraph
from .keyword import KeywordIndex

__all__ = [
    "APPROXIMATE_THRESHOLD",
    "CompiledFilter",
    "DEFAULT_ALPHA",
    "DEFAULT_FUSION",
    "DEFAULT_RRF_K",
    "FUSION_CHOICES",
    "FUSION_METHODS",
    "IndexCore",
    "KeywordIndex",
    "VectorGraph",
    "compile_filter",
    "fuse_rankings",
    "top_k_indices",
    "where_document_filter",
]
