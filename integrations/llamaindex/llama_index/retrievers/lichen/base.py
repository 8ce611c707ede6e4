"""``LichenContextRetriever``: short-term session plus long-term indexes in one retriever.

Querying, merging, de-duplication and source attribution are
:class:`lichen.ContextSearch`'s, the code every Lichen framework adapter shares; this
module only turns its hits into LlamaIndex ``NodeWithScore`` objects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Dict, List, Optional

from lichen import Client, ContextHit, ContextSearch, QueryOptions, SessionIndex
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks import CallbackManager
from llama_index.core.schema import NodeWithScore, QueryBundle
from llama_index.vector_stores.lichen.nodes import document_to_node

__all__ = ["LichenContextRetriever", "SOURCE_KEY"]

#: Node metadata key naming where a hit came from: ``"session"`` for the short-term
#: session, otherwise the long-term index's name.
SOURCE_KEY = "lichen_source"


class LichenContextRetriever(BaseRetriever):
    """Retrieve from a live session and long-term indexes at once.

    Each source is queried for its best hits; the lists are fused (reciprocal rank by
    default), a document found in several sources is kept once, and every node carries
    ``metadata["lichen_source"]``: ``"session"`` or the index name. Node scores are the
    fused scores, descending.

    Setup::

        pip install llama-index-lichen

    Instantiate::

        from lichen import Client
        from llama_index.retrievers.lichen import LichenContextRetriever

        client = Client()
        session = client.session_sync("call-123")
        client.load_index_sync("product-docs")
        retriever = LichenContextRetriever(
            session=session, client=client, indexes=["product-docs"], k=4
        )

    Retrieve (sync, or async from a running event loop)::

        nodes = retriever.retrieve("when will my refund arrive?")
        nodes = await retriever.aretrieve("when will my refund arrive?")
        [(n.node.metadata["lichen_source"], n.score) for n in nodes]

    In a query engine::

        from llama_index.core.query_engine import RetrieverQueryEngine
        engine = RetrieverQueryEngine.from_args(retriever, llm=llm)

    ``source_k``, ``per_source_k``, ``method`` (``"rrf"`` or ``"score"``), ``weights``
    and ``options`` (a ``QueryOptions`` template, e.g. a filter or ``alpha``) are passed
    to :class:`lichen.ContextSearch`; see its documentation.

    Long-term indexes that other processes update (``auto_refresh=True``, and
    ``refresh_interval`` in seconds where the store cannot be waited on): each is loaded
    now with ``client.load_index(name, auto_refresh=True)``, or refreshed from now on if
    it is loaded already, so every retrieval sees the newest version that has arrived::

        retriever = LichenContextRetriever(session=session, client=client, indexes=["product-docs"], auto_refresh=True)
    """

    def __init__(
        self,
        session: Optional[SessionIndex] = None,
        client: Optional[Client] = None,
        indexes: Sequence[str] = (),
        k: int = 4,
        *,
        source_k: Optional[int] = None,
        per_source_k: Optional[Mapping[str, int]] = None,
        method: str = "rrf",
        weights: Optional[Mapping[str, float]] = None,
        options: Optional[QueryOptions] = None,
        callback_manager: Optional[CallbackManager] = None,
        object_map: Optional[Dict] = None,
        verbose: bool = False,
        auto_refresh: bool = False,
        refresh_interval: Optional[float] = None,
    ) -> None:
        self._search = ContextSearch(
            session,
            client,
            indexes,
            k=k,
            source_k=source_k,
            per_source_k=per_source_k,
            method=method,
            weights=weights,
            options=options,
        )
        if auto_refresh and client is not None:
            timing = {} if refresh_interval is None else {"interval": refresh_interval}
            for name in indexes:
                if name in client.loaded_names:
                    client.start_auto_refresh(name, **timing)
                else:
                    client.load_index_sync(name, auto_refresh=True, **timing)
        super().__init__(callback_manager=callback_manager, object_map=object_map, verbose=verbose)

    @property
    def search(self) -> ContextSearch:
        """The shared Lichen search this retriever runs."""
        return self._search

    @staticmethod
    def _to_node(hit: ContextHit) -> NodeWithScore:
        node = document_to_node(hit.doc.id, hit.doc.text, hit.doc.metadata)
        node.metadata[SOURCE_KEY] = hit.source
        if SOURCE_KEY not in node.excluded_embed_metadata_keys:
            node.excluded_embed_metadata_keys.append(SOURCE_KEY)
        return NodeWithScore(node=node, score=hit.score)

    def _retrieve(self, query_bundle: QueryBundle) -> List[NodeWithScore]:
        return [self._to_node(hit) for hit in self._search.search(query_bundle.query_str)]

    async def _aretrieve(self, query_bundle: QueryBundle) -> List[NodeWithScore]:
        return [self._to_node(hit) for hit in await self._search.asearch(query_bundle.query_str)]
