"""``LichenVectorStore``: a LlamaIndex vector store over a Lichen index.

The store translates (nodes to documents, ``VectorStoreQuery`` to ``QueryOptions``,
``MetadataFilters`` to Lichen filters, Lichen hits to nodes scored on one [0, 1] scale)
and delegates everything else to the :class:`lichen.SessionIndex` it wraps: search,
filtering, hybrid scoring and persistence. MMR selection is llama-index-core's own
``get_top_k_mmr_embeddings``, as in ``SimpleVectorStore``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from lichen import Client, InvalidArgumentError, PushIndexResult, QueryOptions, QueryResultDocument, SessionIndex
from lichen.filters import where_document_filter
from lichen.models import DEFAULT_MODEL_ID
from lichen.scores import relevance
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.indices.query.embedding_utils import get_top_k_mmr_embeddings
from llama_index.core.schema import BaseNode
from llama_index.core.storage.storage_context import IMAGE_VECTOR_STORE_NAMESPACE, StorageContext
from llama_index.core.vector_stores.simple import DEFAULT_PERSIST_FNAME, DEFAULT_VECTOR_STORE, NAMESPACE_SEP
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)

from .filters import to_lichen_filter
from .nodes import NODE_ID_KEY, REF_DOC_ID_KEY, document_to_node, nodes_to_documents
from .storage import read_index, write_index

__all__ = ["LichenVectorStore", "HYBRID_DEFAULT_ALPHA", "SCORE_KEYS"]

_VECTOR_MODES = (VectorStoreQueryMode.DEFAULT,)
_KEYWORD_MODES = (VectorStoreQueryMode.TEXT_SEARCH, VectorStoreQueryMode.SPARSE)
_HYBRID_MODES = (VectorStoreQueryMode.HYBRID,)
_MMR_MODES = (VectorStoreQueryMode.MMR,)

#: ``alpha`` of HYBRID mode when the query leaves it ``None``. Asking for hybrid is asking
#: for a blend, so it is below 1. Measured through this store on msmarco-5k (43 judged
#: queries, ``benchmarks/eval_llamaindex_hybrid.py``, ``benchmarks/RESULTS.md``): every
#: alpha from 0.65 to 0.85 scores at or above pure vector search (nDCG@10 .7977), peaking
#: at 0.7 (.8011) and 0.85 (.8015); 0.7 is the middle of that plateau (best mean over
#: itself and its 0.05 neighbours) and gives BM25 a weight the ranking visibly feels.
HYBRID_DEFAULT_ALPHA = 0.7
#: Candidates fetched per requested node before MMR selection (``mmr_prefetch_factor``).
MMR_PREFETCH_FACTOR = 4
#: Node metadata keys holding the raw parts of a hit's score (the node's own score is the
#: [0, 1] relevance of :mod:`lichen.scores`): the score the engine sorted by, the cosine,
#: the BM25 score and, in MMR mode, llama-index-core's MMR score. Excluded from the text
#: LlamaIndex embeds and shows the LLM.
SCORE_KEYS = {
    "score": "lichen_score",
    "vector": "lichen_vector_score",
    "keyword": "lichen_keyword_score",
    "mmr": "lichen_mmr_score",
    "rerank": "lichen_rerank_score",
}
_QUERY_KWARGS = frozenset(
    {"mmr_threshold", "mmr_prefetch_k", "mmr_prefetch_factor", "where_document", "rerank", "rerank_candidates"}
)


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

    Hybrid (opt-in; ``alpha`` 1.0 is pure vector, 0.0 pure BM25 keyword; left out it
    is ``HYBRID_DEFAULT_ALPHA``, 0.7, measured on msmarco-5k)::

        index.as_retriever(vector_store_query_mode="hybrid", alpha=0.5)

    MMR (llama-index-core's ``get_top_k_mmr_embeddings`` over Lichen's best
    ``mmr_prefetch_factor`` x ``similarity_top_k`` candidates, default 4)::

        index.as_retriever(vector_store_query_mode="mmr", vector_store_kwargs={"mmr_threshold": 0.5})

    Scores: every mode returns one [0, 1] scale (``lichen.scores``): ``(1 + cosine) / 2``
    for vector and MMR results, reciprocal-rank fusion rescaled so 1 is "first in both
    rankings" for hybrid and keyword results. The raw parts are in node metadata
    (``SCORE_KEYS``: ``lichen_score``, ``lichen_vector_score``, ``lichen_keyword_score``,
    ``lichen_mmr_score``, ``lichen_rerank_score``).

    Re-ranking (off by default): the engine re-scores its best ``rerank_candidates``
    (default 20) with a cross-encoder pulled by ``lichen models pull
    ms-marco-MiniLM-L-6-v2`` and returns the best ``similarity_top_k`` by it; scores are
    then its relevance in [0, 1] (raw in ``lichen_rerank_score``); it needs the query
    text and does not combine with MMR::

        index.as_retriever(vector_store_kwargs={"rerank": "ms-marco-MiniLM-L-6-v2", "rerank_candidates": 20})

    Filter on the text itself (Chroma's ``where_document``), with or without filters::

        index.as_retriever(vector_store_kwargs={"where_document": {"$contains": "refund"}})

    Delete::

        store.delete(ref_doc_id="doc-1")          # every node of that document
        store.delete_nodes(["node-1"])             # or filters=MetadataFilters(...)
        store.clear()

    Async: ``async_add``, ``aquery``, ``adelete``, ``adelete_nodes``, ``aget_nodes``,
    ``aclear``; embedding work runs off the event loop.

    Persist with LlamaIndex's ``StorageContext`` (the whole index, embeddings included,
    one Lichen artifact at ``persist_dir/default__vector_store.lix``, named by the
    manifest ``default__vector_store.json``)::

        index = VectorStoreIndex(nodes, storage_context=store.storage_context(), embed_model=LichenEmbedding())
        index.storage_context.persist(persist_dir="./storage")
        store = LichenVectorStore.from_persist_dir("./storage")
        index = load_index_from_storage(store.storage_context("./storage"), embed_model=LichenEmbedding())

    ``store.storage_context(persist_dir=None)`` is ``StorageContext.from_defaults(
    vector_store=store, persist_dir=...)`` without the empty image store LlamaIndex adds
    (persisted as an unused ``image__vector_store.json``). The bare
    ``StorageContext.from_defaults(persist_dir=...)`` reads every ``*vector_store.json``
    as a ``SimpleVectorStore`` and stops with an error saying how to load this one.

    or through Lichen::

        store.push()                 # a session opened with client.session(name)
        store.save("handbook.lichen")
        store = LichenVectorStore.open("handbook.lichen")

    ``to_dict()`` / ``from_dict()`` keep which index the store points at: its name and
    model, and the file it was persisted to or opened from (reopened by ``from_dict``);
    ``from_dict(data, client=client)`` reopens the named index through a ``Client``
    instead (a session, or the loaded long-term index for a read-only store).
    """

    stores_text: bool = True
    is_embedding_query: bool = True
    index_name: str = "session"
    """Name of the wrapped Lichen index."""
    model_id: str = DEFAULT_MODEL_ID
    """Embedding model of the wrapped index."""
    read_only: bool = False
    """Whether the wrapped index is a loaded long-term (read-only) index."""
    persist_path: Optional[str] = None
    """The file this store was last persisted to or opened from."""

    _index: SessionIndex = PrivateAttr()

    def __init__(
        self,
        index: Optional[SessionIndex] = None,
        *,
        model_id: Optional[str] = None,
        client: Optional[Client] = None,
        **kwargs: Any,
    ) -> None:
        if index is None:
            index = _reopen(client, model_id, kwargs)
        elif not isinstance(index, SessionIndex):
            raise InvalidArgumentError(
                f"index must be a lichen.SessionIndex (client.session / client.load_index), got {type(index).__name__}"
            )
        elif model_id is not None and model_id != index.model_id:
            raise InvalidArgumentError(f"model_id {model_id!r} differs from the index's model {index.model_id!r}")
        kwargs.update(index_name=index.name, model_id=index.model_id, read_only=index.read_only)
        super().__init__(**kwargs)
        self._index = index

    @classmethod
    def class_name(cls) -> str:
        return "LichenVectorStore"

    @classmethod
    def open(cls, path: str | Path, *, name: Optional[str] = None) -> "LichenVectorStore":
        """A store over the file written by :meth:`save` or :meth:`persist` (no
        re-embedding)."""
        return cls(read_index(str(path), name=name), persist_path=str(path))

    @classmethod
    def from_persist_path(cls, persist_path: str, fs: Any = None) -> "LichenVectorStore":
        """The store :meth:`persist` wrote to ``persist_path`` (an ``fsspec`` file system
        ``fs`` reads it from there instead of the local disk)."""
        return cls(read_index(persist_path, fs), persist_path=persist_path)

    @classmethod
    def from_persist_dir(
        cls, persist_dir: str = "./storage", namespace: str = DEFAULT_VECTOR_STORE, fs: Any = None
    ) -> "LichenVectorStore":
        """The store ``StorageContext.persist(persist_dir)`` wrote under ``namespace``."""
        name = f"{namespace}{NAMESPACE_SEP}{DEFAULT_PERSIST_FNAME}"
        path = f"{persist_dir.rstrip('/')}/{name}" if fs is not None else os.path.join(persist_dir, name)
        return cls.from_persist_path(path, fs=fs)

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
    def _query_options(self, query: VectorStoreQuery, kwargs: Dict[str, Any]) -> Tuple[str, QueryOptions, Optional["_MMR"]]:
        """``(text, options, mmr)``: what to ask Lichen, and the MMR step to run on its
        hits (``None`` outside MMR mode)."""
        unknown = sorted(set(kwargs) - _QUERY_KWARGS)
        if unknown:
            raise InvalidArgumentError(
                f"LichenVectorStore.query() does not support {', '.join(unknown)}; it accepts {', '.join(sorted(_QUERY_KWARGS))}"
            )
        mode = VectorStoreQueryMode(query.mode)
        top_k = query.similarity_top_k
        mmr = None
        if mode in _VECTOR_MODES:
            alpha: Optional[float] = 1.0
        elif mode in _HYBRID_MODES:
            alpha = HYBRID_DEFAULT_ALPHA if query.alpha is None else query.alpha
            top_k = query.hybrid_top_k or top_k
        elif mode in _KEYWORD_MODES:
            alpha = 0.0
            top_k = query.sparse_top_k or top_k
        elif mode in _MMR_MODES:
            alpha = 1.0
            mmr = _MMR.from_query(query, kwargs)
            top_k = mmr.fetch_k
        else:
            supported = ", ".join(m.value for m in _VECTOR_MODES + _HYBRID_MODES + _KEYWORD_MODES + _MMR_MODES)
            raise InvalidArgumentError(f"query mode {mode.value!r} is not supported by LichenVectorStore; use {supported}")
        if query.query_embedding is None and query.query_str is None:
            raise InvalidArgumentError("the query needs a query_embedding or a query_str")
        rerank = kwargs.get("rerank")  # the engine checks it (and the query text it needs)
        if rerank is not None and mmr is not None:
            raise InvalidArgumentError("rerank does not combine with MMR: MMR picks from the vector candidates")
        options = QueryOptions(
            top_k=top_k,
            filter=self._restriction(query.filters, query.node_ids, query.doc_ids, kwargs.get("where_document")),
            alpha=alpha,
            embedding=query.query_embedding,
            include_embeddings=mmr is not None,
            rerank=rerank,
            rerank_candidates=kwargs.get("rerank_candidates"),
        )
        return query.query_str or "", options, mmr

    @staticmethod
    def _restriction(
        filters: Optional[MetadataFilters],
        node_ids: Optional[List[str]],
        doc_ids: Optional[List[str]],
        where_document: Optional[Dict[str, Any]] = None,
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
        on_text = where_document_filter(where_document)
        if on_text is not None:
            parts.append(on_text)
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else {"$and": parts}

    @staticmethod
    def _result(hits: List[QueryResultDocument], mmr: Optional["_MMR"]) -> VectorStoreQueryResult:
        """Nodes scored on the [0, 1] scale, raw parts in metadata. Lichen's hits come
        sorted by score, so relevance stays monotonic with order (QueryFusionRetriever
        re-sorts by it); MMR results keep MMR's selection order."""
        if mmr is not None:
            hits, mmr_scores = mmr.select(hits)
        else:
            mmr_scores = [None] * len(hits)
        nodes = [_scored_node(hit, mmr_score) for hit, mmr_score in zip(hits, mmr_scores)]
        return VectorStoreQueryResult(
            nodes=nodes,
            similarities=[relevance(hit) for hit in hits],
            ids=[hit.id for hit in hits],
        )

    @staticmethod
    def _selection(
        node_ids: Optional[List[str]], filters: Optional[MetadataFilters], where_document: Optional[Dict[str, Any]] = None
    ) -> Tuple[Optional[List[str]], Optional[dict]]:
        if isinstance(node_ids, str):
            raise InvalidArgumentError("node_ids must be a list of ids, not one string")
        parts = [p for p in (to_lichen_filter(filters), where_document_filter(where_document)) if p is not None]
        spec = None if not parts else parts[0] if len(parts) == 1 else {"$and": parts}
        return (list(node_ids) if node_ids is not None else None), spec

    @staticmethod
    def _check_delete_selection(
        node_ids: Optional[List[str]], filters: Optional[MetadataFilters], where_document: Optional[Dict[str, Any]]
    ) -> None:
        if node_ids is None and filters is None and where_document is None:
            raise InvalidArgumentError(
                "delete_nodes needs node_ids, filters or where_document; use clear() to delete every node"
            )

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
        *,
        where_document: Optional[Dict[str, Any]] = None,
        **delete_kwargs: Any,
    ) -> None:
        """Delete the nodes that are in ``node_ids`` (if given) and match ``filters`` /
        ``where_document`` (if given), in one step inside Lichen."""
        self._check_delete_selection(node_ids, filters, where_document)
        ids, spec = self._selection(node_ids, filters, where_document)
        self._index.delete_docs_sync(ids, filter=spec)

    def get_nodes(
        self,
        node_ids: Optional[List[str]] = None,
        filters: Optional[MetadataFilters] = None,
        *,
        where_document: Optional[Dict[str, Any]] = None,
        limit: Optional[int] = None,
        offset: int = 0,
    ) -> List[BaseNode]:
        """Nodes by id (in the order asked, unknown ids skipped) and/or by filter; all
        nodes when neither is given; ``limit`` / ``offset`` page through them in
        insertion order (stable: re-adding a node keeps its place)."""
        ids, spec = self._selection(node_ids, filters, where_document)
        docs = self._index.get_docs_sync(ids, spec, limit=limit, offset=offset)
        return [document_to_node(doc.id, doc.text, doc.metadata) for doc in docs]

    def clear(self) -> None:
        self._index.clear_sync()

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """Top nodes for ``query`` in any supported mode; ``kwargs`` (LlamaIndex's
        ``vector_store_kwargs``) may hold ``mmr_threshold``, ``mmr_prefetch_k``,
        ``mmr_prefetch_factor`` and ``where_document``."""
        text, options, mmr = self._query_options(query, kwargs)
        return self._result(self._index.query_sync(text, options).docs, mmr)

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
        *,
        where_document: Optional[Dict[str, Any]] = None,
        **delete_kwargs: Any,
    ) -> None:
        self._check_delete_selection(node_ids, filters, where_document)
        ids, spec = self._selection(node_ids, filters, where_document)
        await self._index.delete_docs(ids, filter=spec)

    async def aget_nodes(
        self,
        node_ids: Optional[List[str]] = None,
        filters: Optional[MetadataFilters] = None,
        *,
        where_document: Optional[Dict[str, Any]] = None,
        limit: Optional[int] = None,
        offset: int = 0,
    ) -> List[BaseNode]:
        ids, spec = self._selection(node_ids, filters, where_document)
        docs = await self._index.get_docs(ids, spec, limit=limit, offset=offset)
        return [document_to_node(doc.id, doc.text, doc.metadata) for doc in docs]

    async def aclear(self) -> None:
        await self._index.clear()

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        text, options, mmr = self._query_options(query, kwargs)
        return self._result((await self._index.query(text, options)).docs, mmr)  # on a worker thread

    # ------------------------------------------------------------------ persistence
    def persist(self, persist_path: str, fs: Any = None) -> None:
        """Write the whole index, embeddings included, as one Lichen artifact (what
        ``StorageContext.persist`` calls; an ``fsspec`` ``fs`` writes there instead of the
        local disk). A ``.json`` path, as ``StorageContext`` names it, gets a JSON manifest
        and the artifact beside it as ``.lix`` (see :mod:`.storage`); any other path gets
        the artifact. :meth:`from_persist_path` / :meth:`from_persist_dir` read it back.
        The path is remembered for ``to_dict``."""
        write_index(self._index, persist_path, fs)
        self.persist_path = str(persist_path)

    def storage_context(self, persist_dir: Optional[str] = None, fs: Any = None, **kwargs: Any) -> StorageContext:
        """``StorageContext.from_defaults(vector_store=self, persist_dir=..., fs=...,
        **kwargs)`` without the empty image store LlamaIndex adds to every context it makes
        without a ``persist_dir`` (a ``SimpleVectorStore`` nothing in a text index uses,
        which ``persist`` would write as ``image__vector_store.json``). With
        ``persist_dir``, the docstore and index store are read from there: the reload."""
        context = StorageContext.from_defaults(vector_store=self, persist_dir=persist_dir, fs=fs, **kwargs)
        if kwargs.get("image_store") is None:
            context.vector_stores.pop(IMAGE_VECTOR_STORE_NAMESPACE, None)
        return context

    def push(self, *, overwrite: bool = False) -> PushIndexResult:
        """Store the index under its name (needs a session from ``client.session``)."""
        return self._index.push_index_sync(overwrite=overwrite)

    async def apush(self, *, overwrite: bool = False) -> PushIndexResult:
        return await self._index.push_index(overwrite=overwrite)

    def save(self, path: str | Path) -> None:
        """Write the whole index, embeddings included, to one file (atomically)."""
        self._index.save(path)


