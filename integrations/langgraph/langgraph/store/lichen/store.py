"""``LichenStore``: LangGraph's ``BaseStore`` (long-term memory) on a Lichen index.

Every operation goes through :meth:`LichenStore._run`: validate the batch and collect the
texts to embed, embed them outside the lock (the slow part), then, under the lock, answer
the reads and apply the writes. ``batch`` and ``abatch`` differ only in how they wait.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

import numpy as np
from langchain_core.embeddings import Embeddings
from langgraph.store.base import (
    BaseStore,
    GetOp,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
    ensure_embeddings,
    tokenize_path,
)
from lichen import Client, DocumentInfo, InvalidArgumentError, PushIndexResult, QueryOptions, SessionIndex

from . import _records as records
from ._filters import filter_clauses

__all__ = ["LichenStore", "LichenIndexConfig"]

DEFAULT_INDEX_NAME = "langgraph-store"
#: Minutes between sweeps of ``start_ttl_sweeper`` when neither it nor the TTLConfig says.
DEFAULT_SWEEP_INTERVAL_MINUTES = 5

logger = logging.getLogger(__name__)


class LichenIndexConfig(TypedDict, total=False):
    """What to embed, LangGraph's ``IndexConfig`` without the need for a model.

    ``fields``: JSON paths of the value to embed (default ``["$"]``, the whole value); a
    ``put(..., index=[...])`` overrides them per item, ``index=False`` embeds nothing.
    ``embed``: a LangChain ``Embeddings`` or embedding function, only for a session opened
    with ``model_id="custom"`` (otherwise the session's own model embeds, locally).
    ``dims``: the vector size; checked against the session, required with ``embed``.
    """

    fields: list[str]
    embed: Any
    dims: int


@dataclass
class _Put:
    namespace: tuple[str, ...]
    key: str
    value: Mapping[str, Any] | None
    value_json: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)
    first_text: int = 0
    ttl: float | None = None
    store_fields: bool = False  # embedded with the store's index fields (no per-put index=)


@dataclass
class _Plan:
    """A validated batch: the effective write per item (the last one wins, as in
    LangGraph's InMemoryStore) and every text to embed."""

    puts: dict[str, _Put] = field(default_factory=dict)
    texts: list[str] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)


class LichenStore(BaseStore):
    """LangGraph long-term memory in one Lichen index: namespaced items, metadata filters
    and semantic search, in-process, embedded by Lichen's shipped model (no API key).

    Setup::

        from lichen import Client
        from langgraph.store.lichen import LichenStore

        store = LichenStore.open(Client(), "agent-memory")   # resumes a pushed index of that name

    Put, get, delete::

        store.put(("memories", "user-1"), "food", {"text": "Allergic to peanuts", "kind": "health"})
        store.get(("memories", "user-1"), "food").value       # {"text": ..., "kind": "health"}
        store.delete(("memories", "user-1"), "food")

    Search by meaning, within a namespace prefix, with a filter on the value's fields::

        store.search(("memories", "user-1"), query="what can I cook?", filter={"kind": "health"}, limit=3)

    Namespaces::

        store.list_namespaces(prefix=("memories",), max_depth=2)

    Persist (the index lives in memory until pushed, like any Lichen session)::

        store.push()                                          # or await store.apush()

    TTL (LangGraph's ``TTLConfig``; minutes; reads restart an item's TTL unless
    ``refresh_ttl=False``; expired items stay until swept unless ``omit_expired``)::

        store = LichenStore.open(Client(), "agent-memory", ttl={"default_ttl": 60 * 24, "sweep_interval_minutes": 10})
        store.put(("memories", "user-1"), "parking", {"text": "Parked on level 3"}, ttl=120)
        store.sweep_ttl()                                     # deletes what expired; or start_ttl_sweeper()

    In a graph: ``builder.compile(store=store)``; nodes receive it as ``runtime.store``
    (or a ``store: BaseStore`` argument). Every method has its async twin (``aput``,
    ``aget``, ``asearch``, ...), which runs the same code off the event loop.
    """

    supports_ttl: bool = True

    def __init__(
        self,
        session: SessionIndex,
        *,
        index: LichenIndexConfig | None = None,
        ttl: TTLConfig | None = None,
        _live: tuple[Client, str] | None = None,
    ) -> None:
        self.__dict__["_live"] = _live
        self._init_ttl(ttl)
        config = dict(index or {})
        unknown = sorted(set(config) - {"fields", "embed", "dims"})
        if unknown:
            raise InvalidArgumentError(f"unknown index option(s) {unknown}; expected 'fields', 'embed' or 'dims'")
        self._embeddings: Embeddings | None = ensure_embeddings(config["embed"]) if config.get("embed") is not None else None
        if self._embeddings is None and session.model_id == "custom":
            raise InvalidArgumentError('a model_id="custom" session embeds nothing itself: pass index={"embed": ..., "dims": ...}')
        dims = config.get("dims")
        if dims is not None and session.dimension is not None and dims != session.dimension:
            raise InvalidArgumentError(f"index dims={dims} does not match the session's dimension {session.dimension}")
        self._dimension: int | None = session.dimension or dims
        if self._dimension is None:
            raise InvalidArgumentError('an empty model_id="custom" session needs index={"dims": ...}')
        paths = config.get("fields") or ["$"]
        if isinstance(paths, str) or not all(isinstance(p, str) and p for p in paths):
            raise InvalidArgumentError(f"index fields must be a list of JSON paths, got {paths!r}")
        self._paths: list[records.TextPath] = [(p, p if p == "$" else tokenize_path(p)) for p in paths]
        self._session = session
        self._lock = threading.RLock()
        # Item count per namespace, for list_namespaces without scanning every record.
        self._namespaces: Counter[tuple[str, ...]] = Counter(
            records.parse_record_id(doc.id)[0] for doc in session.get_docs_sync(filter={records.KIND: records.RECORD})
        )
        self._check_index_fields()

    @classmethod
    def open(
        cls,
        client: Client,
        index_name: str = DEFAULT_INDEX_NAME,
        *,
        index: LichenIndexConfig | None = None,
        model_id: str | None = None,
        ttl: TTLConfig | None = None,
        auto_refresh: bool = False,
        refresh_interval: float | None = None,
    ) -> LichenStore:
        """A store on ``client.session(index_name)``: resumes what was pushed under that
        name (no re-embedding), or starts empty.

        ``auto_refresh=True`` opens instead a live, read-only view of the long-term index
        of that name, which other processes write (``client.load_index(index_name,
        auto_refresh=True)``): gets, searches and namespaces follow each version pushed or
        written to the store as it arrives; puts and deletes are refused (write through a
        store opened without ``auto_refresh``, and push). ``refresh_interval``: seconds
        between looks where the store cannot be waited on."""
        if auto_refresh:
            if ttl is not None:
                raise InvalidArgumentError("a store opened with auto_refresh is read-only: it cannot expire items (ttl)")
            timing = {} if refresh_interval is None else {"interval": refresh_interval}
            client.load_index_sync(index_name, auto_refresh=True, **timing)
            return cls(client.loaded_index(index_name), index=index, _live=(client, index_name))
        return cls(client.session_sync(index_name, model_id=model_id), index=index, ttl=ttl)

    @classmethod
    async def aopen(
        cls,
        client: Client,
        index_name: str = DEFAULT_INDEX_NAME,
        *,
        index: LichenIndexConfig | None = None,
        model_id: str | None = None,
        ttl: TTLConfig | None = None,
        auto_refresh: bool = False,
        refresh_interval: float | None = None,
    ) -> LichenStore:
        if auto_refresh:
            return await asyncio.to_thread(
                cls.open, client, index_name, index=index, ttl=ttl, auto_refresh=True, refresh_interval=refresh_interval
            )
        session = await client.session(index_name, model_id=model_id)
        return await asyncio.to_thread(cls, session, index=index, ttl=ttl)

    # A live store (``open(..., auto_refresh=True)``) reads the client's loaded index at
    # each call, since a whole-version refresh puts a new one in its place, and counts its
    # namespaces again for each version it sees.
    @property
    def _session(self) -> SessionIndex:
        live = self.__dict__.get("_live")
        return live[0].loaded_index(live[1]) if live else self.__dict__["_session_index"]

    @_session.setter
    def _session(self, session: SessionIndex) -> None:
        self.__dict__["_session_index"] = session

    @property
    def _namespaces(self) -> Counter[tuple[str, ...]]:
        counts = self.__dict__["_namespace_counts"]
        if self.__dict__.get("_live"):
            session = self._session
            seen = self.__dict__.get("_counted_at")
            if seen is None or seen[0] is not session or seen[1] != session.version:
                counts = self.__dict__["_namespace_counts"] = Counter(
                    records.parse_record_id(doc.id)[0]
                    for doc in session.get_docs_sync(filter={records.KIND: records.RECORD})
                )
                self.__dict__["_counted_at"] = (session, session.version)
        return counts

    @_namespaces.setter
    def _namespaces(self, counts: Counter[tuple[str, ...]]) -> None:
        self.__dict__["_namespace_counts"] = counts

    @property
    def session(self) -> SessionIndex:
        """The Lichen session underneath (one index holds every namespace)."""
        return self._session

    def __repr__(self) -> str:
        return f"LichenStore(index={self._session.name!r}, items={sum(self._namespaces.values())})"

    # ------------------------------------------------------------------ persistence
    def push(self, *, overwrite: bool = False) -> PushIndexResult:
        """Push the index to the client's store (embedded directory or server), so a
        later ``LichenStore.open(client, name)`` (any process) resumes it."""
        with self._lock:  # a whole batch or none of it
            return self._session.push_index_sync(overwrite=overwrite)

    async def apush(self, *, overwrite: bool = False) -> PushIndexResult:
        return await asyncio.to_thread(self.push, overwrite=overwrite)

    # ------------------------------------------------------------------ BaseStore
    def batch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        plan = self._plan(ops)
        return self._run(ops, plan, *self._embed(plan))

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        plan = self._plan(ops)
        if self._embeddings is None:
            embedded = await asyncio.to_thread(self._embed, plan)
        else:
            embedded = await self._aembed(plan)
        return await asyncio.to_thread(self._run, ops, plan, *embedded)

    # ------------------------------------------------------------------ step 1: validate
    def _plan(self, ops: Sequence[Op]) -> _Plan:
        plan = _Plan()
        for position, op in enumerate(ops):
            where = f"ops[{position}]"
            if isinstance(op, PutOp):
                _check_namespace(op.namespace, where, writing=op.value is not None)
                _check_key(op.key, where)
                put = _Put(tuple(op.namespace), op.key, op.value, ttl=_check_minutes(op.ttl, f"{where}.ttl"))
                if op.value is not None:
                    put.value_json = records.encode_value(op.value, where)
                    put.fields = records.value_fields(op.value)
                    if op.index is not False:
                        paths = self._paths if op.index is None else _index_paths(op.index, where)
                        selected = records.texts_to_embed(op.value, paths)
                        put.labels = [label for label, _ in selected]
                        put.store_fields = op.index is None
                        put.first_text = len(plan.texts)
                        plan.texts.extend(text for _, text in selected)
                plan.puts.pop(records.record_id(put.namespace, put.key), None)  # keep the last one, in order
                plan.puts[records.record_id(put.namespace, put.key)] = put
            elif isinstance(op, GetOp):
                _check_namespace(op.namespace, where)
                _check_key(op.key, where)
            elif isinstance(op, SearchOp):
                _check_namespace(op.namespace_prefix, where)
                _check_count(op.limit, f"{where}.limit")
                _check_count(op.offset, f"{where}.offset")
                filter_clauses(op.filter)  # fail before anything is embedded
                if op.query is not None and not isinstance(op.query, str):
                    raise InvalidArgumentError(f"{where}.query must be a string, got {type(op.query).__name__}")
                if op.query and op.query not in plan.queries:
                    plan.queries.append(op.query)
            elif isinstance(op, ListNamespacesOp):
                for condition in op.match_conditions or ():
                    _check_condition(condition, where)
                if op.max_depth is not None:
                    _check_count(op.max_depth, f"{where}.max_depth")
                _check_count(op.limit, f"{where}.limit")
                _check_count(op.offset, f"{where}.offset")
            else:
                raise InvalidArgumentError(f"{where}: unknown operation type {type(op).__name__}")
        return plan

    # ------------------------------------------------------------------ step 2: embed
    def _embed(self, plan: _Plan) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        if self._embeddings is not None:
            docs = self._embeddings.embed_documents(plan.texts) if plan.texts else []
            queries = [self._embeddings.embed_query(q) for q in plan.queries]
            return self._vectors(docs, len(plan.texts)), dict(zip(plan.queries, self._vectors(queries, len(queries))))
        empty = np.empty((0, self._dimension or 0), dtype=np.float32)
        docs = self._session.embed_texts(plan.texts) if plan.texts else empty
        # Search texts are queries: the model's query prompt and query encoder (int8 for
        # the built-in model), as a Lichen query embeds them, not the documents' path.
        return docs, {query: self._session.embed_query(query) for query in plan.queries}

    async def _aembed(self, plan: _Plan) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        assert self._embeddings is not None
        docs = await self._embeddings.aembed_documents(plan.texts) if plan.texts else []
        queries = await asyncio.gather(*(self._embeddings.aembed_query(q) for q in plan.queries))
        return self._vectors(docs, len(plan.texts)), dict(zip(plan.queries, self._vectors(list(queries), len(queries))))

    def _vectors(self, vectors: Sequence[Sequence[float]], expected: int) -> np.ndarray:
        array = np.asarray(vectors, dtype=np.float32).reshape(len(vectors), -1) if len(vectors) else np.empty((0, self._dimension or 0), dtype=np.float32)
        if array.shape[0] != expected:
            raise InvalidArgumentError(f"the embedding function returned {array.shape[0]} vectors for {expected} texts")
        return array  # the engine checks dimension, NaN and normalises

    # ------------------------------------------------------------------ step 3: read, then write
    def _run(self, ops: Sequence[Op], plan: _Plan, texts: np.ndarray, queries: dict[str, np.ndarray]) -> list[Result]:
        with self._lock:
            if (self.ttl_config or {}).get("omit_expired") and any(not isinstance(op, PutOp) for op in ops):
                self._sweep_expired()  # expired items are never read: gone now rather than at the next sweep
            # Reads see the store as it was before this batch's writes (as InMemoryStore).
            results: list[Result] = []
            refresh: dict[str, DocumentInfo] = {}  # records read with refresh_ttl whose TTL restarts
            for op in ops:
                if isinstance(op, GetOp):
                    results.append(self._get(op, refresh))
                elif isinstance(op, SearchOp):
                    results.append(self._search(op, queries.get(op.query) if op.query else None, refresh))
                elif isinstance(op, ListNamespacesOp):
                    results.append(self._list_namespaces(op))
                else:
                    results.append(None)
            if refresh:
                self._refresh_ttl(refresh)
            if plan.puts:
                self._write(plan, texts)
            return results

    def _get(self, op: GetOp, refresh: dict[str, DocumentInfo]) -> Item | None:
        docs = self._session.get_docs_sync(ids=[records.record_id(op.namespace, op.key)])
        if docs and op.refresh_ttl:
            _note_refresh(docs, refresh)
        return records.to_item(docs[0]) if docs else None

    def _search(self, op: SearchOp, query: np.ndarray | None, refresh: dict[str, DocumentInfo]) -> list[SearchItem]:
        where = records.namespace_clauses(op.namespace_prefix) + filter_clauses(op.filter)
        stop = op.offset + op.limit
        if stop == 0:
            return []
        scored: list[tuple[str, float]] = []
        complete = True
        if query is not None:
            scored, complete = self._rank(op.query or "", query, where, stop)
        ranked: list[tuple[str, float | None]] = list(scored)
        if complete and len(ranked) < stop:
            # After every scored item: the items with nothing embedded (index=False),
            # or, without a query, all matching items; most recently updated first.
            unscored = where if query is None else [*where, {records.VECTOR_COUNT: {"$eq": 0}}]
            ranked.extend((doc_id, None) for doc_id in self._records_by_recency(unscored))
        page = ranked[op.offset : stop]
        docs = {doc.id: doc for doc in self._session.get_docs_sync(ids=[doc_id for doc_id, _ in page])}
        if op.refresh_ttl:
            _note_refresh(docs.values(), refresh)
        return [records.to_search_item(docs[doc_id], score) for doc_id, score in page]

    def _rank(self, text: str, query: np.ndarray, where: list[dict[str, Any]], stop: int) -> tuple[list[tuple[str, float]], bool]:
        """Items by their best-matching vector (max pooling, as LangGraph's stores),
        fetching more vector hits until ``stop`` distinct items are found or none remain."""
        condition = {"$and": [{records.KIND: {"$eq": records.VECTOR}}, *where]}
        top_k = stop
        while True:
            hits = self._session.query_sync(text, QueryOptions(top_k=top_k, filter=condition, alpha=1.0, embedding=query)).docs
            best: dict[str, float] = {}
            for hit in hits:
                best.setdefault(records.record_of(hit.id), hit.score)
            exhausted = len(hits) < top_k
            if exhausted or len(best) >= stop:
                return list(best.items()), exhausted
            top_k *= 2

    def _records_by_recency(self, where: list[dict[str, Any]]) -> list[str]:
        docs = self._session.get_docs_sync(filter={"$and": [{records.KIND: {"$eq": records.RECORD}}, *where]})
        docs.sort(key=lambda doc: doc.metadata[records.UPDATED], reverse=True)  # stable: ties keep insertion order
        return [doc.id for doc in docs]

    def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        names: Iterable[tuple[str, ...]] = (
            ns for ns in self._namespaces if all(_matches(condition, ns) for condition in op.match_conditions or ())
        )
        if op.max_depth is not None:
            names = {ns[: op.max_depth] for ns in names}
        return sorted(names)[op.offset : op.offset + op.limit]

    def _placeholder(self, dimension: int | None = None) -> np.ndarray:
        placeholder = np.zeros(self._dimension or dimension or 0, dtype=np.float32)
        placeholder[0] = 1.0  # records are never ranked, but Lichen refuses a zero vector
        return placeholder

    def _write(self, plan: _Plan, texts: np.ndarray) -> None:
        existing = {doc.id: doc.metadata or {} for doc in self._session.get_docs_sync(ids=list(plan.puts))}
        now, now_epoch = records.timestamp(), records.epoch()
        placeholder = self._placeholder(texts.shape[1])
        docs: list[DocumentInfo] = []
        stale: list[str] = []
        for record, put in plan.puts.items():
            old = existing.get(record)
            old_count = int(old[records.VECTOR_COUNT]) if old else 0
            if put.value is None:
                if old is not None:
                    stale += [record, *records.vector_ids(record, old_count)]
                continue
            count = len(put.labels)
            docs.append(
                records.record_document(
                    put.namespace, put.key, put.value_json, put.fields,
                    created=old[records.CREATED] if old else now, updated=now, vector_count=count, placeholder=placeholder,
                    ttl=records.expiry(put.ttl, now_epoch) if put.ttl is not None else None,
                )
            )
            for i, label in enumerate(put.labels):
                vector = texts[put.first_text + i]
                docs.append(records.vector_document(record, i, label, plan.texts[put.first_text + i], put.namespace, put.fields, vector))
            stale += records.vector_ids(record, old_count, start=count)
        fields = [path for path, _ in self._paths]
        if fields != self._recorded_fields and any(put.store_fields and put.labels for put in plan.puts.values()):
            docs.append(records.config_document(fields, int(self._dimension or texts.shape[1]), placeholder))
            self._recorded_fields = fields
        # One validated batch: if Lichen refuses it (an oversized value, say), nothing changed.
        if docs:
            self._session.add_docs_sync(docs)
        if stale:
            self._session.delete_docs_sync(stale)
        for record, put in plan.puts.items():
            was, now_present = record in existing, put.value is not None
            if was != now_present:
                self._count(put.namespace, 1 if now_present else -1)

    def _count(self, namespace: tuple[str, ...], change: int) -> None:
        self._namespaces[namespace] += change
        if self._namespaces[namespace] <= 0:
            del self._namespaces[namespace]

    # ------------------------------------------------------------------ index fields
    def _check_index_fields(self) -> None:
        """Warn when the index's vectors were built from other index fields than this
        store embeds: new items would be found by other text than the stored ones."""
        stored = self._session.get_docs_sync(ids=[records.CONFIG_ID])
        self._recorded_fields: list[str] | None = list(stored[0].metadata[records.FIELDS]) if stored else None
        fields = [path for path, _ in self._paths]
        if self._recorded_fields is not None and self._recorded_fields != fields:
            warnings.warn(
                f"index {self._session.name!r} holds vectors built from index fields {self._recorded_fields}, "
                f"but this store embeds {fields}: searches would compare items embedded from different text. "
                f"Open it with index={{'fields': {self._recorded_fields}}}, or put the items again to re-embed them",
                UserWarning,
                stacklevel=4,
            )

    # ------------------------------------------------------------------ TTL
    def _init_ttl(self, ttl: TTLConfig | None) -> None:
        self.ttl_config = _check_ttl_config(ttl)
        self._sweeper: threading.Thread | None = None
        self._sweeper_stop = threading.Event()

    def _refresh_ttl(self, docs: dict[str, DocumentInfo]) -> None:
        """Restart the TTL of records just read: their expiry moves to now + their TTL
        (``created`` and ``updated`` stay: reading is not updating)."""
        now = records.epoch()
        placeholder = self._placeholder()
        self._session.add_docs_sync([
            DocumentInfo(id=doc.id, text=doc.text, metadata={**doc.metadata, **records.expiry(doc.metadata[records.TTL], now)}, embedding=placeholder)
            for doc in docs.values()
        ])

    def _sweep_expired(self) -> int:
        expired = self._session.get_docs_sync(
            filter={"$and": [{records.KIND: {"$eq": records.RECORD}}, {records.EXPIRES: {"$lt": records.epoch()}}]}
        )
        if not expired:
            return 0
        doomed = [id_ for doc in expired for id_ in (doc.id, *records.vector_ids(doc.id, int(doc.metadata[records.VECTOR_COUNT])))]
        self._session.delete_docs_sync(doomed)
        for doc in expired:
            self._count(records.parse_record_id(doc.id)[0], -1)
        return len(expired)

    def sweep_ttl(self) -> int:
        """Delete the items whose TTL has run out (and their vectors); returns how many.
        As in LangGraph's Postgres store, expired items stay readable until swept unless
        the TTLConfig says ``omit_expired``."""
        with self._lock:
            return self._sweep_expired()

    async def asweep_ttl(self) -> int:
        return await asyncio.to_thread(self.sweep_ttl)

    def start_ttl_sweeper(self, sweep_interval_minutes: float | None = None) -> concurrent.futures.Future[None]:
        """Sweep expired items every ``sweep_interval_minutes`` (default: the TTLConfig's
        ``sweep_interval_minutes``, else 5) on a daemon thread, until
        :meth:`stop_ttl_sweeper` or the returned future is cancelled. Without a TTLConfig
        there is nothing to sweep: the future is already done."""
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        if not self.ttl_config:
            future.set_result(None)
            return future
        interval = _check_minutes(sweep_interval_minutes, "sweep_interval_minutes") or self.ttl_config.get("sweep_interval_minutes") or DEFAULT_SWEEP_INTERVAL_MINUTES
        future.add_done_callback(lambda done: self._sweeper_stop.set() if done.cancelled() else None)
        if self._sweeper is not None and self._sweeper.is_alive():
            logger.info("the TTL sweeper is already running")
            return future
        self._sweeper_stop.clear()
        stop = self._sweeper_stop

        def sweep_until_stopped() -> None:
            while not stop.wait(interval * 60.0):
                try:
                    swept = self.sweep_ttl()
                    if swept:
                        logger.info("swept %d expired items from %r", swept, self._session.name)
                except Exception:  # a failed sweep is retried at the next interval
                    logger.exception("TTL sweep of %r failed", self._session.name)
            if not future.done():
                future.set_result(None)

        self._sweeper = threading.Thread(target=sweep_until_stopped, name="lichen-ttl-sweeper", daemon=True)
        self._sweeper.start()
        return future

    def stop_ttl_sweeper(self, timeout: float | None = None) -> bool:
        """Stop the sweeper thread; ``False`` if it was still running after ``timeout`` seconds."""
        if self._sweeper is None or not self._sweeper.is_alive():
            return True
        self._sweeper_stop.set()
        self._sweeper.join(timeout)
        if self._sweeper.is_alive():
            return False
        self._sweeper = None
        return True


# ---------------------------------------------------------------------- checks and matching
def _check_namespace(namespace: Any, where: str, *, writing: bool = False) -> None:
    """LangGraph's rules (BaseStore checks them too, but batch() can be called directly)."""
    if not isinstance(namespace, tuple):
        raise InvalidNamespaceError(f"{where}: namespace must be a tuple of strings, got {namespace!r}")
    if writing and not namespace:
        raise InvalidNamespaceError(f"{where}: namespace cannot be empty")
    if writing and namespace[0] == "langgraph":
        raise InvalidNamespaceError(f'{where}: root label for namespace cannot be "langgraph", got {namespace}')
    for label in namespace:
        if not isinstance(label, str) or not label or "." in label:
            raise InvalidNamespaceError(f"{where}: namespace labels must be non-empty strings without '.', got {namespace!r}")


def _note_refresh(docs: Iterable[DocumentInfo], refresh: dict[str, DocumentInfo]) -> None:
    for doc in docs:
        if records.TTL in (doc.metadata or {}):
            refresh[doc.id] = doc


def _check_minutes(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or value == float("inf"):
        raise InvalidArgumentError(f"{where} must be a positive number of minutes or None, got {value!r}")
    return float(value)


_TTL_OPTIONS = ("refresh_on_read", "omit_expired", "default_ttl", "sweep_interval_minutes")


def _check_ttl_config(ttl: Any) -> TTLConfig | None:
    if ttl is None:
        return None
    if not isinstance(ttl, Mapping):
        raise InvalidArgumentError(f"ttl must be a TTLConfig dict, got {type(ttl).__name__}")
    unknown = sorted(set(ttl) - set(_TTL_OPTIONS))
    if unknown:
        raise InvalidArgumentError(f"unknown ttl option(s) {unknown}; expected {', '.join(_TTL_OPTIONS)}")
    for flag in ("refresh_on_read", "omit_expired"):
        if flag in ttl and not isinstance(ttl[flag], bool):
            raise InvalidArgumentError(f"ttl {flag} must be True or False, got {ttl[flag]!r}")
    _check_minutes(ttl.get("default_ttl"), "ttl default_ttl")
    _check_minutes(ttl.get("sweep_interval_minutes"), "ttl sweep_interval_minutes")
    return TTLConfig(**ttl)  # type: ignore[typeddict-item]


def _check_key(key: Any, where: str) -> None:
    if not isinstance(key, str) or not key:
        raise InvalidArgumentError(f"{where}: key must be a non-empty string, got {key!r}")


def _check_count(value: Any, where: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidArgumentError(f"{where} must be a non-negative integer, got {value!r}")


def _check_condition(condition: Any, where: str) -> None:
    if not isinstance(condition, MatchCondition) or condition.match_type not in ("prefix", "suffix"):
        raise InvalidArgumentError(f"{where}: match conditions must be MatchCondition('prefix'|'suffix', path), got {condition!r}")
    _check_namespace(tuple(condition.path), where)


def _index_paths(index: Any, where: str) -> list[records.TextPath]:
    if isinstance(index, str) or not isinstance(index, list) or not all(isinstance(p, str) and p for p in index):
        raise InvalidArgumentError(f"{where}: index must be False, None or a list of JSON paths, got {index!r}")
    return [(p, p if p == "$" else tokenize_path(p)) for p in index]


def _matches(condition: MatchCondition, namespace: tuple[str, ...]) -> bool:
    path = tuple(condition.path)
    if len(namespace) < len(path):
        return False
    window = namespace[: len(path)] if condition.match_type == "prefix" else namespace[len(namespace) - len(path) :]
    return all(want == "*" or want == got for want, got in zip(path, window))
