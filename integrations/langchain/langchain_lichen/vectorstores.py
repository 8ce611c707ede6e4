"""``LichenVectorStore``: a LangChain ``VectorStore`` over one Lichen index."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Optional

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from langchain_core.vectorstores.utils import maximal_marginal_relevance
from lichen import Client, InvalidArgumentError, PushIndexResult, QueryResultDocument, SessionIndex
from lichen.models import CUSTOM_MODEL_ID
from lichen.scores import cosine_relevance, relevance
from typing_extensions import Self

from ._search import Filter, IndexSearch, Plan, Step, WhereDocument, engine_filter, to_document
from .embeddings import LichenEmbeddings

__all__ = ["LichenVectorStore"]

# Keyword arguments LangChain's own helpers pass that have no meaning here:
# ``index()`` passes ``batch_size`` (Lichen embeds in its own batches).
_IGNORED_ADD_KWARGS = frozenset({"batch_size"})


# The MMR knobs: one ``search_kwargs`` dict serves every ``search_type`` of a retriever,
# so similarity searches accept them too (``fetch_k`` sizes a callable filter's first
# candidate pool there; ``lambda_mult`` only matters to MMR).
_MMR_KWARGS = frozenset({"fetch_k", "lambda_mult"})
# Re-ranking (off by default): the best candidates re-scored by a pulled cross-encoder
# (``lichen models pull ms-marco-MiniLM-L-6-v2``), as ``QueryOptions.rerank`` does.
_RERANK_KWARGS = frozenset({"rerank", "rerank_candidates"})


def _reject_unknown(method: str, kwargs: dict[str, Any], accepted: frozenset[str] = frozenset()) -> None:
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        known = f"; it also accepts {', '.join(sorted(accepted))}" if accepted else ""
        raise InvalidArgumentError(
            f"LichenVectorStore.{method}() does not support keyword argument(s) {', '.join(unknown)}{known}"
        )


def _search_knobs(method: str, kwargs: dict[str, Any]) -> tuple[Optional[int], dict[str, Any]]:
    """Check the keyword arguments of a similarity search: the MMR knobs are accepted
    (validated, since a typo'd value is a bug either way), and the re-ranking ones (the
    engine checks those); returns ``fetch_k`` and the re-ranking asked for."""
    _reject_unknown(method, kwargs, _MMR_KWARGS | _RERANK_KWARGS)
    fetch_k = kwargs.get("fetch_k")
    _check_mmr_values(fetch_k if fetch_k is not None else 1, kwargs.get("lambda_mult", 0.5))
    return fetch_k, {key: kwargs[key] for key in _RERANK_KWARGS if key in kwargs}


def _check_mmr_values(fetch_k: Any, lambda_mult: Any) -> None:
    if isinstance(fetch_k, bool) or not isinstance(fetch_k, int) or fetch_k < 1:
        raise InvalidArgumentError(f"fetch_k must be a positive integer, got {fetch_k!r}")
    if isinstance(lambda_mult, bool) or not isinstance(lambda_mult, (int, float)) or not 0.0 <= lambda_mult <= 1.0:
        raise InvalidArgumentError(f"lambda_mult must be a number between 0 and 1, got {lambda_mult!r}")


def _done(plan: Plan[Any]) -> Plan[bool]:
    """``plan``, answered as LangChain's ``delete`` answers: ``True`` once it completed."""
    yield from plan
    return True


def _model_for(embedding: Optional[Embeddings]) -> Optional[str]:
    """The model of a session for ``embedding``: the index's own (``None``: the stored
    one, or the default), the ``LichenEmbeddings``' model, or ``"custom"``."""
    if embedding is None:
        return None
    if isinstance(embedding, LichenEmbeddings):
        return embedding.model_id
    return CUSTOM_MODEL_ID


def _new_index(name: str, embedding: Optional[Embeddings]) -> SessionIndex:
    model_id = _model_for(embedding)
    return SessionIndex(name) if model_id is None else SessionIndex(name, model_id)


