"""``LichenEmbeddings``: Lichen's shipped embedding model as a LangChain ``Embeddings``."""

from __future__ import annotations

import asyncio
from typing import Any

from langchain_core.embeddings import Embeddings
from lichen import get_embedder
from lichen.models import DEFAULT_MODEL_ID, Embedder, embed_documents, embed_queries
from pydantic import BaseModel, ConfigDict, PrivateAttr

__all__ = ["LichenEmbeddings"]

# Below this many texts an embed takes a few milliseconds: cheaper inline than a hop to a
# worker thread. Larger batches leave the event loop free while the model runs.


class LichenEmbeddings(BaseModel, Embeddings):
    """Lichen's built-in, offline sentence-embedding model for any LangChain component.

    The default model, `"lichen-minilm"` (all-MiniLM-L6-v2: 384 dimensions, mean pooled,
    L2-normalised, at most 256 tokens), ships inside the `lichen` package: no API key, no
    download, no network. It is loaded once per process and shared with every Lichen index
    that uses it.

    Setup:
        ```bash
        pip install langchain-lichen
        ```

    Key init args:
        model_id: a Lichen model id (default `"lichen-minilm"`; or one pulled with
            `lichen models pull`, e.g. `"bge-small-en-v1.5"`).
        query_prompt / passage_prompt: override the model's prompts (`None`: the
            model's own, e.g. e5's `"query: "` / `"passage: "`; `""`: none).

    Instantiate:
        ```python
        from langchain_lichen import LichenEmbeddings

        embeddings = LichenEmbeddings()
        ```

    Embed a query:
        ```python
        vector = embeddings.embed_query("how long does a refund take?")
        assert len(vector) == embeddings.dimension == 384
        ```

    Embed documents:
        ```python
        vectors = embeddings.embed_documents(["refunds take 5 days", "reset your password"])
        assert len(vectors) == 2 and isinstance(vectors[0][0], float)
        ```

    Async:
        ```python
        vector = await embeddings.aembed_query("how long does a refund take?")
        vectors = await embeddings.aembed_documents(["refunds take 5 days"])
        ```

    Vectors are lists of plain Python `float` of unit length, so a dot product is the
    cosine similarity. Given to `LichenVectorStore`, this class lets the store's Lichen
    index embed with the same model itself: no vectors cross the adapter.
    """

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model_id: str = DEFAULT_MODEL_ID
    """A Lichen model id: built in, built or pulled."""
    query_prompt: str | None = None
    """Put before every query instead of the model's query prompt (`None`: the model's)."""
    passage_prompt: str | None = None
    """Put before every document instead of the model's passage prompt (`None`: the model's)."""

    _embedder: Embedder = PrivateAttr()

    def model_post_init(self, __context: Any) -> None:
        # Resolve the model now, so an unknown id fails at construction
        # (lichen.ModelUnavailableError), not at the first embed.
        embedder = get_embedder(self.model_id)
        if self.query_prompt is not None or self.passage_prompt is not None:
            embedder = embedder.with_prompts(query=self.query_prompt, passage=self.passage_prompt)  # type: ignore[attr-defined]
        self._embedder = embedder

    @property
    def dimension(self) -> int:
        """Length of every vector this model returns."""
        return self._embedder.dimension

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed texts for storage (the model's passage prompt first): one list of floats
        per text."""
        if not texts:
            return []
        return embed_documents(self._embedder, texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        """Embed one query text (the model's query prompt first)."""
        return embed_queries(self._embedder, [text])[0].tolist()

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        # On a worker thread: even a few texts can take tens of milliseconds on a busy
        # machine, which an event loop serving live traffic cannot spare.
        return await asyncio.to_thread(self.embed_documents, texts)

    async def aembed_query(self, text: str) -> list[float]:
        return await asyncio.to_thread(self.embed_query, text)
