"""``LichenBM25Retriever``: Haystack's keyword retriever over a ``LichenDocumentStore``."""

from __future__ import annotations

from typing import Any

from haystack import Document, component

from ._base import RetrieverBase

__all__ = ["LichenBM25Retriever"]


@component
class LichenBM25Retriever(RetrieverBase):
    """Retrieves the documents that best match a query's words, by BM25.

    ```python
    from haystack_integrations.components.retrievers.lichen import LichenBM25Retriever

    LichenBM25Retriever(document_store=store, top_k=3).run(query="refund")["documents"]
    ```

    Lichen's keyword index lower-cases, folds accents, drops stop words and stems, with
    k1 = 1.2 and b = 0.75. Each document's ``score`` is its BM25 score, results best
    first; documents sharing no word with the query are not returned.

    :param document_store: the ``LichenDocumentStore`` to search.
    :param filters: Haystack filters applied to every run.
    :param top_k: how many documents to return at most.
    :param filter_policy: ``REPLACE`` (run-time filters replace ``filters``) or ``MERGE``
        (both apply).
    :param return_embedding: whether the returned documents carry their vectors.
    """

    @component.output_types(documents=list[Document])
    def run(self, query: str, filters: dict[str, Any] | None = None, top_k: int | None = None) -> dict[str, list[Document]]:
        """The ``top_k`` documents that best match ``query`` and pass the filters."""
        filters, top_k = self._run_arguments(filters, top_k)
        documents = self.document_store.bm25_retrieval(
            query, filters=filters, top_k=top_k, return_embedding=self.return_embedding
        )
        return {"documents": documents}

    @component.output_types(documents=list[Document])
    async def run_async(
        self, query: str, filters: dict[str, Any] | None = None, top_k: int | None = None
    ) -> dict[str, list[Document]]:
        filters, top_k = self._run_arguments(filters, top_k)
        documents = await self.document_store.bm25_retrieval_async(
            query, filters=filters, top_k=top_k, return_embedding=self.return_embedding
        )
        return {"documents": documents}
