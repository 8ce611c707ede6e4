"""``LichenEmbedding``: Lichen's built-in embedding model as a LlamaIndex embedding.

The model runs in process on onnxruntime (no API key, no download); async calls run it
in a worker thread so the event loop keeps serving while it computes.
"""

from __future__ import annotations

import asyncio
from typing import Any, List, Optional

from lichen import get_embedder
from lichen.models import embed_documents, embed_queries
from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.bridge.pydantic import Field, PrivateAttr

__all__ = ["LichenEmbedding"]

DEFAULT_MODEL = "lichen-minilm"


class LichenEmbedding(BaseEmbedding):
    """Lichen's shipped model (``"lichen-minilm"``: all-MiniLM-L6-v2, 384-d, unit
    vectors, 256 tokens max) for LlamaIndex.

    Setup::

        pip install llama-index-lichen

    Use::

        from llama_index.embeddings.lichen import LichenEmbedding

        embed_model = LichenEmbedding()
        embed_model.get_query_embedding("refund policy")          # 384 floats
        embed_model.get_text_embedding_batch(["a", "b"])           # batched
        await embed_model.aget_query_embedding("refund policy")    # off the event loop

    With a ``LichenVectorStore`` over the same model, vectors computed here and vectors
    Lichen computes itself are identical for identical text. Note that LlamaIndex
    embeds a node's metadata together with its text (``MetadataMode.EMBED``) while
    LangChain embeds ``page_content`` only, so one document gets different vectors
    through each framework.
    """

    model_name: str = Field(default=DEFAULT_MODEL, description="A Lichen model id: built in, built or pulled.")
    embed_batch_size: int = Field(default=64, gt=0, le=2048, description="Texts per model call.")
    query_prompt: Optional[str] = Field(
        default=None, description="Put before every query instead of the model's query prompt (None: the model's)."
    )
    passage_prompt: Optional[str] = Field(
        default=None, description="Put before every text instead of the model's passage prompt (None: the model's)."
    )

    _embedder: Any = PrivateAttr()

    def __init__(self, model_name: str = DEFAULT_MODEL, **kwargs: Any) -> None:
        super().__init__(model_name=model_name, **kwargs)
        embedder = get_embedder(model_name)
        if self.query_prompt is not None or self.passage_prompt is not None:
            embedder = embedder.with_prompts(query=self.query_prompt, passage=self.passage_prompt)
        self._embedder = embedder

    @classmethod
    def class_name(cls) -> str:
        return "LichenEmbedding"

    @property
    def dimension(self) -> int:
        return int(self._embedder.dimension)

    def _embed(self, texts: List[str]) -> List[Embedding]:
        """Texts to store: the model's passage prompt first."""
        return embed_documents(self._embedder, texts).tolist()

    def _embed_queries(self, queries: List[str]) -> List[Embedding]:
        """Queries: the model's query prompt first."""
        return embed_queries(self._embedder, queries).tolist()

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._embed_queries([query])[0]

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._embed([text])[0]

    def _get_text_embeddings(self, texts: List[str]) -> List[Embedding]:
        return self._embed(texts)

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return (await asyncio.to_thread(self._embed_queries, [query]))[0]

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return (await asyncio.to_thread(self._embed, [text]))[0]

    async def _aget_text_embeddings(self, texts: List[str]) -> List[Embedding]:
        return await asyncio.to_thread(self._embed, texts)
