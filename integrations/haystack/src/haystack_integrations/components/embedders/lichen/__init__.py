"""Haystack embedders running Lichen's models in process."""

from .text_embedder import LichenTextEmbedder

__all__ = ["LichenTextEmbedder"]
