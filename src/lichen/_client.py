"""``Client``: opens sessions and holds long-term indexes, over any :class:`IndexStore`.

With no URL the store is an embedded directory (zero set-up); with a URL (argument or
``LICHEN_URL``) it is a Lichen server reached over HTTP. The client never branches on
which: both stores speak the same protocol. Async methods follow the seed; every one has
a ``*_sync`` twin built from the same private steps.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._errors import (
    ConflictError,
    IndexNotLoadedError,
    InvalidArgumentError,
    LichenError,
    NotFoundError,
)
from ._session import SessionIndex
from ._types import DocumentInfo, IndexInfo, PushIndexResult, QueryOptions, SearchResult
from ._validation import as_query_options
from .engine.core import IndexCore
from .format.snapshot import IndexSnapshot
from .models import DEFAULT_MODEL_ID
from .stores.base import IndexStore

__all__ = ["Client"]

_WRITE_RETRIES = 5


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

    def __repr__(self) -> str:
        where = self.url or "embedded"
        return f"Client(store={where!r}, loaded={sorted(self._loaded)})"

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Release the store's connections (a no-op for the embedded store)."""
        close = getattr(self.store, "close", None)
        if close is not None:
            close()

    async def aclose(self) -> None:
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

    def _remember(self, name: str, snapshot: IndexSnapshot) -> SessionIndex:
        index = SessionIndex.from_snapshot(snapshot, read_only=True)
        # A big index stored without its graph (format 1, or changed on a server beyond
        # what its graph edits cover) builds it here, at load, rather than in the middle
        # of its first live query; one a server changed less applies those edits here.
        index.core.prepare_graph()
        with self._loaded_lock:
            self._loaded[name] = index
        return index

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
            return self._loaded.pop(name, None) is not None

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

    def _build(self, name: str, docs: Sequence[DocumentInfo], model_id: str | None, base: IndexSnapshot | None) -> SessionIndex:
        session = self._session_from(name, model_id, base)
        session.add_docs_sync(docs)
        return session

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

    async def load_index(self, name: str) -> SessionIndex:
        """Fetch a long-term index into memory for in-process :meth:`query` calls."""
        snapshot = await self.store.aread(name)
        return await asyncio.to_thread(self._remember, name, snapshot)

    async def unload_index(self, name: str) -> bool:
        return self._unload(name)

    async def query(self, name: str, text: str, options: QueryOptions | None = None) -> SearchResult:
        return await (await self._aloaded_index(name)).query(text, options)

    async def query_many(self, names: Sequence[str], text: str, options: QueryOptions | None = None) -> SearchResult:
        """Query several loaded indexes and merge by score; each hit keeps ``index_name``."""
        options = as_query_options(options)
        results = [await (await self._aloaded_index(name)).query(text, options) for name in names]
        return self._query_many(text, options, results)

    async def create_index(self, name: str, docs: Sequence[DocumentInfo], model_id: str | None = None) -> PushIndexResult:
        """Embed locally and store a new index; ``ConflictError`` if the name exists."""
        session = await asyncio.to_thread(self._build, name, docs, model_id, None)
        return await session.push_index()

    async def add_docs(self, name: str, docs: Sequence[DocumentInfo]) -> tuple[int, int]:
        return await asyncio.to_thread(self.add_docs_sync, name, docs)

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

    def load_index_sync(self, name: str) -> SessionIndex:
        return self._remember(name, self.store.read(name))

    def unload_index_sync(self, name: str) -> bool:
        return self._unload(name)

    def query_sync(self, name: str, text: str, options: QueryOptions | None = None) -> SearchResult:
        return self.loaded_index(name).query_sync(text, options)

    def query_many_sync(self, names: Sequence[str], text: str, options: QueryOptions | None = None) -> SearchResult:
        options = as_query_options(options)
        results = [self.loaded_index(name).query_sync(text, options) for name in names]
        return self._query_many(text, options, results)

    def create_index_sync(self, name: str, docs: Sequence[DocumentInfo], model_id: str | None = None) -> PushIndexResult:
        return self._build(name, docs, model_id, None).push_index_sync()

    def add_docs_sync(self, name: str, docs: Sequence[DocumentInfo]) -> tuple[int, int]:
        add_documents = getattr(self.store, "add_documents", None)
        if add_documents is not None:
            # The store merges server-side: embed only the new documents, send only them.
            info = self.store.get_info(name)
            batch = SessionIndex(name, info.model_id, dimension=info.dimension or None, progress=self.progress)
            batch.approximate = False  # a batch to merge needs no graph of its own
            batch.add_docs_sync(docs)
            return add_documents(batch.core.snapshot(name, info.model_id))
        return self._mutate(name, lambda session: session.add_docs_sync(docs))

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
