"""Translation between LangChain and one Lichen index, shared by the store and retrievers.

This module owns three adapter decisions and nothing else:

* where vectors come from: the index's own built-in model, or a LangChain ``Embeddings``
  feeding an index created with ``model_id="custom"``;
* which filters go to the engine (dicts, Mongo or seed form, and Chroma's
  ``where_document`` on the text, compiled and validated there) and the one filter the
  adapter applies itself: a ``(Document) -> bool`` callable, evaluated over the engine's
  ranked candidates;
* how Lichen results become LangChain ``Document`` objects (id, text, metadata unchanged).

Ranking, filtering by metadata and hybrid fusion all happen in the engine.

Every operation is written once, as a *plan*: a generator that yields the steps it needs
done (:class:`Step`: embed a query or documents, call the index) and receives their
results. :meth:`IndexSearch.run` does the steps with the sync calls, :meth:`IndexSearch.arun`
awaits the async ones (a custom ``Embeddings``' own ``aembed_*``, the session's async
faces), so the store's and the retrievers' sync and async methods share one logic and
differ only in how they wait (STYLE.md: one logic, two faces).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Optional, TypeVar, Union

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from lichen import DocumentInfo, InvalidArgumentError, QueryOptions, QueryResultDocument, SessionIndex
from lichen.filters import where_document_filter
from lichen.models import CUSTOM_MODEL_ID

from .embeddings import LichenEmbeddings

__all__ = [
    "Filter",
    "WhereDocument",
    "IndexSearch",
    "Plan",
    "Step",
    "check_embedding",
    "to_document",
    "split_filter",
    "engine_filter",
    "resolve_alpha",
    "PURE_VECTOR",
]

#: A filter as LangChain users pass it: a Mongo- or seed-form dict, or a predicate.
Filter = Union[Mapping[str, Any], Callable[[Document], bool], None]
#: Chroma's ``where_document``: ``{"$contains": "x"}``, ``$not_contains``, ``$regex``,
#: ``$not_regex``, ``$icontains``, and ``$and`` / ``$or`` lists of those.
WhereDocument = Optional[Mapping[str, Any]]

T = TypeVar("T")


@dataclass(frozen=True)
class Step:
    """One thing a plan needs done: ``embed_query`` / ``embed_documents`` (with the custom
    ``Embeddings``, or the index's own model), or a call of the index method named
    ``action`` (``query``, ``add_docs``, ``get_docs``, ``delete_docs``, ``clear``: the
    async face's name; the sync face is ``<action>_sync``)."""

    action: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)


#: An operation written once: yields steps, receives their results, returns its own.
Plan = Generator[Step, Any, T]

#: Adapters search by vector only unless the caller opts into hybrid with ``alpha``.
PURE_VECTOR = 1.0

# A callable filter is applied to the engine's ranking in rounds: fetch this many times
# ``k`` candidates, and widen by ``_WIDEN`` while too few pass and more exist.
_FIRST_ROUND_FACTOR = 4
_FIRST_ROUND_MIN = 20
_WIDEN = 4


#: Metadata key of a grouped result (``LichenRetriever(group_by=...)``): the ids of the
#: source's matching chunks, in order.
CHUNKS_METADATA_KEY = "lichen_chunks"


def to_document(hit: QueryResultDocument | DocumentInfo) -> Document:
    chunks = getattr(hit, "chunks", None)
    if chunks is not None:  # a group: one Document for the source, its chunks named
        return Document(
            id=hit.id, page_content=hit.text, metadata={**hit.metadata, CHUNKS_METADATA_KEY: [c.id for c in chunks]}
        )
    return Document(id=hit.id, page_content=hit.text, metadata=hit.metadata or {})


def split_filter(
    filter: Filter, where_document: WhereDocument = None
) -> tuple[dict[str, Any] | None, Callable[[Document], bool] | None]:
    """``(engine_filter, predicate)``: dicts and ``where_document`` go to the engine (one
    ``$and`` when both are given), callables stay here."""
    on_text = where_document_filter(where_document)
    if filter is None:
        return on_text, None
    if isinstance(filter, Mapping):
        return _both(dict(filter), on_text), None
    if callable(filter):
        return on_text, filter
    raise InvalidArgumentError(
        f"filter must be a dict (Mongo or Lichen seed form) or a callable (Document) -> bool, got {type(filter).__name__}"
    )


def engine_filter(filter: Filter, where_document: WhereDocument, what: str) -> dict[str, Any] | None:
    """The engine filter for an operation that takes dict filters only (``what`` names
    it in the error)."""
    spec, predicate = split_filter(filter, where_document)
    if predicate is not None:
        raise InvalidArgumentError(f"{what} takes a dict filter (Mongo or seed form), not a callable")
    return spec


def _both(spec: dict[str, Any], on_text: dict[str, Any] | None) -> dict[str, Any]:
    return spec if on_text is None else {"$and": [spec, on_text]}


def resolve_alpha(alpha: float | None) -> float:
    return PURE_VECTOR if alpha is None else alpha


def _predicate_rounds(
    k: int, predicate: Callable[[Document], bool], first: int | None = None
) -> Generator[int, Sequence[QueryResultDocument], list[QueryResultDocument]]:
    """Drive a callable filter over ranked candidates: yields how many to fetch (``first``
    in the first round, when given), receives the engine's hits, returns the first ``k``
    that pass. Written once for both the sync and the async face."""
    fetch = max(first, k, 1) if first is not None else max(_FIRST_ROUND_FACTOR * k, _FIRST_ROUND_MIN)
    while True:
        hits = yield fetch
        # Every round is checked whole: a wider hybrid query (or a concurrent write) may
        # rank the head differently than the previous round did.
        kept = [hit for hit in hits if predicate(to_document(hit))]
        if len(kept) >= k or len(hits) < fetch:
            return kept[:k]
        fetch *= _WIDEN


def check_embedding(index: SessionIndex, embedding: Optional[Embeddings]) -> Optional[Embeddings]:
    """The ``Embeddings`` whose vectors the adapter must pass to ``index``, or ``None``
    when the index embeds with its own built-in model."""
    if index.model_id == CUSTOM_MODEL_ID:
        if embedding is None:
            raise InvalidArgumentError(
                f'index {index.name!r} uses model_id="custom": pass the LangChain Embeddings that makes its vectors'
            )
        return embedding
    if embedding is None:
        return None
    if isinstance(embedding, LichenEmbeddings) and embedding.model_id == index.model_id:
        return None
    raise InvalidArgumentError(
        f"index {index.name!r} embeds with its built-in model {index.model_id!r}; vectors from "
        f"{type(embedding).__name__} would not be comparable. Use a session created with "
        'model_id="custom" for your own Embeddings, or pass LichenEmbeddings() / no embedding.'
    )


class IndexSearch:
    """One Lichen index seen from LangChain; see the module docstring.

    ``embedding`` is ``None`` when the index embeds itself (built-in model).
    """

    def __init__(self, index: SessionIndex, embedding: Optional[Embeddings]) -> None:
        self.index = index
        self.embedding = check_embedding(index, embedding)

    # ------------------------------------------------------------------ documents in
    def _infos(
        self, texts: Sequence[str], metadatas: Sequence[dict[str, Any]] | None, ids: Sequence[str], vectors: Any
    ) -> list[DocumentInfo]:
        return [
            DocumentInfo(
                id=ids[i],
                text=texts[i],
                metadata=metadatas[i] if metadatas else None,
                embedding=vectors[i] if vectors is not None else None,
            )
            for i in range(len(texts))
        ]

    # ------------------------------------------------------------------ the two faces
    def run(self, plan: Plan[T]) -> T:
        """Carry out ``plan`` with the sync calls."""
        result: Any = None
        while True:
            try:
                step = plan.send(result)
            except StopIteration as done:
                return done.value
            result = self._do(step)

    async def arun(self, plan: Plan[T]) -> T:
        """Carry out ``plan``, awaiting each step."""
        result: Any = None
        while True:
            try:
                step = plan.send(result)
            except StopIteration as done:
                return done.value
            result = await self._ado(step)

    def _do(self, step: Step) -> Any:
        if step.action == "embed_query":
            (text,) = step.args
            if self.embedding is not None:
                return self.embedding.embed_query(text)
            return self.index.embed_query(text).tolist()
        if step.action == "embed_documents":
            return self.embedding.embed_documents(*step.args)  # type: ignore[union-attr]
        return getattr(self.index, f"{step.action}_sync")(*step.args, **step.kwargs)

    async def _ado(self, step: Step) -> Any:
        if step.action == "embed_query":
            (text,) = step.args
            if self.embedding is not None:
                return await self.embedding.aembed_query(text)
            # On a worker thread, like the engine's own async query: embedding can take
            # tens of milliseconds on a busy machine.
            return (await asyncio.to_thread(self.index.embed_query, text)).tolist()
        if step.action == "embed_documents":
            return await self.embedding.aembed_documents(*step.args)  # type: ignore[union-attr]
        return await getattr(self.index, step.action)(*step.args, **step.kwargs)

    # ------------------------------------------------------------------ plans
    def add(self, texts: Sequence[str], metadatas: Sequence[dict[str, Any]] | None, ids: Sequence[str]) -> Plan[None]:
        vectors = (yield Step("embed_documents", (list(texts),))) if self.embedding is not None and texts else None
        yield Step("add_docs", (self._infos(texts, metadatas, ids, vectors),))

    def query_vector(self, text: str) -> Plan[list[float]]:
        return (yield Step("embed_query", (text,)))

    def _needs_vector(self, alpha: float, predicate: Callable[[Document], bool] | None) -> bool:
        if alpha <= 0.0:
            return False  # pure keyword: no vector is used
        # A custom index has no model; a callable filter may query several rounds, so the
        # vector is computed once here rather than once per round by the index.
        return self.embedding is not None or predicate is not None

    def _plan(
        self,
        k: int,
        filter: Filter,
        alpha: float | None,
        vector: Sequence[float] | None,
        where_document: WhereDocument,
        group_by: str | None = None,
        rerank: str | None = None,
        rerank_candidates: int | None = None,
    ) -> tuple[QueryOptions, Callable[[Document], bool] | None]:
        spec, predicate = split_filter(filter, where_document)
        if group_by is not None and predicate is not None:
            raise InvalidArgumentError("group_by needs a dict filter: a callable filter sees chunks, not groups")
        options = QueryOptions(
            top_k=k, filter=spec, alpha=resolve_alpha(alpha), embedding=vector, group_by=group_by, rerank=rerank,
            rerank_candidates=rerank_candidates,
        )
        return options, predicate

    def search(
        self,
        text: str,
        k: int,
        *,
        filter: Filter = None,
        alpha: float | None = None,
        vector: Sequence[float] | None = None,
        where_document: WhereDocument = None,
        fetch_k: int | None = None,
        group_by: str | None = None,
        rerank: str | None = None,
        rerank_candidates: int | None = None,
    ) -> Plan[list[QueryResultDocument]]:
        """Top ``k`` hits, best first, as the engine scored them. ``fetch_k`` is the first
        candidate pool of a callable filter (default ``max(4k, 20)``). ``group_by``: the
        top ``k`` groups (``QueryOptions.group_by``) instead. ``rerank``: the engine
        re-scores its best ``rerank_candidates`` with a cross-encoder, which reads ``text``
        (the engine refuses it without one)."""
        options, predicate = self._plan(k, filter, alpha, vector, where_document, group_by, rerank, rerank_candidates)
        if options.embedding is None and self._needs_vector(options.alpha, predicate):
            options = replace(options, embedding=(yield from self.query_vector(text)))
        if predicate is None:
            return (yield Step("query", (text, options))).docs
        rounds = _predicate_rounds(k, predicate, fetch_k)
        fetch = next(rounds)
        while True:
            hits = (yield Step("query", (text, replace(options, top_k=fetch)))).docs
            try:
                fetch = rounds.send(hits)
            except StopIteration as done:
                return done.value

    def stored_vectors(self, hits: Sequence[QueryResultDocument]) -> Plan[dict[str, list[float]]]:
        stored = yield Step("get_docs", ([hit.id for hit in hits],), {"include_embeddings": True})
        return {doc.id: list(doc.embedding) for doc in stored if doc.embedding is not None}