class LichenVectorStore(VectorStore):
    """Lichen vector store: an in-process index, embedded locally, searched exactly.

    The store wraps one Lichen index: a live `SessionIndex` you read and write in real
    time (short-term context, e.g. the turns of a call), or a long-term index loaded
    with `client.load_index(name)`, which is read-only. Searches run in memory, exact
    top-k by cosine similarity; hybrid (BM25 + vector) search is opt-in per call with
    `alpha`.

    Relevance scores are `(1 + cosine) / 2`, not the cosine: a `score_threshold` copied
    from a store whose relevance is the cosine itself (Chroma's and PGVector's with
    cosine distance), or tuned on cosine scores (`InMemoryVectorStore`'s), keeps more
    here, since 0.5 is an unrelated text and 0.7 a cosine of only 0.4. Convert such a
    threshold with `lichen.scores.cosine_relevance` (see "Relevance scores and
    thresholds" below).

    Setup:
        ```bash
        pip install langchain-lichen
        ```

    Key init args:
        embedding: `Embeddings | None`. `None` or `LichenEmbeddings()` embed with
            Lichen's shipped model (the index embeds by itself); any other LangChain
            `Embeddings`, at any dimension, is used for documents and queries of an index
            created with `model_id="custom"`.
        index: `SessionIndex | None`. The Lichen index to wrap: `client.session_sync(name)`,
            `await client.session(name)` or `client.loaded_index(name)` (read-only).
            Default: a new in-memory session.
        index_name: `str`. Name of the new session when `index` is not given.

    Instantiate:
        ```python
        from lichen import Client
        from langchain_lichen import LichenVectorStore

        client = Client()  # embedded local store: no server, no credentials
        vector_store = LichenVectorStore.from_index_name(client, "call-301")  # resumed if pushed before
        ```
        `from_index_name(client, name, embedding)` opens `client.session(name)`: the
        documents and vectors pushed under that name (no re-embedding), or an empty
        session; `LichenVectorStore(index=client.session_sync(name))` is the same.

    Add Documents:
        ```python
        from langchain_core.documents import Document

        document_1 = Document(
            page_content="Refunds take 5 business days",
            metadata={"topic": "billing", "year": 2024, "author": {"team": "payments"}},
        )
        document_2 = Document(page_content="Reset your password from the login page", metadata={"topic": "account", "year": 2021})
        document_3 = Document(page_content="I will be deleted :(", metadata={})

        documents = [document_1, document_2, document_3]
        ids = vector_store.add_documents(documents=documents, ids=["1", "2", "3"])
        ```
        Adding an existing id replaces that document (upsert). Documents without an id
        get a fresh uuid4 string, returned in `ids` and found again as `Document.id`.

    Delete Documents:
        ```python
        vector_store.delete(ids=["3"])  # True
        ```
        `delete()` returns `True` once the documents are gone, as LangChain's interface
        says (`Optional[bool]`). Ids that are not in the index count as deleted (the
        call still succeeded: they are not there afterwards), as with Qdrant's and
        Chroma's stores; that is also what keeps LangChain's `index()` cleanup working
        when a document was removed by other means, since it takes `False` for a
        failure. `delete()` with no ids refuses (`ValueError`) instead of emptying the
        index; `delete(delete_all=True)` empties it deliberately. Errors raise.

    Delete by filter, and count what was removed:
        ```python
        vector_store.delete(filter={"year": {"$lt": 2000}})  # True: none that old, nothing left to delete
        removed = vector_store.delete_documents(where_document={"$contains": "deleted"})  # 0: document 3 is gone
        ```
        A filter (Mongo or seed form, `where_document`, or both) deletes what matches,
        among `ids` when they are given too; a filter matching everything (`{}`) is
        refused like `delete()` without ids. `delete_documents(ids, filter=...,
        where_document=...)` (and `adelete_documents`) deletes the same way and returns
        how many documents it removed (`0` for ids that were not there).

    Search:
        ```python
        results = vector_store.similarity_search(query="how long is a refund?", k=1)
        for doc in results:
            print(f"* {doc.page_content} [{doc.metadata}]")
        ```

    Search with filter:
        ```python
        # Mongo form, as LangChain users write it...
        results = vector_store.similarity_search("refund", k=1, filter={"year": {"$gte": 2022}})
        # ...Lichen's seed form...
        results = vector_store.similarity_search(
            "refund", k=1, filter={"field": "topic", "condition": {"$eq": "billing"}}
        )
        # ...or a predicate over the Document, as with InMemoryVectorStore.
        results = vector_store.similarity_search("refund", k=1, filter=lambda doc: doc.metadata.get("topic") == "billing")
        # Nested metadata by dotted path; the text itself with Chroma's where_document.
        results = vector_store.similarity_search("refund", k=1, filter={"author.team": "payments"})
        results = vector_store.similarity_search(
            "refund", k=1, filter={"topic": "billing"}, where_document={"$icontains": "business days"}
        )
        ```
        Dict filters are compiled and applied by the Lichen engine; an unknown operator or
        a malformed value raises `lichen.InvalidArgumentError` (a `ValueError`), never
        silently matches. A callable is the one filter this adapter applies itself: it is
        called on the engine's ranked candidates (widening the candidate pool until `k`
        pass or the index is exhausted; `fetch_k` sets the first pool), so it costs a
        Python call per candidate. `where_document` takes `$contains`, `$not_contains`,
        `$icontains`, `$regex`, `$not_regex` and `$and` / `$or` lists of those; in a
        filter dict the same tests are written `{"$document": {"$contains": ...}}`.

    Search with score:
        ```python
        results = vector_store.similarity_search_with_score(query="refund", k=1)
        for doc, score in results:
            print(f"* [SIM={score:.3f}] {doc.page_content} [{doc.metadata}]")
        ```
        `similarity_search_with_score` returns the cosine similarity (higher is more
        similar); `similarity_search_with_relevance_scores` maps it onto [0, 1] as
        `(1 + cosine) / 2`. Results are always sorted best first.

    Relevance scores and thresholds:
        ```python
        from lichen.scores import cosine_relevance

        pairs = vector_store.similarity_search_with_relevance_scores("refund", k=2)
        # relevance = (1 + cosine) / 2: 1.0 same direction, 0.5 unrelated, 0.0 opposite.
        # A threshold tuned as a cosine elsewhere (0.7) is cosine_relevance(0.7) = 0.85 here:
        retriever = vector_store.as_retriever(
            search_type="similarity_score_threshold",
            search_kwargs={"k": 2, "score_threshold": cosine_relevance(0.7)},
        )
        pairs = vector_store.similarity_search_with_relevance_scores("refund", k=2, score_threshold=cosine_relevance(0.7))
        ```
        The scale is linear, so the order is the cosine's and `cosine_relevance(c)` keeps
        exactly the documents with cosine >= `c`. A threshold of 0.5 keeps everything
        not pointing away from the query; stores that report the cosine as relevance
        would keep only fairly close matches with it.

    Hybrid search:
        ```python
        results = vector_store.similarity_search("password login", k=1, alpha=0.5)
        ```
        `alpha` weighs the vector ranking against BM25 keyword ranking (1.0 vector only,
        the default here; 0.0 keywords only). With `alpha < 1` the score is the engine's
        reciprocal-rank-fusion score; relevance scores rescale it so that 1.0 means
        "ranked first by both", which keeps `score_threshold` usable, but it measures
        rank agreement within one query, not absolute similarity.

    Re-ranking (off by default):
        `similarity_search("refund", k=4, rerank="ms-marco-MiniLM-L-6-v2")`, or
        `search_kwargs={"rerank": ..., "rerank_candidates": 20}` on a retriever, has the
        engine re-score its best `rerank_candidates` (default 20) with a cross-encoder
        pulled by `lichen models pull ms-marco-MiniLM-L-6-v2` and return the best `k` by
        it. Scores and relevance scores are then the cross-encoder's relevance in [0, 1].
        It reads the query text, so searches by vector refuse it; it costs a forward pass
        per candidate (tens to hundreds of milliseconds on a CPU).

    Async:
        ```python
        await vector_store.aadd_documents(documents=[document_3], ids=["3"])
        await vector_store.adelete(ids=["3"])
        results = await vector_store.asimilarity_search(query="refund", k=1)
        ```
        Every async method awaits the Lichen index directly rather than running the sync
        method in a thread pool.

    Use as Retriever:
        ```python
        retriever = vector_store.as_retriever(
            search_type="mmr", search_kwargs={"k": 1, "fetch_k": 2, "lambda_mult": 0.5}
        )
        retriever.invoke("refund")
        ```
        `search_type` may be `"similarity"`, `"mmr"` or `"similarity_score_threshold"`
        (with `search_kwargs={"score_threshold": 0.6}`); `filter`, `where_document` and
        `alpha` go in `search_kwargs` too, and `rerank` / `rerank_candidates` for the
        similarity types. Every search accepts the MMR knobs `fetch_k` and `lambda_mult`,
        so one `search_kwargs` serves every `search_type`; any other keyword raises
        `lichen.InvalidArgumentError` naming it.

    Page through documents:
        ```python
        page = vector_store.get_documents(limit=2, offset=0)  # insertion order, stable across upserts
        billing = vector_store.get_documents(filter={"topic": "billing"}, limit=10)
        ```

    Persist: push by name, open by name (any process), or search it as long-term context:
        ```python
        vector_store.push()  # stored as index "call-301", embeddings included; await vector_store.apush()
        resumed = LichenVectorStore.from_index_name(client, "call-301")  # later: the same documents
        client.load_index_sync("call-301")
        history = LichenVectorStore(index=client.loaded_index("call-301"))  # read-only
        history.similarity_search("refund", k=1)
        ```
        `push()` refuses (`lichen.ConflictError`) to overwrite a version someone else
        pushed since the session was opened; `push(overwrite=True)` replaces it. A store
        over a session made without a client (`LichenVectorStore()`) has nowhere to push.

    Bring your own embeddings:
        ```python
        from langchain_core.embeddings import DeterministicFakeEmbedding

        own = LichenVectorStore(DeterministicFakeEmbedding(size=64))  # a model_id="custom" session
        own.add_texts(["any dimension works"], metadatas=[{"n": 1}])
        ```

    Metadata values may be `str`, `int`, `float`, `bool`, `None`, lists of those, or
    nested dicts of those (filtered by dotted path, `{"author.team": ...}`); they come
    back exactly as given (types included), and the store adds no keys of its own.
    Other values (dates, sets) raise `lichen.InvalidArgumentError`.
    """

    def __init__(
        self,
        embedding: Optional[Embeddings] = None,
        *,
        index: Optional[SessionIndex] = None,
        index_name: str = "langchain",
    ) -> None:
        if index is None:
            index = _new_index(index_name, embedding)
        self._search = IndexSearch(index, embedding)
        self._embedding: Embeddings = embedding if embedding is not None else LichenEmbeddings(model_id=index.model_id)

    # ------------------------------------------------------------------ properties
    @property
    def embeddings(self) -> Embeddings:
        return self._embedding

    @property
    def index(self) -> SessionIndex:
        """The Lichen index underneath."""
        return self._search.index

    # ------------------------------------------------------------------ persistence by name
    @classmethod
    def from_index_name(cls, client: Client, index_name: str, embedding: Optional[Embeddings] = None) -> Self:
        """A store on ``client.session(index_name)``: resumes what was pushed under that
        name (documents and vectors, no re-embedding), or starts empty."""
        return cls(embedding, index=client.session_sync(index_name, model_id=_model_for(embedding)))

    @classmethod
    async def afrom_index_name(cls, client: Client, index_name: str, embedding: Optional[Embeddings] = None) -> Self:
        return cls(embedding, index=await client.session(index_name, model_id=_model_for(embedding)))

    def push(self, *, overwrite: bool = False) -> PushIndexResult:
        """Store the index under its name in the client's store (embedded directory or
        server), so :meth:`from_index_name` resumes it anywhere."""
        return self.index.push_index_sync(overwrite=overwrite)

    async def apush(self, *, overwrite: bool = False) -> PushIndexResult:
        return await self.index.push_index(overwrite=overwrite)

    def __repr__(self) -> str:
        return f"LichenVectorStore(index={self.index!r}, embedding={type(self._embedding).__name__})"

    # ------------------------------------------------------------------ writes
    @staticmethod
    def _prepare(
        texts: Iterable[str], metadatas: Optional[list[dict]], ids: Optional[Sequence[Optional[str]]]
    ) -> tuple[list[str], Optional[list[dict]], list[str]]:
        texts = list(texts)
        if metadatas is not None and len(metadatas) != len(texts):
            raise InvalidArgumentError(f"got {len(metadatas)} metadatas for {len(texts)} texts")
        if ids is None:
            ids = [None] * len(texts)
        elif len(ids) != len(texts):
            raise InvalidArgumentError(f"got {len(ids)} ids for {len(texts)} texts")
        filled = [doc_id if doc_id is not None else str(uuid.uuid4()) for doc_id in ids]
        return texts, metadatas, filled

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: Optional[list[dict]] = None,
        *,
        ids: Optional[list[str]] = None,
        **kwargs: Any,
    ) -> list[str]:
        """Embed and upsert texts; returns their ids (uuid4 strings where none given)."""
        return self._search.run(self._add("add_texts", texts, metadatas, ids, kwargs))

    async def aadd_texts(
        self,
        texts: Iterable[str],
        metadatas: Optional[list[dict]] = None,
        *,
        ids: Optional[list[str]] = None,
        **kwargs: Any,
    ) -> list[str]:
        return await self._search.arun(self._add("aadd_texts", texts, metadatas, ids, kwargs))

    def _add(
        self, method: str, texts: Iterable[str], metadatas: Optional[list[dict]], ids: Optional[list[str]],
        kwargs: dict[str, Any],
    ) -> Plan[list[str]]:
        _reject_unknown(method, kwargs, _IGNORED_ADD_KWARGS)
        texts, metadatas, ids = self._prepare(texts, metadatas, ids)
        yield from self._search.add(texts, metadatas, ids)
        return ids

    def delete(
        self,
        ids: Optional[list[str]] = None,
        *,
        filter: Filter = None,
        where_document: WhereDocument = None,
        delete_all: bool = False,
        **kwargs: Any,
    ) -> Optional[bool]:
        """Delete by id, or the documents matching ``filter`` / ``where_document`` (among
        ``ids`` if given too); ``True`` once they are gone. Ids not in the index count as
        deleted (see the class docstring); :meth:`delete_documents` counts what went.

        Neither ids nor a filter raises unless ``delete_all=True``: emptying an index by
        omission is too easy a mistake to make silently (a filter that matches
        everything, ``{}``, is refused for the same reason).
        """
        return self._search.run(_done(self._delete("delete", ids, filter, where_document, delete_all, kwargs)))

    async def adelete(
        self,
        ids: Optional[list[str]] = None,
        *,
        filter: Filter = None,
        where_document: WhereDocument = None,
        delete_all: bool = False,
        **kwargs: Any,
    ) -> Optional[bool]:
        return await self._search.arun(_done(self._delete("delete", ids, filter, where_document, delete_all, kwargs)))

    def delete_documents(
        self, ids: Optional[Sequence[str]] = None, *, filter: Filter = None, where_document: WhereDocument = None
    ) -> int:
        """Delete as :meth:`delete` does and return how many documents were removed
        (ids that were not there remove nothing)."""
        return self._search.run(self._delete("delete_documents", ids, filter, where_document, False, {}))

    async def adelete_documents(
        self, ids: Optional[Sequence[str]] = None, *, filter: Filter = None, where_document: WhereDocument = None
    ) -> int:
        return await self._search.arun(self._delete("delete_documents", ids, filter, where_document, False, {}))

    def _delete(
        self,
        method: str,
        ids: Optional[Sequence[str]],
        filter: Filter,
        where_document: WhereDocument,
        delete_all: bool,
        kwargs: dict[str, Any],
    ) -> Plan[int]:
        """How many documents were removed."""
        _reject_unknown(method, kwargs)
        spec = engine_filter(filter, where_document, f"{method}()")
        if ids is None and spec is None:
            if not delete_all:
                also = ", or delete_all=True to mean it" if method == "delete" else "; delete(delete_all=True) empties the index"
                raise InvalidArgumentError(
                    f"{method}() without ids or filter would empty the whole index; pass ids, filter=...{also}"
                )
            return (yield Step("clear"))
        if delete_all:
            raise InvalidArgumentError("pass either ids / filter or delete_all=True, not both")
        doomed = list(ids) if ids is not None else None
        if spec is not None:
            return (yield Step("delete_docs", (doomed,), {"filter": spec}))
        return (yield Step("delete_docs", (doomed,)))

    # ------------------------------------------------------------------ reads
    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """Documents for the ids found, in the order asked; missing ids are skipped."""
        return self._search.run(self._get(list(ids), None, None, "get_by_ids()"))

    async def aget_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        return await self._search.arun(self._get(list(ids), None, None, "aget_by_ids()"))

    def get_documents(
        self,
        ids: Optional[Sequence[str]] = None,
        *,
        filter: Filter = None,
        where_document: WhereDocument = None,
        limit: Optional[int] = None,
        offset: int = 0,
    ) -> list[Document]:
        """Documents by id (in the order asked), by filter, or all, in insertion order,
        paged by ``limit`` / ``offset`` (stable: an upsert keeps a document's place)."""
        return self._search.run(self._get(ids, filter, where_document, "get_documents()", limit, offset))

    async def aget_documents(
        self,
        ids: Optional[Sequence[str]] = None,
        *,
        filter: Filter = None,
        where_document: WhereDocument = None,
        limit: Optional[int] = None,
        offset: int = 0,
    ) -> list[Document]:
        return await self._search.arun(self._get(ids, filter, where_document, "aget_documents()", limit, offset))

    @staticmethod
    def _get(
        ids: Optional[Sequence[str]], filter: Filter, where_document: WhereDocument, what: str,
        limit: Optional[int] = None, offset: int = 0,
    ) -> Plan[list[Document]]:
        spec = engine_filter(filter, where_document, what)
        docs = yield Step("get_docs", (list(ids) if ids is not None else None, spec), {"limit": limit, "offset": offset})
        return [to_document(doc) for doc in docs]

    # ------------------------------------------------------------------ similarity search
    def similarity_search_with_score(
        self,
        query: str,
        k: int = 4,
        *,
        filter: Filter = None,
        alpha: Optional[float] = None,
        where_document: WhereDocument = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """Top ``k`` documents with their scores (cosine similarity unless ``alpha < 1``)."""
        return self._search.run(
            self._scored("similarity_search_with_score", query, k, filter, alpha, where_document, kwargs)
        )

    async def asimilarity_search_with_score(
        self,
        query: str,
        k: int = 4,
        *,
        filter: Filter = None,
        alpha: Optional[float] = None,
        where_document: WhereDocument = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        return await self._search.arun(
            self._scored("asimilarity_search_with_score", query, k, filter, alpha, where_document, kwargs)
        )

    def _scored(
        self,
        method: str,
        query: str,
        k: int,
        filter: Filter,
        alpha: Optional[float],
        where_document: WhereDocument,
        kwargs: dict[str, Any],
        *,
        vector: Optional[list[float]] = None,
        score: Callable[[QueryResultDocument], float] = lambda hit: hit.score,
    ) -> Plan[list[tuple[Document, float]]]:
        fetch_k, rerank = _search_knobs(method, kwargs)
        hits = yield from self._search.search(
            query, k, filter=filter, alpha=alpha, vector=vector, where_document=where_document, fetch_k=fetch_k,
            **rerank,
        )
        return [(to_document(hit), score(hit)) for hit in hits]

    def similarity_search(
        self,
        query: str,
        k: int = 4,
        *,
        filter: Filter = None,
        alpha: Optional[float] = None,
        where_document: WhereDocument = None,
        **kwargs: Any,
    ) -> list[Document]:
        """Top ``k`` documents for ``query``, most similar first."""
        pairs = self.similarity_search_with_score(
            query, k, filter=filter, alpha=alpha, where_document=where_document, **kwargs
        )
        return [doc for doc, _ in pairs]

    async def asimilarity_search(
        self,
        query: str,
        k: int = 4,
        *,
        filter: Filter = None,
        alpha: Optional[float] = None,
        where_document: WhereDocument = None,
        **kwargs: Any,
    ) -> list[Document]:
        pairs = await self.asimilarity_search_with_score(
            query, k, filter=filter, alpha=alpha, where_document=where_document, **kwargs
        )
        return [doc for doc, _ in pairs]

    def similarity_search_with_score_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        *,
        filter: Filter = None,
        where_document: WhereDocument = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """Top ``k`` documents for a query vector, with cosine similarities."""
        method = "similarity_search_with_score_by_vector"
        return self._search.run(self._scored(method, "", k, filter, None, where_document, kwargs, vector=embedding))

    async def asimilarity_search_with_score_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        *,
        filter: Filter = None,
        where_document: WhereDocument = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        method = "asimilarity_search_with_score_by_vector"
        return await self._search.arun(
            self._scored(method, "", k, filter, None, where_document, kwargs, vector=embedding)
        )

    def similarity_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        *,
        filter: Filter = None,
        where_document: WhereDocument = None,
        **kwargs: Any,
    ) -> list[Document]:
        pairs = self.similarity_search_with_score_by_vector(
            embedding, k, filter=filter, where_document=where_document, **kwargs
        )
        return [doc for doc, _ in pairs]

    async def asimilarity_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        *,
        filter: Filter = None,
        where_document: WhereDocument = None,
        **kwargs: Any,
    ) -> list[Document]:
        pairs = await self.asimilarity_search_with_score_by_vector(
            embedding, k, filter=filter, where_document=where_document, **kwargs
        )
        return [doc for doc, _ in pairs]

    # ------------------------------------------------------------------ relevance scores
    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        """Cosine similarity in [-1, 1] to relevance in [0, 1]."""
        return cosine_relevance

    def _similarity_search_with_relevance_scores(
        self,
        query: str,
        k: int = 4,
        *,
        filter: Filter = None,
        alpha: Optional[float] = None,
        where_document: WhereDocument = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        method = "similarity_search_with_relevance_scores"
        return self._search.run(self._scored(method, query, k, filter, alpha, where_document, kwargs, score=relevance))

    async def _asimilarity_search_with_relevance_scores(
        self,
        query: str,
        k: int = 4,
        *,
        filter: Filter = None,
        alpha: Optional[float] = None,
        where_document: WhereDocument = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        method = "asimilarity_search_with_relevance_scores"
        return await self._search.arun(
            self._scored(method, query, k, filter, alpha, where_document, kwargs, score=relevance)
        )

    # ------------------------------------------------------------------ maximal marginal relevance
    def _mmr(
        self,
        method: str,
        query: str,
        vector: Optional[list[float]],
        k: int,
        fetch_k: int,
        lambda_mult: float,
        filter: Filter,
        alpha: Optional[float],
        where_document: WhereDocument,
        kwargs: dict[str, Any],
    ) -> Plan[list[Document]]:
        _reject_unknown(method, kwargs)
        _check_mmr_values(fetch_k, lambda_mult)
        if vector is None:
            vector = yield from self._search.query_vector(query)
        hits = yield from self._search.search(
            query, max(fetch_k, k), filter=filter, alpha=alpha, vector=vector, where_document=where_document
        )
        stored = yield from self._search.stored_vectors(hits)
        # A candidate deleted between the search and the vector lookup is dropped.
        hits = [hit for hit in hits if hit.id in stored]
        if not hits:
            return []
        chosen = maximal_marginal_relevance(
            np.asarray(vector, dtype=np.float32), [stored[hit.id] for hit in hits], lambda_mult=lambda_mult, k=k
        )
        return [to_document(hits[i]) for i in chosen]

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        *,
        filter: Filter = None,
        where_document: WhereDocument = None,
        **kwargs: Any,
    ) -> list[Document]:
        """``k`` documents chosen by MMR among the ``fetch_k`` most similar to a vector."""
        method = "max_marginal_relevance_search_by_vector"
        return self._search.run(
            self._mmr(method, "", embedding, k, fetch_k, lambda_mult, filter, None, where_document, kwargs)
        )

    async def amax_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        *,
        filter: Filter = None,
        where_document: WhereDocument = None,
        **kwargs: Any,
    ) -> list[Document]:
        method = "amax_marginal_relevance_search_by_vector"
        return await self._search.arun(
            self._mmr(method, "", embedding, k, fetch_k, lambda_mult, filter, None, where_document, kwargs)
        )

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        *,
        filter: Filter = None,
        alpha: Optional[float] = None,
        where_document: WhereDocument = None,
        **kwargs: Any,
    ) -> list[Document]:
        """``k`` documents chosen by maximal marginal relevance (similar to the query,
        diverse among themselves) from the ``fetch_k`` best candidates.

        ``lambda_mult`` is 1 for pure relevance, 0 for maximum diversity.
        """
        method = "max_marginal_relevance_search"
        return self._search.run(
            self._mmr(method, query, None, k, fetch_k, lambda_mult, filter, alpha, where_document, kwargs)
        )

    async def amax_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        *,
        filter: Filter = None,
        alpha: Optional[float] = None,
        where_document: WhereDocument = None,
        **kwargs: Any,
    ) -> list[Document]:
        method = "amax_marginal_relevance_search"
        return await self._search.arun(
            self._mmr(method, query, None, k, fetch_k, lambda_mult, filter, alpha, where_document, kwargs)
        )

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Optional[Embeddings] = None,
        metadatas: Optional[list[dict]] = None,
        *,
        ids: Optional[list[str]] = None,
        index: Optional[SessionIndex] = None,
        index_name: str = "langchain",
        **kwargs: Any,
    ) -> Self:
        """A store holding ``texts`` (in a new session unless ``index`` is given)."""
        store = cls(embedding, index=index, index_name=index_name)
        store.add_texts(texts, metadatas, ids=ids, **kwargs)
        return store

    @classmethod
    async def afrom_texts(
        cls,
        texts: list[str],
        embedding: Optional[Embeddings] = None,
        metadatas: Optional[list[dict]] = None,
        *,
        ids: Optional[list[str]] = None,
        index: Optional[SessionIndex] = None,
        index_name: str = "langchain",
        **kwargs: Any,
    ) -> Self:
        store = cls(embedding, index=index, index_name=index_name)
        await store.aadd_texts(texts, metadatas, ids=ids, **kwargs)
        return store