def _reopen(client: Optional[Client], model_id: Optional[str], fields: Dict[str, Any]) -> SessionIndex:
    """The index a store built without one points at, from the fields ``to_dict`` keeps:
    through ``client`` by name, else the persisted file, else a fresh session."""
    name = fields.get("index_name")
    model = model_id or fields.get("model_id")
    if client is not None:
        if not name:
            raise InvalidArgumentError("reopening through a client needs index_name")
        return client.load_index_sync(name) if fields.get("read_only") else client.session_sync(name, model)
    path = fields.get("persist_path")
    if path:
        index = read_index(path, name=name)
        if model is not None and model != index.model_id:
            raise InvalidArgumentError(f"model_id {model!r} differs from the model {index.model_id!r} stored in {path}")
        return index
    return SessionIndex(name or "session", model or DEFAULT_MODEL_ID)


def _scored_node(hit: QueryResultDocument, mmr_score: Optional[float]) -> BaseNode:
    node = document_to_node(hit.id, hit.text, hit.metadata)
    raw = {
        "score": hit.score, "vector": hit.vector_score, "keyword": hit.keyword_score, "mmr": mmr_score,
        "rerank": hit.rerank_score,
    }
    for part, value in raw.items():
        if value is None:
            continue
        key = SCORE_KEYS[part]
        node.metadata[key] = value
        for excluded in (node.excluded_embed_metadata_keys, node.excluded_llm_metadata_keys):
            if key not in excluded:
                excluded.append(key)
    return node


