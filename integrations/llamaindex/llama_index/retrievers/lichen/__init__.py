"""Short-term plus long-term Lichen retrieval for LlamaIndex: ``LichenContextRetriever``."""

from llama_index.retrievers.lichen.base import SOURCE_KEY, LichenContextRetriever

__all__ = ["LichenContextRetriever", "SOURCE_KEY"]
