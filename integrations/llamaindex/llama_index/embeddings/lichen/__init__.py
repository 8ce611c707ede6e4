"""Lichen's built-in embedding model for LlamaIndex: ``LichenEmbedding``."""

from llama_index.embeddings.lichen.base import LichenEmbedding

__all__ = ["LichenEmbedding"]