class _MMR:
    """MMR mode: Lichen fetches the best candidates with their vectors, llama-index-core's
    ``get_top_k_mmr_embeddings`` picks ``top_k`` of them (``mmr_threshold`` 1 is pure
    relevance, 0 maximum diversity; ``None`` its default 0.5)."""

    def __init__(self, query_vector: Optional[List[float]], top_k: int, fetch_k: int, threshold: Optional[float]):
        self.query_vector, self.top_k, self.fetch_k, self.threshold = query_vector, top_k, fetch_k, threshold

    @classmethod
    def from_query(cls, query: VectorStoreQuery, kwargs: Dict[str, Any]) -> "_MMR":
        threshold = kwargs.get("mmr_threshold", query.mmr_threshold)
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0):
            raise InvalidArgumentError(f"mmr_threshold must be a number between 0 and 1, got {threshold!r}")
        top_k = query.similarity_top_k
        factor = kwargs.get("mmr_prefetch_factor", MMR_PREFETCH_FACTOR)
        fetch_k = kwargs.get("mmr_prefetch_k")
        for name, value in (("mmr_prefetch_factor", factor), ("mmr_prefetch_k", fetch_k)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 1):
                raise InvalidArgumentError(f"{name} must be a number >= 1, got {value!r}")
        if fetch_k is None:
            fetch_k = int(factor * top_k)
        if query.query_embedding is None:
            raise InvalidArgumentError("MMR mode needs the query_embedding (the retriever computes it)")
        return cls(list(query.query_embedding), top_k, max(int(fetch_k), top_k), threshold)

    def select(self, hits: List[QueryResultDocument]) -> Tuple[List[QueryResultDocument], List[float]]:
        hits = [hit for hit in hits if hit.embedding is not None]
        if not hits:
            return [], []
        scores, chosen = get_top_k_mmr_embeddings(
            self.query_vector,
            [hit.embedding for hit in hits],
            similarity_top_k=self.top_k,
            embedding_ids=list(range(len(hits))),
            mmr_threshold=self.threshold,
        )
        return [hits[i] for i in chosen], list(scores)
