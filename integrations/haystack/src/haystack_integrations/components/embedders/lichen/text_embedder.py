"""``LichenTextEmbedder``: embeds a query with a Lichen model, in process."""

from __future__ import annotations

import asyncio
from typing import Any

from haystack import component, default_from_dict, default_to_dict
from lichen import get_embedder

__all__ = ["LichenTextEmbedder"]


@component
class LichenTextEmbedder:
    """Embeds a string with Lichen's built-in model (all-MiniLM-L6-v2, 384-d, ONNX in
    process: no API key, no download) or a model built with ``lichen models build``.

    ```python
    from haystack_integrations.components.embedders.lichen import LichenTextEmbedder

    embedding = LichenTextEmbedder().run("refund policy")["embedding"]   # 384 floats, unit length
    ```

    The vector is the one a Lichen query computes for the same text (the model's query
    prompt first, and its query encoder: int8 for the built-in model, while documents are
    embedded by the float model), so this embedder feeds :class:`LichenEmbeddingRetriever`
    exactly as a Lichen query would.

    :param model_id: the Lichen model (``"lichen-minilm"``, or a built model's id).
    :param prefix: text put before the input (e.g. an instruction some models expect).
    :param suffix: text put after the input.
    """

    def __init__(self, model_id: str = "lichen-minilm", prefix: str = "", suffix: str = "") -> None:
        self.model_id = model_id
        self.prefix = prefix
        self.suffix = suffix

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(self, model_id=self.model_id, prefix=self.prefix, suffix=self.suffix)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LichenTextEmbedder:
        return default_from_dict(cls, data)

    def warm_up(self) -> None:
        """Load the model (shared by everything in the process that uses it; ~0.15 s once)."""
        get_embedder(self.model_id)

    @component.output_types(embedding=list[float], meta=dict[str, Any])
    def run(self, text: str) -> dict[str, Any]:
        """``{"embedding": [...], "meta": {"model": model_id}}`` for ``text``."""
        if not isinstance(text, str):
            raise TypeError(
                f"LichenTextEmbedder embeds one string, got {type(text).__name__}; "
                "a LichenDocumentStore embeds the documents written without an embedding"
            )
        vector = get_embedder(self.model_id).embed_queries([self.prefix + text + self.suffix])[0]
        return {"embedding": vector.tolist(), "meta": {"model": self.model_id}}

    @component.output_types(embedding=list[float], meta=dict[str, Any])
    async def run_async(self, text: str) -> dict[str, Any]:
        """As :meth:`run`, on a worker thread so the event loop keeps serving."""
        return await asyncio.to_thread(self.run, text)
