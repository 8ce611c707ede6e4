"""``Client``: opens sessions and holds long-term indexes, over any :class:`IndexStore`.

With no URL the store is an embedded directory (zero set-up); with a URL (argument or
``LICHEN_URL``) it is a Lichen server reached over HTTP. The client never branches on
which: both stores speak the same protocol. Async methods follow the seed; every one has
a ``*_sync`` twin built from the same private steps.

**Live long-term indexes.** ``load_index(name, auto_refresh=True)`` keeps the loaded copy
current from a background thread (one per index: :class:`_Refresher`). It waits for the
stored index to change (a long-poll on a server that offers one, the file's identity for
the embedded store, ``get_info`` every ``interval`` seconds otherwise), then takes the
change by delta where the store gives one (:meth:`LiveStore.changes`: the rows added or
replaced and the ids removed, applied with ``IndexCore.apply_changes`` under the core's
lock, so a query sees the version before or after) or downloads the index whole, builds a
new :class:`SessionIndex` from it and swaps it into the loaded map in one assignment
(queries already running finish on the old one; the old one is never changed). A failed
refresh keeps what is loaded, logs a warning, goes into the index's status
(:meth:`Client.index_status`) and is retried with a jittered, growing pause. Queries
never wait for a refresh (apart from the moment a delta is applied).

**Availability.** With the server unreachable, ``load_index`` serves the download cache's
copy if there is one, and says so: ``index_status(name).stale`` and
``was_served_stale(name)``; with no copy it raises ``NetworkError`` naming the server.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import (
    ConflictError,
    CorruptDataError,
    IndexNotLoadedError,
    InvalidArgumentError,
    LichenError,
    NetworkError,
    NotFoundError,
)
from ._session import SessionIndex
from ._types import DocumentInfo, IndexInfo, PushIndexResult, QueryOptions, SearchResult
from ._validation import as_query_options, check_documents
from .engine.core import IndexCore
from .format.snapshot import IndexSnapshot
from .models import DEFAULT_MODEL_ID
from .stores.base import IndexChanges, IndexState, IndexStore, LiveStore

if TYPE_CHECKING:  # the ingest wing is imported when first used
    from .ingest.pipeline import AddResult, Prepared
    from .ingest.sync import SyncReport

__all__ = ["Client", "IndexStatus", "LoadReport"]

logger = logging.getLogger("lichen.client")

_WRITE_RETRIES = 5
DEFAULT_REFRESH_INTERVAL = 5.0
"""Seconds between two looks at the store where it cannot be waited on (the embedded
store's file, a server without long-polls); also the first pause after a failure."""
LONG_POLL_SECONDS = 20.0
"""How long one long-poll waits on the server before it is made again."""
MAX_BACKOFF_SECONDS = 60.0
"""The longest pause between two attempts to refresh after failures."""
DEFAULT_LOAD_CONCURRENCY = 4
"""Indexes :meth:`Client.load_indexes` loads at once (each holds a download and a decode)."""


@dataclass(frozen=True)
class IndexStatus:
    """Where a loaded long-term index stands (:meth:`Client.index_status`).

    ``stale`` is true while the copy in use could not be confirmed current: it was loaded
    from the download cache because the server did not answer, or the last refresh
    failed. ``last_refresh`` is when the copy was last confirmed current or brought up to
    date (UTC), ``last_error`` why the last attempt failed (``None`` once one succeeds)."""

    name: str
    version: int
    etag: str
    doc_count: int
    stale: bool
    last_refresh: datetime | None
    last_error: str | None
    auto_refresh: bool
    source: str
    """``"store"`` (read from the store), ``"cache"`` (the download cache, server down)."""
    refreshes: int = 0
    """New versions taken since loading, by delta or whole."""
    delta_refreshes: int = 0
    full_refreshes: int = 0


@dataclass
class LoadReport:
    """What :meth:`Client.load_indexes` did: the indexes it loaded, and for each one it
    could not, the error saying why (the others loaded all the same)."""

    loaded: dict[str, SessionIndex] = field(default_factory=dict)
    failed: dict[str, LichenError] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


def _now() -> datetime:
    return datetime.now(timezone.utc)


class _Live:
    """The refresh state of one loaded index, shared by the client and its refresher."""

    def __init__(self, name: str, state: IndexState, *, source: str, stale: bool, error: str | None) -> None:
        self.name = name
        self.state = state
        self.source = source
        self.stale = stale
        self.served_stale = stale
        self.last_error = error
        self.last_refresh: datetime | None = None if stale else _now()
        self.auto_refresh = False
        self.refreshes = self.delta_refreshes = self.full_refreshes = 0
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()

    def confirmed(self) -> None:
        with self.lock:
            self.stale = False
            self.last_error = None
            self.last_refresh = _now()

    def failed(self, error: BaseException) -> None:
        with self.lock:
            self.stale = True
            self.served_stale = True
            self.last_error = f"{type(error).__name__}: {error}"

    def status(self, loaded: dict[str, SessionIndex]) -> IndexStatus | None:
        """The status of the copy in ``loaded`` (``None``: not loaded), read under the lock
        a refresh holds while it puts a new version in place and records it, so the
        version and the documents counted are always the same version's."""
        with self.lock:
            index = loaded.get(self.name)
            if index is None:
                return None
            return IndexStatus(
                name=self.name, version=self.state.version, etag=self.state.etag, doc_count=index.doc_count,
                stale=self.stale, last_refresh=self.last_refresh, last_error=self.last_error,
                auto_refresh=self.auto_refresh and not self.stop.is_set(), source=self.source, refreshes=self.refreshes,
                delta_refreshes=self.delta_refreshes, full_refreshes=self.full_refreshes,
            )


def _make_store(
    url: str | None, project_id: str | None, project_key: str | None, home: str | Path | None, **http_options: Any
) -> IndexStore:
    if url:
        from .stores.http import HttpStore

        store: Any = HttpStore(url, project_id, project_key, cache_dir=home, **http_options)
    else:
        from ._home import default_home
        from .stores.local import LocalStore

        store = LocalStore(Path(home) if home else default_home())
    store.check_home()  # an unusable LICHEN_HOME is reported now, not at the first push
    return store


class Client:
    """Entry point: ``Client()`` for the embedded store, ``Client(project_id, project_key,
    url="http://host:8080")`` for a Lichen server.

    Example::

        client = Client()
        session = await client.session("call-123")
        await session.add_docs([DocumentInfo(id="turn-1", text="billed twice")])
        await session.push_index()
    """

    def __init__(
        self,
        project_id: str | None = None,
        project_key: str | None = None,
        *,
        url: str | None = None,
        home: str | Path | None = None,
        store: IndexStore | None = None,
        progress: bool | None = None,
        **http_options: Any,
    ) -> None:
        """``progress``: tqdm bars while embedding a few hundred texts or more and during
        large transfers; ``None`` (default) shows them on a terminal only,
        ``LICHEN_PROGRESS=0`` hides them. ``http_options`` go to :class:`HttpStore`
        (``timeout``, ``retries``, ...)."""
        self.progress = progress
        self.project_id = project_id or os.environ.get("LICHEN_PROJECT_ID")
        self.project_key = project_key or os.environ.get("LICHEN_PROJECT_KEY")
        self.url = url or os.environ.get("LICHEN_URL") or None
        home = home or os.environ.get("LICHEN_HOME") or None
        self.store: IndexStore = store or _make_store(
            self.url, self.project_id, self.project_key, home, progress=progress, **http_options
        )
        self._loaded: dict[str, SessionIndex] = {}
        self._loaded_lock = threading.Lock()
        self._live: dict[str, _Live] = {}
        self.long_poll_seconds = LONG_POLL_SECONDS
        """How long one long-poll of an auto-refreshing index waits on the server."""

    def __repr__(self) -> str:
        where = self.url or "embedded"
        return f"Client(store={where!r}, loaded={sorted(self._loaded)})"

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Stop every auto-refresh and release the store's connections (a no-op for the
        embedded store). Loaded indexes stay loaded, as they are."""
        self._stop_refreshing()
        close = getattr(self.store, "close", None)
        if close is not None:
            close()

    async def aclose(self) -> None:
        self._stop_refreshing()
        aclose = getattr(self.store, "aclose", None)
        if aclose is not None:
            await aclose()
        else:
            self.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ private steps
    def _session_from(self, name: str, model_id: str | None, snapshot: IndexSnapshot | None) -> SessionIndex:
        if snapshot is None:
            return SessionIndex(name, model_id or DEFAULT_MODEL_ID, store=self.store, progress=self.progress)
        if model_id is not None and model_id != snapshot.model_id:
            raise InvalidArgumentError(
                f"index {name!r} was built with model_id {snapshot.model_id!r}; resuming it with {model_id!r} "
                "would mix incompatible vectors (omit model_id to adopt the stored one)"
            )
        return SessionIndex.from_snapshot(snapshot, store=self.store, progress=self.progress)

    @staticmethod
    def _adopt(snapshot: IndexSnapshot) -> SessionIndex:
        index = SessionIndex.from_snapshot(snapshot, read_only=True)
        # A big index stored without its graph (format 1, or changed on a server beyond
        # what its graph edits cover) builds it here, at load, rather than in the middle
        # of its first live query; one a server changed less applies those edits here.
        index.core.prepare_graph()
        return index

    # ---- live indexes: loading, refreshing, status
    def _read_state(self, name: str) -> tuple[IndexSnapshot, IndexState]:
        if isinstance(self.store, LiveStore):
            return self.store.read_with_state(name)
        snapshot = self.store.read(name)
        return snapshot, IndexState(snapshot.version, "", "", snapshot.doc_count, snapshot.updated_at)

    def _fetch(self, name: str) -> tuple[SessionIndex, IndexState, str, bool, str | None]:
        """Read ``name`` for loading: ``(index, state, source, stale, error)``. A cached
        copy brought up to date by delta where the store can (no whole download after a
        restart when a few documents changed); the index whole otherwise; the cached copy
        as it is, marked stale, when the store cannot be reached."""
        store = self.store
        cached = store.read_cached(name) if isinstance(store, LiveStore) else None
        try:
            if cached is not None and cached[1].content:
                changes = store.changes(name, cached[1])  # type: ignore[union-attr]
                if changes is not None:
                    index = self._adopt(cached[0])
                    try:
                        _apply(index, changes)
                        return index, changes.state, "store", False, None
                    except (InvalidArgumentError, CorruptDataError) as exc:
                        logger.warning("index %r: the changes since the cached copy do not apply (%s); downloading it", name, exc)
            snapshot, state = self._read_state(name)
        except NetworkError as exc:
            if cached is None:
                raise
            logger.warning("index %r: %s; serving the cached copy (version %d)", name, exc, cached[1].version)
            return self._adopt(cached[0]), cached[1], "cache", True, f"{type(exc).__name__}: {exc}"
        return self._adopt(snapshot), state, "store", False, None

    def _load(self, name: str, *, auto_refresh: bool, interval: float) -> SessionIndex:
        if auto_refresh and not (isinstance(interval, (int, float)) and interval > 0):
            raise InvalidArgumentError(f"interval must be a positive number of seconds, got {interval!r}")
        index, state, source, stale, error = self._fetch(name)
        live = _Live(name, state, source=source, stale=stale, error=error)
        with self._loaded_lock:
            previous = self._live.pop(name, None)
            self._loaded[name] = index
            self._live[name] = live
        if previous is not None:
            previous.stop.set()
        if auto_refresh:
            self._start_refresher(live, float(interval))
        return index

    def _start_refresher(self, live: _Live, interval: float) -> None:
        live.auto_refresh = True
        live.thread = threading.Thread(
            target=_Refresher(self, live, interval).run, name=f"lichen-refresh-{live.name}", daemon=True
        )
        live.thread.start()

    def start_auto_refresh(self, name: str, *, interval: float = DEFAULT_REFRESH_INTERVAL) -> None:
        """Keep an index already loaded (without ``auto_refresh``) current from now on, as
        ``load_index(name, auto_refresh=True)`` would, without loading it again; a no-op if
        it is refreshed already. ``IndexNotLoadedError`` if it is not loaded."""
        if not (isinstance(interval, (int, float)) and interval > 0):
            raise InvalidArgumentError(f"interval must be a positive number of seconds, got {interval!r}")
        with self._loaded_lock:
            live = self._live.get(name)
            if live is None:
                raise self._not_loaded(name, None)
            if live.auto_refresh and not live.stop.is_set():
                return
            self._start_refresher(live, float(interval))

    def _load_many(self, names: Sequence[str], auto_refresh: bool, interval: float, concurrency: int) -> LoadReport:
        if isinstance(names, str):
            raise InvalidArgumentError("names must be a list of index names, not one string")
        if not (isinstance(concurrency, int) and concurrency >= 1):
            raise InvalidArgumentError(f"concurrency must be a positive int, got {concurrency!r}")
        names = list(dict.fromkeys(names))
        report = LoadReport()

        def one(name: str) -> None:
            try:
                report.loaded[name] = self._load(name, auto_refresh=auto_refresh, interval=interval)
            except LichenError as exc:
                report.failed[name] = exc

        if names:
            with ThreadPoolExecutor(max_workers=min(concurrency, len(names)), thread_name_prefix="lichen-load") as pool:
                list(pool.map(one, names))
        report.loaded = {name: report.loaded[name] for name in names if name in report.loaded}
        return report

    def _apply_changes(self, live: _Live, changes: IndexChanges) -> bool:
        """Apply a delta to the loaded copy of ``live``; ``False`` if it was unloaded."""
        index = self._loaded.get(live.name)
        if index is None or self._live.get(live.name) is not live or live.stop.is_set():
            return False
        with live.lock:  # index_status sees the changes and their version together
            _apply(index, changes)
            live.state = changes.state
            if not changes.empty:
                live.refreshes += 1
                live.delta_refreshes += 1
        return True

    def _swap(self, live: _Live, snapshot: IndexSnapshot, state: IndexState) -> bool:
        """Build the new version's index and put it in place of the loaded one in one
        assignment (the old one is left as it is, for the queries still running on it)."""
        index = self._adopt(snapshot)
        with self._loaded_lock, live.lock:  # index_status sees the new index with its version
            if self._live.get(live.name) is not live or live.stop.is_set():
                return False
            self._loaded[live.name] = index
            live.state = state
            live.refreshes += 1
            live.full_refreshes += 1
            live.source = "store"
        return True

    def _stop_refreshing(self) -> None:
        with self._loaded_lock:
            lives = list(self._live.values())
        for live in lives:
            live.stop.set()

    def index_status(self, name: str) -> IndexStatus:
        """Where the loaded index ``name`` stands: its version, whether it is
        ``stale``, when it was last refreshed, the last error (``IndexNotLoadedError``
        if it is not loaded)."""
        live = self._live.get(name)
        status = live.status(self._loaded) if live is not None else None
        if status is None:
            raise self._not_loaded(name, None)
        return status

    def was_served_stale(self, name: str) -> bool:
        """Whether the loaded index ``name`` has been in use while stale since it was
        loaded: served from the cache with the server down, or left behind by a failed
        refresh (it stays true once the index catches up: answers given meanwhile may
        have come from an older version)."""
        live = self._live.get(name)
        if live is None:
            raise self._not_loaded(name, None)
        return live.served_stale

    def loaded_index(self, name: str) -> SessionIndex:
        """The in-memory copy of a long-term index loaded with :meth:`load_index`; else
        ``IndexNotLoadedError`` saying whether the index exists at all."""
        index = self._loaded.get(name)
        if index is None:
            raise self._not_loaded(name, self._exists(name))
        return index

    async def _aloaded_index(self, name: str) -> SessionIndex:
        index = self._loaded.get(name)
        if index is None:
            raise self._not_loaded(name, await self._aexists(name))
        return index

    def _exists(self, name: str) -> bool | None:
        """Whether the store holds ``name`` (``None``: it could not say, e.g. offline)."""
        try:
            self.store.get_info(name)
        except NotFoundError:
            return False
        except LichenError:
            return None
        return True

    async def _aexists(self, name: str) -> bool | None:
        try:
            await self.store.aget_info(name)
        except NotFoundError:
            return False
        except LichenError:
            return None
        return True

    def _not_loaded(self, name: str, exists: bool | None) -> IndexNotLoadedError:
        """Not loaded and not existing are two different mistakes: say which it is."""
        where = f"the server at {self.url}" if self.url else "the embedded store"
        if exists is False:
            return IndexNotLoadedError(
                f"index {name!r} does not exist in {where}: create it (client.create_index({name!r}, docs) or "
                f"lichen push), then load it with client.load_index({name!r})"
            )
        state = "exists but is not loaded" if exists else "is not loaded"
        return IndexNotLoadedError(f"index {name!r} {state}: call client.load_index({name!r}) first")

    @property
    def loaded_names(self) -> list[str]:
        return sorted(self._loaded)

    def _unload(self, name: str) -> bool:
        with self._loaded_lock:
            live = self._live.pop(name, None)
            unloaded = self._loaded.pop(name, None) is not None
        if live is not None:
            live.stop.set()
        return unloaded

    def _query_many(self, text: str, options: QueryOptions, per_index: list[SearchResult]) -> SearchResult:
        """Merge by score without de-duplicating: the same id in two indexes is two
        different documents, each tagged with its ``index_name``."""
        docs = sorted((doc for result in per_index for doc in result.docs), key=lambda doc: -doc.score)
        elapsed = sum(r.time_taken_ms for r in per_index)
        return SearchResult(docs=docs[: options.top_k], query=text, index_name=None, time_taken_ms=elapsed)

    @staticmethod
    def _stored_docs(
        snapshot: IndexSnapshot,
        ids: Sequence[str] | None,
        filter: dict[str, Any] | None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[DocumentInfo]:
        """Reading documents needs no embedding model, so none is loaded."""
        if isinstance(ids, str):
            raise InvalidArgumentError("ids must be a list of strings, not one string")
        return IndexCore.from_snapshot(snapshot).get(ids, filter, limit=limit, offset=offset)

    def _build(
        self, name: str, docs: Any, model_id: str | None, base: IndexSnapshot | None, options: dict[str, Any]
    ) -> tuple[SessionIndex, AddResult]:
        session = self._session_from(name, model_id, base)
        added = session.add_docs_sync(docs, **options)
        return session, added

    # ---- documents in: files, folders, records (lichen.ingest)
    def _prepare_embedded(self, name: str, docs: Any, info: IndexInfo, options: dict[str, Any]) -> Prepared:
        """Read and chunk ``docs`` for the stored index ``info``, then embed them here,
        once, so that a read-modify-write retried on conflict does not embed again (and
        truncation is warned about once)."""
        from .ingest.pipeline import fitting_documents, prepare
        from .ingest.truncation import known_to_fit

        prepared = prepare(docs, model_id=info.model_id, **options)
        if prepared.documents:
            batch = SessionIndex(name, info.model_id, dimension=info.dimension or None, progress=self.progress)
            batch.approximate = False  # a batch to embed needs no graph of its own
            with known_to_fit(fitting_documents(prepared.sources)):
                batch.add_docs_sync(prepared.documents)
            embedded = {doc.id: doc for doc in batch.get_docs_sync(include_embeddings=True)}
            prepared.documents = [embedded[doc.id] for doc in prepared.documents]
            for source in prepared.sources:
                source.documents = [embedded[doc.id] for doc in source.documents]
        return prepared

    def _add_inputs(self, name: str, docs: Any, options: dict[str, Any]) -> AddResult:
        from .ingest.pipeline import apply_prepared

        prepared = self._prepare_embedded(name, docs, self.store.get_info(name), options)
        # Stale chunks of the files read are found in the stored index itself: a
        # read-modify-write, retried on conflict, for the server as for the embedded store.
        return self._mutate(name, lambda session: apply_prepared(session, prepared))

    def _sync_folder(self, name: str, directory: str | Path, model_id: str | None, options: dict[str, Any]) -> SyncReport:
        """Open (or start) the session, sync, push if anything changed; on a conflicting
        push, sync again from the new version (a sync is idempotent)."""
        for attempt in range(_WRITE_RETRIES):
            session = self.session_sync(name, model_id)
            report = session.sync_folder_sync(directory, **options)
            if report.dry_run or not report.changes:
                return report
            try:
                session.push_index_sync()
                return report
            except ConflictError:
                if attempt == _WRITE_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def _mutate(self, name: str, change) -> Any:
        """Read-modify-write with optimistic concurrency, retried on conflict."""
        for attempt in range(_WRITE_RETRIES):
            session = SessionIndex.from_snapshot(self.store.read(name), store=self.store, progress=self.progress)
            outcome = change(session)
            try:
                session.push_index_sync()
                return outcome
            except ConflictError:
                if attempt == _WRITE_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ async API
    async def session(self, index_name: str, model_id: str | None = None) -> SessionIndex:
        """Resume the stored index of that name (documents and embeddings, no
        re-embedding) or start an empty session. Raises ``UnauthorizedError`` on bad
        credentials and ``ValueError`` (``InvalidArgumentError``) if ``model_id``
        differs from the stored model."""
        await self.store.acheck_credentials()
        try:
            snapshot = await self.store.aread(index_name)
        except NotFoundError:
            snapshot = None
        return await asyncio.to_thread(self._session_from, index_name, model_id, snapshot)

    async def load_index(
        self, name: str, *, auto_refresh: bool = False, interval: float = DEFAULT_REFRESH_INTERVAL
    ) -> SessionIndex:
        """Fetch a long-term index into memory for in-process :meth:`query` calls.

        ``auto_refresh=True`` keeps it current in the background (see the module
        docstring): query it through :meth:`query` or :meth:`loaded_index` at the time of
        the query, since a whole-index refresh puts a new ``SessionIndex`` in place of the
        one returned here. ``interval``: seconds between looks where the store cannot be
        waited on. With the server down, a cached copy is served and marked stale
        (:meth:`index_status`); with none, ``NetworkError``."""
        return await asyncio.to_thread(self._load, name, auto_refresh=auto_refresh, interval=interval)

    async def load_indexes(
        self,
        names: Sequence[str],
        *,
        auto_refresh: bool = False,
        interval: float = DEFAULT_REFRESH_INTERVAL,
        concurrency: int = DEFAULT_LOAD_CONCURRENCY,
    ) -> LoadReport:
        """Load several indexes, ``concurrency`` at a time, best effort: a
        :class:`LoadReport` of those that loaded and why each other one failed."""
        return await asyncio.to_thread(self._load_many, names, auto_refresh, interval, concurrency)

    async def unload_index(self, name: str) -> bool:
        """Drop the loaded index and stop its auto-refresh."""
        return self._unload(name)

    async def query(self, name: str, text: str, options: QueryOptions | None = None) -> SearchResult:
        return await (await self._aloaded_index(name)).query(text, options)

    async def query_many(self, names: Sequence[str], text: str, options: QueryOptions | None = None) -> SearchResult:
        """Query several loaded indexes and merge by score; each hit keeps ``index_name``."""
        options = as_query_options(options)
        results = [await (await self._aloaded_index(name)).query(text, options) for name in names]
        return self._query_many(text, options, results)

    async def create_index(
        self,
        name: str,
        docs: Any,
        model_id: str | None = None,
        *,
        chunker: Any = None,
        metadata: dict[str, Any] | None = None,
        include: str | Sequence[str] | None = None,
        exclude: str | Sequence[str] | None = None,
        prefix: str | None = None,
        skip_errors: bool = False,
    ) -> PushIndexResult:
        """Embed locally and store a new index; ``ConflictError`` if the name exists.
        ``docs`` takes what :meth:`SessionIndex.add_docs` takes (documents, dicts, JSON
        text, files, folders) with the same options; with ``skip_errors=True`` the inputs
        left out are in the result's ``skipped``."""
        options = dict(chunker=chunker, metadata=metadata, include=include, exclude=exclude, prefix=prefix,
                       skip_errors=skip_errors)
        session, added = await asyncio.to_thread(self._build, name, docs, model_id, None, options)
        result = await session.push_index()
        result.skipped = list(added.skipped)
        return result

    async def add_docs(
        self,
        name: str,
        docs: Any,
        *,
        chunker: Any = None,
        metadata: dict[str, Any] | None = None,
        include: str | Sequence[str] | None = None,
        exclude: str | Sequence[str] | None = None,
        prefix: str | None = None,
        skip_errors: bool = False,
    ) -> AddResult:
        """Add to a stored index; ``docs`` and the options as for
        :meth:`SessionIndex.add_docs`. Documents are embedded here and, against a server,
        merged server-side; files are read, chunked and embedded here, once, then written
        by a read-modify-write of the stored index (retried on conflict), which also
        removes the stale chunks of every file read again."""
        options = dict(chunker=chunker, metadata=metadata, include=include, exclude=exclude, prefix=prefix,
                       skip_errors=skip_errors)
        return await asyncio.to_thread(lambda: self.add_docs_sync(name, docs, **options))

    async def sync_folder(
        self,
        name: str,
        directory: str | Path,
        *,
        model_id: str | None = None,
        include: str | Sequence[str] | None = None,
        exclude: str | Sequence[str] | None = None,
        prefix: str | None = None,
        chunker: Any = None,
        metadata: dict[str, Any] | None = None,
        skip_errors: bool = False,
        dry_run: bool = False,
        progress: Any = None,
    ) -> SyncReport:
        """Bring the stored index ``name`` in step with the files under ``directory`` (see
        :meth:`SessionIndex.sync_folder`): it is opened (or started, with ``model_id``),
        synced, and pushed only if something changed; a conflicting push syncs again from
        the version that won. What ``lichen sync`` runs."""
        options = dict(include=include, exclude=exclude, prefix=prefix, chunker=chunker, metadata=metadata,
                       skip_errors=skip_errors, dry_run=dry_run, progress=progress)
        return await asyncio.to_thread(self._sync_folder, name, directory, model_id, options)

    async def delete_docs(
        self, name: str, ids: Sequence[str] | None = None, *, filter: dict[str, Any] | None = None
    ) -> int:
        """Delete from a stored index by id, by ``filter``, or both (the ids that match)."""
        return await asyncio.to_thread(self.delete_docs_sync, name, ids, filter=filter)

    async def get_docs(
        self,
        name: str,
        ids: Sequence[str] | None = None,
        filter: dict[str, Any] | None = None,
        *,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[DocumentInfo]:
        snapshot = await self.store.aread(name)
        return await asyncio.to_thread(self._stored_docs, snapshot, ids, filter, limit, offset)

    async def get_index(self, name: str) -> IndexInfo:
        return await self.store.aget_info(name)

    async def list_indexes(self) -> list[IndexInfo]:
        return await self.store.alist()

    async def delete_index(self, name: str) -> bool:
        deleted = await self.store.adelete(name)
        self._unload(name)  # only once the store has let go of it
        return deleted

    # ------------------------------------------------------------------ sync twins
    def session_sync(self, index_name: str, model_id: str | None = None) -> SessionIndex:
        self.store.check_credentials()
        try:
            snapshot = self.store.read(index_name)
        except NotFoundError:
            snapshot = None
        return self._session_from(index_name, model_id, snapshot)

    def load_index_sync(
        self, name: str, *, auto_refresh: bool = False, interval: float = DEFAULT_REFRESH_INTERVAL
    ) -> SessionIndex:
        return self._load(name, auto_refresh=auto_refresh, interval=interval)

    def load_indexes_sync(
        self,
        names: Sequence[str],
        *,
        auto_refresh: bool = False,
        interval: float = DEFAULT_REFRESH_INTERVAL,
        concurrency: int = DEFAULT_LOAD_CONCURRENCY,
    ) -> LoadReport:
        return self._load_many(names, auto_refresh, interval, concurrency)

    def unload_index_sync(self, name: str) -> bool:
        return self._unload(name)

    def query_sync(self, name: str, text: str, options: QueryOptions | None = None) -> SearchResult:
        return self.loaded_index(name).query_sync(text, options)

    def query_many_sync(self, names: Sequence[str], text: str, options: QueryOptions | None = None) -> SearchResult:
        options = as_query_options(options)
        results = [self.loaded_index(name).query_sync(text, options) for name in names]
        return self._query_many(text, options, results)

    def create_index_sync(
        self,
        name: str,
        docs: Any,
        model_id: str | None = None,
        *,
        chunker: Any = None,
        metadata: dict[str, Any] | None = None,
        include: str | Sequence[str] | None = None,
        exclude: str | Sequence[str] | None = None,
        prefix: str | None = None,
        skip_errors: bool = False,
    ) -> PushIndexResult:
        options = dict(chunker=chunker, metadata=metadata, include=include, exclude=exclude, prefix=prefix,
                       skip_errors=skip_errors)
        session, added = self._build(name, docs, model_id, None, options)
        result = session.push_index_sync()
        result.skipped = list(added.skipped)
        return result

    def add_docs_sync(
        self,
        name: str,
        docs: Any,
        *,
        chunker: Any = None,
        metadata: dict[str, Any] | None = None,
        include: str | Sequence[str] | None = None,
        exclude: str | Sequence[str] | None = None,
        prefix: str | None = None,
        skip_errors: bool = False,
    ) -> AddResult:
        from .ingest.pipeline import AddResult, is_documents_only

        if not is_documents_only(docs):
            options = dict(chunker=chunker, metadata=metadata, include=include, exclude=exclude, prefix=prefix,
                           skip_errors=skip_errors)
            return self._add_inputs(name, docs, options)
        add_documents = getattr(self.store, "add_documents", None)
        if add_documents is not None:
            # The store merges server-side: embed only the new documents, send only them.
            info = self.store.get_info(name)
            batch = SessionIndex(name, info.model_id, dimension=info.dimension or None, progress=self.progress)
            batch.approximate = False  # a batch to merge needs no graph of its own
            batch.add_docs_sync(docs)
            return AddResult(*add_documents(batch.core.snapshot(name, info.model_id)))
        return self._mutate(name, lambda session: session.add_docs_sync(docs))

    def sync_folder_sync(
        self,
        name: str,
        directory: str | Path,
        *,
        model_id: str | None = None,
        include: str | Sequence[str] | None = None,
        exclude: str | Sequence[str] | None = None,
        prefix: str | None = None,
        chunker: Any = None,
        metadata: dict[str, Any] | None = None,
        skip_errors: bool = False,
        dry_run: bool = False,
        progress: Any = None,
    ) -> SyncReport:
        options = dict(include=include, exclude=exclude, prefix=prefix, chunker=chunker, metadata=metadata,
                       skip_errors=skip_errors, dry_run=dry_run, progress=progress)
        return self._sync_folder(name, directory, model_id, options)

    def delete_docs_sync(self, name: str, ids: Sequence[str] | None = None, *, filter: dict[str, Any] | None = None) -> int:
        delete_documents = getattr(self.store, "delete_documents", None)
        if delete_documents is not None and ids is not None and filter is None:
            return delete_documents(name, ids)
        # A filter is matched against the whole stored index, so the delete is a
        # read-modify-write (a conflicting push retries it).
        return self._mutate(name, lambda session: session.delete_docs_sync(ids, filter=filter))

    def get_docs_sync(
        self,
        name: str,
        ids: Sequence[str] | None = None,
        filter: dict[str, Any] | None = None,
        *,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[DocumentInfo]:
        return self._stored_docs(self.store.read(name), ids, filter, limit, offset)

    def get_index_sync(self, name: str) -> IndexInfo:
        return self.store.get_info(name)

    def list_indexes_sync(self) -> list[IndexInfo]:
        return self.store.list()

    def delete_index_sync(self, name: str) -> bool:
        deleted = self.store.delete(name)
        self._unload(name)
        return deleted


def _apply(index: SessionIndex, changes: IndexChanges) -> None:
    """Apply a delta to a loaded index in one step under its core's lock (a query sees the
    version before or after), and take the delta's version."""
    docs = changes.docs
    ids, texts, metadata = docs.column_lists()
    batch = [DocumentInfo(id=i, text=t, metadata=m) for i, t, m in zip(ids, texts, metadata)]
    if batch:
        check_documents(batch)
    index.core.apply_changes(list(changes.deleted), batch, docs.matrix)
    if changes.state.doc_count and index.doc_count != changes.state.doc_count:
        raise CorruptDataError(
            f"index {index.name!r} holds {index.doc_count} documents after the changes to version "
            f"{changes.state.version}, which has {changes.state.doc_count}"
        )
    # SessionIndex has no setter for the version it was read at: a refreshed copy is that
    # version now (what index.version and index.info() report).
    index._version = changes.state.version
    if changes.state.updated_at:
        index._updated_at = changes.state.updated_at


class _Refresher:
    """The background loop that keeps one loaded index current (module docstring)."""

    def __init__(self, client: Client, live: _Live, interval: float) -> None:
        self.client = client
        self.live = live
        self.interval = interval
        self.failures = 0

    def run(self) -> None:
        live, store = self.live, self.client.store
        while not live.stop.is_set():
            try:
                changed = self._wait_for_change(store)
                if live.stop.is_set():
                    return
                if changed is None:
                    live.confirmed()
                else:
                    self._take(store, changed)
                    live.confirmed()
                self.failures = 0
            except Exception as exc:  # noqa: BLE001 - a failed refresh keeps the loaded copy
                if live.stop.is_set():
                    return
                self.failures += 1
                live.failed(exc)
                pause = min(MAX_BACKOFF_SECONDS, self.interval * 2 ** min(self.failures - 1, 8))
                pause *= random.uniform(0.5, 1.5)
                logger.warning(
                    "refreshing index %r failed (%s: %s); still serving version %d, next try in %.1f s",
                    live.name, type(exc).__name__, exc, live.state.version, pause,
                )
                live.stop.wait(pause)

    def _wait_for_change(self, store: Any) -> IndexState | None:
        """The stored index's new state once it differs from the loaded copy's, or
        ``None`` when a wait ran out without a change."""
        etag = self.live.state.etag
        if isinstance(store, LiveStore):
            if self.live.stale:
                # Not confirmed current (served from the cache, or the last try failed): ask
                # at once rather than wait on a long-poll.
                state = store.state(self.live.name)
                return state if state.etag != etag else None
            return store.watch(self.live.name, etag, self.client.long_poll_seconds, poll=self.interval)
        self.live.stop.wait(self.interval * random.uniform(0.8, 1.2))
        info = store.get_info(self.live.name)
        return None if info.version == self.live.state.version else IndexState(info.version)

    def _take(self, store: Any, state: IndexState) -> None:
        live = self.live
        if isinstance(store, LiveStore) and live.state.content:
            changes = store.changes(live.name, live.state)
            if changes is not None:
                try:
                    self.client._apply_changes(live, changes)
                    return
                except (InvalidArgumentError, CorruptDataError) as exc:
                    # A delta that does not apply (or does not add up) is not retried: the
                    # whole version replaces whatever it left.
                    logger.warning("index %r: the changes do not apply (%s); downloading the version", live.name, exc)
        snapshot, new_state = self.client._read_state(live.name) if isinstance(store, LiveStore) else (
            store.read(live.name), state)
        self.client._swap(live, snapshot, new_state)
