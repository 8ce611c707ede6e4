"""``LichenEmbeddingRetriever``: Haystack's embedding retriever over a ``LichenDocumentStore``."""

from __future__ import annotations

from typing import Any

from haystack import Document, component

from ._base import RetrieverBase

__all__ = ["LichenEmbeddingRetriever"]


@component
class LichenEmbeddingRetriever(RetrieverBase):
    """Retrieves the documents closest to a query embedding, by cosine similarity.

    ```python
    from haystack_integrations.components.embedders.lichen import LichenTextEmbedder
    from haystack_integrations.components.retrievers.lichen import LichenEmbeddingRetriever

    embedding = LichenTextEmbedder().run("refund policy")["embedding"]
    LichenEmbeddingRetriever(document_store=store, top_k=3).run(query_embedding=embedding)["documents"]
    ```

    Pair it with :class:`LichenTextEmbedder` (the index's own model) or, on a
    ``model_id="custom"`` store, with the embedder that embedded the documents. Each
    document's ``score`` is the cosine similarity, results best first.

    :param document_store: the ``LichenDocumentStore`` to search.
    :param filters: Haystack filters applied to every run.
    :param top_k: how many documents to return at most.
    :param filter_policy: ``REPLACE`` (run-time filters replace ``filters``) or ``MERGE``
        (both apply).
    :param return_embedding: whether the returned documents carry their vectors.
    """

    @component.output_types(documents=list[Document])
    def run(
        self, query_embedding: list[float], filters: dict[str, Any] | None = None, top_k: int | None = None
    ) -> dict[str, list[Document]]:
        """The ``top_k`` documents closest to ``query_embedding`` that pass the filters."""
        filters, top_k = self._run_arguments(filters, top_k)
        documents = self.document_store.embedding_retrieval(
            query_embedding, filters=filters, top_k=top_k, return_embedding=self.return_embedding
        )
        return {"documents": documents}

    @component.output_types(documents=list[Document])
    async def run_async(
        self, query_embedding: list[float], filters: dict[str, Any] | None = None, top_k: int | None = None
    ) -> dict[str, list[Document]]:
        filters, top_k = self._run_arguments(filters, top_k)
        documents = await self.document_store.embedding_retrieval_async(
            query_embedding, filters=filters, top_k=top_k, return_embedding=self.return_embedding
        )
        return {"documents": documents}
