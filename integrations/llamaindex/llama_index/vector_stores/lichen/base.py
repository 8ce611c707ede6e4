"""``LichenVectorStore``: a LlamaIndex vector store over a Lichen index.

The store translates (nodes to documents, ``VectorStoreQuery`` to ``QueryOptions``,
``MetadataFilters`` to Lichen filters) and delegates everything else to the
:class:`lichen.SessionIndex` it wraps: search, filtering, hybrid scoring and persistence.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple

from lichen import InvalidArgumentError, PushIndexResult, QueryOptions, SearchResult, SessionIndex
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.schema import BaseNode
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)

from .filters import to_lichen_filter
from .nodes import NODE_ID_KEY, REF_DOC_ID_KEY, document_to_node, nodes_to_documents

__all__ = ["LichenVectorStore"]

_VECTOR_MODES = (VectorStoreQueryMode.DEFAULT,)
_KEYWORD_MODES = (VectorStoreQueryMode.TEXT_SEARCH, VectorStoreQueryMode.SPARSE)
_HYBRID_MODES = (VectorStoreQueryMode.HYBRID,)


class LichenVectorStore(BasePydanticVectorStore):
    """LlamaIndex vector store backed by a Lichen index, in process.

    Setup::

        pip install llama-index-lichen

    Instantiate (no arguments: a fresh in-memory session with Lichen's built-in
    384-d model; or wrap any ``SessionIndex``)::

        from lichen import Client
        from llama_index.vector_stores.lichen import LichenVectorStore

        store = LichenVectorStore()
        client = Client()
        store = LichenVectorStore(client.session_sync("handbook"))   # pushable
        store = LichenVectorStore(client.load_index_sync("archive"))  # long-term, read-only
        store = LichenVectorStore(model_id="custom")                  # any embed_model's vectors

    Index and query::

        from llama_index.core import StorageContext, VectorStoreIndex
        from llama_index.embeddings.lichen import LichenEmbedding

        index = VectorStoreIndex.from_documents(
            documents,
            storage_context=StorageContext.from_defaults(vector_store=store),
            embed_model=LichenEmbedding(),
        )
        index = VectorStoreIndex.from_vector_store(store, embed_model=LichenEmbedding())
        nodes = index.as_retriever(similarity_top_k=3).retrieve("refund policy")

    Filter (every ``FilterOperator`` and ``FilterCondition``, nestable)::

        from llama_index.core.vector_stores import MetadataFilter, MetadataFilters
        filters = MetadataFilters(filters=[MetadataFilter(key="year", value=2020, operator=">=")])
        index.as_retriever(filters=filters).retrieve("refund policy")

    Hybrid (opt-in; ``alpha`` 1.0 is pure vector, 0.0 pure BM25 keyword)::

        index.as_retriever(vector_store_query_mode="hybrid", alpha=0.5)

    Delete::

        store.delete(ref_doc_id="doc-1")          # every node of that document
        store.delete_nodes(["node-1"])             # or filters=MetadataFilters(...)
        store.clear()

    Async: ``async_add``, ``aquery``, ``adelete``, ``adelete_nodes``, ``aget_nodes``,
    ``aclear``; embedding work runs off the event loop.

    Persist through Lichen (``StorageContext.persist`` writes no vectors)::

        store.push()                 # a session opened with client.session(name)
        store.save("handbook.lichen")
        store = LichenVectorStore.open("handbook.lichen")
    """

    stores_text: bool = True
    is_embedding_query: bool = True

    _index: SessionIndex = PrivateAttr()

    def __init__(
        self,
        index: Optional[SessionIndex] = None,
        *,
        model_id: Optional[str] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if index is None:
            index = SessionIndex() if model_id is None else SessionIndex(model_id=model_id)
        elif not isinstance(index, SessionIndex):
            raise InvalidArgumentError(
                f"index must be a lichen.SessionIndex (client.session / client.load_index), got {type(index).__name__}"
            )
        elif model_id is not None and model_id != index.model_id:
            raise InvalidArgumentError(f"model_id {model_id!r} differs from the index's model {index.model_id!r}")
        self._index = index

    @classmethod
    def class_name(cls) -> str:
        return "LichenVectorStore"

    @classmethod
    def open(cls, path: str | Path, *, name: Optional[str] = None) -> "LichenVectorStore":
        """A store over the file written by :meth:`save` (no re-embedding)."""
        return cls(SessionIndex.open(path, name=name))

    @property
    def client(self) -> SessionIndex:
        """The Lichen index underneath."""
        return self._index

    @property
    def index(self) -> SessionIndex:
        return self._index

    def __repr__(self) -> str:
        return f"LichenVectorStore({self._index!r})"

    # ------------------------------------------------------------------ translation
    def _query_options(self, query: VectorStoreQuery) -> Tuple[str, QueryOptions]:
        mode = VectorStoreQueryMode(query.mode)
        top_k = query.similarity_top_k
        if mode in _VECTOR_MODES:
            alpha: Optional[float] = 1.0
        elif mode in _HYBRID_MODES:
            alpha = query.alpha  # None: Lichen's measured default
            top_k = query.hybrid_top_k or top_k
        elif mode in _KEYWORD_MODES:
            alpha = 0.0
            top_k = query.sparse_top_k or top_k
        else:
            supported = ", ".join(m.value for m in _VECTOR_MODES + _HYBRID_MODES + _KEYWORD_MODES)
            raise InvalidArgumentError(f"query mode {mode.value!r} is not supported by LichenVectorStore; use {supported}")
        if query.query_embedding is None and query.query_str is None:
            raise InvalidArgumentError("the query needs a query_embedding or a query_str")
        options = QueryOptions(
            top_k=top_k,
            filter=self._restriction(query.filters, query.node_ids, query.doc_ids),
            alpha=alpha,
            embedding=query.query_embedding,
        )
        return query.query_str or "", options

    @staticmethod
    def _restriction(
        filters: Optional[MetadataFilters],
        node_ids: Optional[List[str]],
        doc_ids: Optional[List[str]],
    ) -> Optional[dict]:
        # An empty node_ids / doc_ids list means "no restriction": VectorStoreIndex's
        # as_retriever passes node_ids=[] for a store that keeps its own nodes.
        parts = []
        spec = to_lichen_filter(filters)
        if spec is not None:
            parts.append(spec)
        if node_ids:
            parts.append({NODE_ID_KEY: {"$in": list(node_ids)}})
        if doc_ids:
            parts.append({REF_DOC_ID_KEY: {"$in": list(doc_ids)}})
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else {"$and": parts}

    @staticmethod
    def _result(result: SearchResult) -> VectorStoreQueryResult:
        # Lichen returns hits sorted by score, descending: scores stay monotonic with
        # order, which QueryFusionRetriever's re-sorting relies on.
        return VectorStoreQueryResult(
            nodes=[document_to_node(doc.id, doc.text, doc.metadata) for doc in result.docs],
            similarities=[doc.score for doc in result.docs],
            ids=[doc.id for doc in result.docs],
        )

    @staticmethod
    def _selection(node_ids: Optional[List[str]], filters: Optional[MetadataFilters]) -> Tuple[Optional[List[str]], Optional[dict]]:
        if isinstance(node_ids, str):
            raise InvalidArgumentError("node_ids must be a list of ids, not one string")
        return (list(node_ids) if node_ids is not None else None), to_lichen_filter(filters)

    @staticmethod
    def _check_delete_selection(node_ids: Optional[List[str]], filters: Optional[MetadataFilters]) -> None:
        if node_ids is None and filters is None:
            raise InvalidArgumentError("delete_nodes needs node_ids or filters; use clear() to delete every node")

    # ------------------------------------------------------------------ sync API
    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> List[str]:
        """Upsert nodes by id (node ids are kept); nodes without an embedding are
        embedded by the index's model from their text."""
        self._index.add_docs_sync(nodes_to_documents(nodes))
        return [node.node_id for node in nodes]

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node of the source document ``ref_doc_id``."""
        doomed = self._index.get_docs_sync(filter={REF_DOC_ID_KEY: ref_doc_id})
        self._index.delete_docs_sync([doc.id for doc in doomed])

    def delete_nodes(
        self,
        node_ids: Optional[List[str]] = None,
        filters: Optional[MetadataFilters] = None,
        **delete_kwargs: Any,
    ) -> None:
        """Delete the nodes that are in ``node_ids`` (if given) and match ``filters`` (if given)."""
        self._check_delete_selection(node_ids, filters)
        ids, spec = self._selection(node_ids, filters)
        if spec is not None or ids is None:
            ids = [doc.id for doc in self._index.get_docs_sync(ids, spec)]
        self._index.delete_docs_sync(ids)

    def get_nodes(
        self,
        node_ids: Optional[List[str]] = None,
        filters: Optional[MetadataFilters] = None,
    ) -> List[BaseNode]:
        """Nodes by id (in the order asked, unknown ids skipped) and/or by filter; all
        nodes when neither is given."""
        ids, spec = self._selection(node_ids, filters)
        return [document_to_node(doc.id, doc.text, doc.metadata) for doc in self._index.get_docs_sync(ids, spec)]

    def clear(self) -> None:
        self._index.clear_sync()

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        text, options = self._query_options(query)
        return self._result(self._index.query_sync(text, options))

    # ------------------------------------------------------------------ async API
    async def async_add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> List[str]:
        await self._index.add_docs(nodes_to_documents(nodes))  # embeds on a worker thread
        return [node.node_id for node in nodes]

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        doomed = await self._index.get_docs(filter={REF_DOC_ID_KEY: ref_doc_id})
        await self._index.delete_docs([doc.id for doc in doomed])

    async def adelete_nodes(
        self,
        node_ids: Optional[List[str]] = None,
        filters: Optional[MetadataFilters] = None,
        **delete_kwargs: Any,
    ) -> None:
        self._check_delete_selection(node_ids, filters)
        ids, spec = self._selection(node_ids, filters)
        if spec is not None or ids is None:
            ids = [doc.id for doc in await self._index.get_docs(ids, spec)]
        await self._index.delete_docs(ids)

    async def aget_nodes(
        self,
        node_ids: Optional[List[str]] = None,
        filters: Optional[MetadataFilters] = None,
    ) -> List[BaseNode]:
        ids, spec = self._selection(node_ids, filters)
        return [document_to_node(doc.id, doc.text, doc.metadata) for doc in await self._index.get_docs(ids, spec)]

    async def aclear(self) -> None:
        await self._index.clear()

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        text, options = self._query_options(query)
        return self._result(await self._index.query(text, options))  # on a worker thread

    # ------------------------------------------------------------------ persistence
    def persist(self, persist_path: str, fs: Any = None) -> None:
        """Does nothing: a Lichen store is persisted by Lichen, with :meth:`push` (to
        the client's store) or :meth:`save` (one local file), not as LlamaIndex JSON."""
        return None

    def push(self, *, overwrite: bool = False) -> PushIndexResult:
        """Store the index under its name (needs a session from ``client.session``)."""
        return self._index.push_index_sync(overwrite=overwrite)

    async def apush(self, *, overwrite: bool = False) -> PushIndexResult:
        return await self._index.push_index(overwrite=overwrite)

    def save(self, path: str | Path) -> None:
        """Write the whole index, embeddings included, to one file (atomically)."""
        self._index.save(path)
