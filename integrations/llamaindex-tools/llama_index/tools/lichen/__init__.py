"""LlamaIndex tool spec for Lichen: query, add and delete, as agent tools."""

from llama_index.tools.lichen.base import LichenToolSpec

__all__ = ["LichenToolSpec"]
