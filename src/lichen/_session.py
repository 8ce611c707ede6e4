"""``SessionIndex``: an index you read and write in-process, in real time.

Each operation is written once as a private synchronous step; the public async method
and its ``*_sync`` twin only differ in how they wait (the async face moves embedding of
large batches and storage I/O off the event loop). Embedding happens here, outside the
core's lock, so a slow embed never blocks concurrent queries.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._errors import InvalidArgumentError, ModelUnavailableError, NotFoundError, StorageError
from ._prepared import prepared_queries
from ._results import check_result_options, group_hits, shape_hits
from ._types import DocumentInfo, IndexInfo, PushIndexResult, QueryOptions, QueryResultDocument, SearchResult
from ._validation import as_query_options, as_vectors, check_documents, check_query_text
from .engine.calibration import check_recall_target
from .engine.core import IndexCore
from .engine.filters import compile_filter
from .engine.fusion import DEFAULT_ALPHA, DEFAULT_FUSION, FUSION_CHOICES
from .format.artifact import read_artifact_file, write_artifact_file
from .format.snapshot import IndexSnapshot
from .models import (
    CUSTOM_MODEL_ID,
    DEFAULT_MODEL_ID,
    Embedder,
    embed_documents,
    embed_queries,
    get_embedder,
    get_reranker,
    missing_model_message,
    model_info,
    model_provenance,
)
from .models.rerank import check_rerank_options, rerank_hits
from .models.warm import DEFAULT_WARM_PERIOD, WARM_TEXT, KeepWarm
from .stores.base import IndexStore

if TYPE_CHECKING:
    from .ingest.pipeline import AddResult
    from .ingest.sync import RefreshResult, SyncReport
    from .ingest.truncation import Truncated

__all__ = ["SessionIndex"]



class SessionIndex:
    """An in-memory index bound to a name, optionally backed by a store for
    :meth:`push_index`.

    Usually obtained from ``await client.session("name")``; constructing one directly
    gives a standalone in-memory index (``push_index`` then needs a store).

    Example::

        session = SessionIndex("scratch")
        session.add_docs_sync([DocumentInfo(id="a", text="refunds take 3-5 days")])
        session.query_sync("how long is a refund", QueryOptions(top_k=1))
    """

    def __init__(
        self,
        name: str = "session",
        model_id: str = DEFAULT_MODEL_ID,
        *,
        dimension: int | None = None,
        store: IndexStore | None = None,
        read_only: bool = False,
        progress: bool | None = None,
        _core: IndexCore | None = None,
        _version: int = 0,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise InvalidArgumentError("index name must be a non-empty string")
        self._embedder: Embedder | None = None if model_id == CUSTOM_MODEL_ID else get_embedder(model_id)
        if self._embedder is not None:
            if dimension is not None and dimension != self._embedder.dimension:
                raise InvalidArgumentError(f"model {model_id!r} has dimension {self._embedder.dimension}, not {dimension}")
            dimension = self._embedder.dimension
        self._core = _core if _core is not None else IndexCore(dimension)
        if self._embedder is not None and self._core.dimension not in (None, self._embedder.dimension):
            raise InvalidArgumentError(f"stored dimension {self._core.dimension} does not match model {model_id!r}")
        self.name = name
        self.model_id = model_id
        self.read_only = read_only
        self.progress = progress
        """Bar while embedding long batches: ``None`` on a terminal only (``LICHEN_PROGRESS=0``
        turns it off), ``True`` / ``False`` always / never."""
        self._store = store
        self._version = _version
        self._created_at = self._updated_at = ""  # known for an index read from a store

    # ------------------------------------------------------------------ properties
    @property
    def doc_count(self) -> int:
        return len(self._core)

    @property
    def dimension(self) -> int | None:
        return self._core.dimension

    @property
    def version(self) -> int:
        """The stored version this session was loaded from or last pushed as (0: never)."""
        return self._version

    @property
    def approximate(self) -> bool | None:
        """Approximate (graph) search: ``None`` (default) from
        :data:`~lichen.engine.core.APPROXIMATE_THRESHOLD` documents on, ``True`` always,
        ``False`` never. Candidates are always re-ranked by exact cosine."""
        return self._core.approximate

    @approximate.setter
    def approximate(self, value: bool | None) -> None:
        if value not in (None, True, False):
            raise InvalidArgumentError(f"approximate must be None, True or False, got {value!r}")
        self._core.approximate = value

    @property
    def core(self) -> IndexCore:
        """The engine underneath, for adapters that need raw vectors (e.g. MMR)."""
        return self._core

    def __len__(self) -> int:
        return self.doc_count

    def __repr__(self) -> str:
        return f"SessionIndex(name={self.name!r}, model_id={self.model_id!r}, doc_count={self.doc_count})"

    # ------------------------------------------------------------------ embedding
    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Embed documents' texts with the session's model, its passage prompt first (what
        ``add_docs`` stores; not available for ``model_id="custom"``). Queries go through
        :meth:`embed_query`, which puts the query prompt first."""
        if self._embedder is None:
            raise InvalidArgumentError('model_id="custom": pass vectors in DocumentInfo.embedding / QueryOptions.embedding')
        return embed_documents(self._embedder, texts, progress=self.progress)

    def _document_vectors(self, docs: Sequence[DocumentInfo]) -> np.ndarray:
        given = [i for i, doc in enumerate(docs) if doc.embedding is not None]
        missing = [i for i, doc in enumerate(docs) if doc.embedding is None]
        if missing and self._embedder is None:
            raise InvalidArgumentError(
                f'model_id="custom": document {docs[missing[0]].id!r} has no embedding; every document needs one'
            )
        dimension = self._core.dimension or (self._embedder.dimension if self._embedder else None)
        if given:
            rows = []
            for i in given:  # one by one, so the error names the offending document
                rows.append(as_vectors(docs[i].embedding, dimension, f"document {docs[i].id!r} embedding"))
                dimension = rows[-1].shape[1]
            supplied = np.vstack(rows)
        vectors = np.empty((len(docs), dimension or 0), dtype=np.float32)
        if given:
            vectors[given] = supplied
        if missing:
            vectors[missing] = self.embed_texts([docs[i].text for i in missing])
        return vectors

    def _query_vector(self, text: str, options: QueryOptions, alpha: float) -> np.ndarray | None:
        if options.embedding is not None:
            return as_vectors(options.embedding, self._core.dimension, "QueryOptions.embedding")[0]
        if self._embedder is None:
            if alpha <= 0.0:
                return None
            raise InvalidArgumentError('model_id="custom": every query must pass QueryOptions(embedding=...)')
        if alpha <= 0.0:
            return None
        return self.embed_query(text)

    def embed_query(self, text: str) -> np.ndarray:
        """The query vector of ``text`` (the model's query prompt first): the one
        :meth:`prepare` left for it if its text normalises the same (see
        :mod:`lichen._prepared`), else embedded now."""
        if self._embedder is None:
            raise InvalidArgumentError('model_id="custom": every query must pass QueryOptions(embedding=...)')
        prepared = prepared_queries(self.model_id).get(text)
        return prepared if prepared is not None else embed_queries(self._embedder, [text])[0]

    def keep_warm(self, *, period: float = DEFAULT_WARM_PERIOD, search: bool = True) -> KeepWarm:
        """Keep this session's query path warm while a live call runs: a stand-in query
        (the model's query encoder, then, with ``search``, a search of this index's graph) every
        ``period`` seconds on a daemon thread, so a query after a pause costs about what
        one right after another does. Opt-in, because it costs CPU all along
        (``benchmarks/RESULTS.md``, "Spaced queries")::

            with session.keep_warm():          # or: async with session.keep_warm():
                ...                            # the call: queries seconds apart

        Returns a :class:`~lichen.models.warm.KeepWarm` that starts when entered (or
        ``.start()``) and stops when left (``.stop()``)."""
        if self._embedder is None:
            raise InvalidArgumentError('model_id="custom": there is no model to keep warm')
        embedder, core = self._embedder, self._core

        def tick() -> None:
            vector = embed_queries(embedder, [WARM_TEXT])[0]
            # Only a graph's pages go cold; a scan would wake numpy's BLAS threads, which
            # then spin for ~100 ms after each product (1.2 cores at 10k, measured).
            if search and len(core) and core.uses_graph():
                core.search(vector, "", top_k=10)

        return KeepWarm(tick, period)

    def _prepare(self, text: str) -> None:
        if not isinstance(text, str):
            raise InvalidArgumentError(f"query text must be a string, got {type(text).__name__}")
        check_query_text(text)
        if self._embedder is None:
            raise InvalidArgumentError('model_id="custom": there is no model to prepare a query with')
        prepared_queries(self.model_id).put(text, embed_queries(self._embedder, [text])[0])

    # ------------------------------------------------------------------ operations (sync core)
    def _check_writable(self) -> None:
        if self.read_only:
            raise InvalidArgumentError(
                f"index {self.name!r} is loaded read-only (long-term context); open client.session({self.name!r}) to modify it"
            )

    def _add(self, docs: Sequence[DocumentInfo]) -> tuple[int, int]:
        self._check_writable()
        check_documents(docs)
        truncated = self._find_truncated(docs)
        counts = self._core.upsert(truncated.documents, self._document_vectors(truncated.documents))
        truncated.warn(len(docs))
        return counts

    def _delete(self, ids: Sequence[str] | None, filter: dict[str, Any] | None = None) -> int:
        self._check_writable()
        if ids is None and filter is None:
            raise InvalidArgumentError("delete_docs needs ids, filter=..., or both; clear() deletes every document")
        if ids is not None and (isinstance(ids, str) or not all(isinstance(i, str) for i in ids)):
            raise InvalidArgumentError("ids must be a list of strings")
        if filter is None:
            return self._core.delete(ids)
        compiled = compile_filter(filter)
        if compiled.matches_all and ids is None:
            raise InvalidArgumentError(f"filter {filter!r} matches every document; clear() deletes them all on purpose")
        return self._core.delete_matching(compiled, ids)

    def _clear(self) -> int:
        self._check_writable()
        return self._core.clear()

    def _get(
        self,
        ids: Sequence[str] | None,
        filter: dict[str, Any] | None,
        include_embeddings: bool,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[DocumentInfo]:
        if isinstance(ids, str):
            raise InvalidArgumentError("ids must be a list of strings, not one string")
        return self._core.get(ids, filter, include_embeddings=include_embeddings, limit=limit, offset=offset)

    def _calibrate(self) -> float | None:
        self._core.calibrate_graph()
        return self._core.recall_estimate()

    def _query(self, text: str, options: QueryOptions | dict[str, Any] | None) -> SearchResult:
        started = time.perf_counter()
        options = as_query_options(options)
        if not isinstance(text, str):
            raise InvalidArgumentError(f"query text must be a string, got {type(text).__name__}")
        check_query_text(text)
        if not isinstance(options.top_k, int) or isinstance(options.top_k, bool) or options.top_k < 0:
            raise InvalidArgumentError(f"top_k must be a non-negative integer, got {options.top_k!r}")
        alpha = DEFAULT_ALPHA if options.alpha is None else float(options.alpha)
        if not 0.0 <= alpha <= 1.0:
            raise InvalidArgumentError(f"alpha must be between 0 and 1, got {options.alpha!r}")
        fusion = DEFAULT_FUSION if options.fusion is None else options.fusion
        if fusion not in FUSION_CHOICES:
            raise InvalidArgumentError(f"fusion must be one of {', '.join(FUSION_CHOICES)}, got {options.fusion!r}")
        if self._embedder is None and options.embedding is None and alpha > 0.0:
            raise InvalidArgumentError('model_id="custom": every query must pass QueryOptions(embedding=...)')
        check_recall_target(options.recall_target)
        check_result_options(options)
        reranker, fetched = None, options.top_k
        candidates = check_rerank_options(options.rerank, options.rerank_candidates, text)
        if candidates is not None:  # resolved before any work: a missing model fails fast
            fetched = max(options.top_k, candidates)
            reranker = get_reranker(options.rerank)
        if len(self._core) == 0 and options.filter is None:
            docs = []
        else:
            vector = self._query_vector(text, options, alpha)

            def search(top_k: int) -> list[QueryResultDocument]:
                return self._core.search(
                    vector, text, top_k=top_k, filter=options.filter, alpha=alpha, fusion=fusion,
                    exact=bool(options.exact), recall_target=options.recall_target,
                )

            # group_by: as many hits as fill top_k groups, grouped and shaped (_results)
            docs = search(fetched) if options.group_by is None else group_hits(self._core, search, options)
        if reranker is not None and options.top_k > 0:
            docs = rerank_hits(reranker, text, docs, options.top_k)
        docs = shape_hits(self._core, docs, options)
        for doc in docs:
            doc.index_name = self.name
            for chunk in doc.chunks or ():  # a group's hits (group_by)
                chunk.index_name = self.name
        elapsed = (time.perf_counter() - started) * 1000.0
        return SearchResult(docs=docs, query=text, index_name=self.name, time_taken_ms=elapsed)

    def _snapshot(self) -> IndexSnapshot:
        snapshot = self._core.snapshot(self.name, self.model_id)
        snapshot.version = self._version
        snapshot.extra.update(model_provenance(self.model_id))  # which revision made the vectors
        return snapshot

    def _require_store(self) -> IndexStore:
        if self._store is None:
            raise InvalidArgumentError("this session has no store: open it with client.session(name) to push")
        return self._store

    def _after_push(self, result: PushIndexResult) -> PushIndexResult:
        if result.version is not None:
            self._version = result.version
        return result

    def _expected_version(self, overwrite: bool) -> int | None:
        return None if overwrite else self._version

    # ------------------------------------------------------------------ async faces
    async def add_docs(
        self,
        docs: Any,
        *,
        chunker: Any = None,
        metadata: dict[str, Any] | None = None,
        include: str | Sequence[str] | None = None,
        exclude: str | Sequence[str] | None = None,
        prefix: str | None = None,
        skip_errors: bool = False,
    ) -> AddResult:
        """Upsert by id; returns an :class:`~lichen.ingest.AddResult`, which unpacks as
        ``(added, updated)`` and also says how many stale chunks were ``deleted`` and which
        inputs were ``skipped``. Documents without an embedding are embedded locally, on a
        worker thread so the event loop keeps serving. A bad batch (duplicate ids, wrong
        dimension, NaN, oversized text) raises and leaves the index unchanged.

        ``docs`` may be ``DocumentInfo`` objects (added as they are), dicts and JSON-array
        or JSON-Lines text (records: ``text``, optional ``id``, ``metadata``, ``embedding``),
        paths of ``.txt .md .json .jsonl .ndjson`` files (``.pdf .docx .html`` with
        ``lichen[files]``) and folders (walked recursively; ``include`` / ``exclude``
        globs), or a list mixing them (see :mod:`lichen.ingest`). Files are chunked by
        ``chunker`` (default: the strategy each type calls for, sized to the model's window)
        under a stable contract: ids ``{source}#chunk-0000``, metadata ``source``,
        ``chunk_index``, locators; re-adding a file replaces its chunks. ``metadata`` goes
        on every chunk of every file; ``prefix`` starts the source ids of a folder's files
        (default: the folder's name). A file that cannot be read raises
        :class:`~lichen.SourceError` naming each one, and nothing is added, unless
        ``skip_errors=True`` (the rest is added; ``result.skipped`` lists them).

        A text longer than the model reads (256 tokens for the built-in model) is embedded
        from its beginning only: the call warns once (:class:`~lichen.TruncationWarning`)
        with the count, and each such document's metadata records its token count under
        ``lichen_truncated_tokens`` (:mod:`lichen.ingest.truncation`)."""
        return await asyncio.to_thread(
            self._add_docs, docs, chunker, metadata, include, exclude, prefix, skip_errors
        )

    async def delete_docs(self, ids: Sequence[str] | None = None, *, filter: dict[str, Any] | None = None) -> int:
        """Delete by id (unknown ids are ignored), by ``filter``, or the ids that match
        ``filter``; returns how many were deleted. A filter that matches everything
        (``{}``) is refused: ``clear()`` says so on purpose.

        Like every async face here it runs on a worker thread: compacting or filtering
        a large index takes milliseconds the event loop should not wait for."""
        return await asyncio.to_thread(self._delete, ids, filter)

    async def get_docs(
        self,
        ids: Sequence[str] | None = None,
        filter: dict[str, Any] | None = None,
        *,
        include_embeddings: bool = False,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[DocumentInfo]:
        """Documents by id (order asked), by filter, or all, in insertion order; ``limit``
        / ``offset`` page through them (stable: an update keeps a document's place)."""
        return await asyncio.to_thread(self._get, ids, filter, include_embeddings, limit, offset)

    async def query(self, text: str, options: QueryOptions | dict[str, Any] | None = None) -> SearchResult:
        """Exact top-k in memory; see :class:`QueryOptions` for filters and hybrid.
        ``options`` may also be a dict of QueryOptions' fields (``{"top_k": 3}``).

        Runs on a worker thread: embedding a long query can take tens of milliseconds on
        a busy machine, which an event loop serving live audio cannot afford; the hop
        costs ~0.1 ms."""
        return await asyncio.to_thread(self._query, text, options)

    async def prepare(self, text: str) -> None:
        """Embed ``text`` now, as the query it will probably become (an interim speech
        transcript, a typed prefix), so that a query whose text normalises the same
        (case, punctuation and spacing aside) costs only the search. Prepared vectors are
        shared by every index of this model in the process and bounded in number
        (:data:`~lichen._prepared.PREPARED_CAPACITY`, least recently used dropped)."""
        await asyncio.to_thread(self._prepare, text)

    async def calibrate(self) -> float | None:
        """Measure the approximate-search graph's recall at each search width now, and
        use the result; returns the new ``info().recall_estimate``. A graph built in the
        background is calibrated as it is built (and the calibration is pushed and saved
        with it): this is for a graph that has none, e.g. loaded from an index stored
        before calibrations were. Reads every vector once (seconds at 100k)."""
        return await asyncio.to_thread(self._calibrate)

    async def clear(self) -> int:
        """Delete every document; returns how many there were."""
        return await asyncio.to_thread(self._clear)

    async def push_index(self, *, overwrite: bool = False) -> PushIndexResult:
        """Create or replace the stored index of this name with the session's documents
        and embeddings (no re-embedding anywhere). If someone else pushed the same name
        since this session loaded it, raises ``ConflictError`` unless ``overwrite``."""
        store = self._require_store()
        snapshot = await asyncio.to_thread(self._snapshot)
        result = await store.awrite(snapshot, expected_version=self._expected_version(overwrite))
        return self._after_push(result)

    # ------------------------------------------------------------------ sync twins
    def add_docs_sync(
        self,
        docs: Any,
        *,
        chunker: Any = None,
        metadata: dict[str, Any] | None = None,
        include: str | Sequence[str] | None = None,
        exclude: str | Sequence[str] | None = None,
        prefix: str | None = None,
        skip_errors: bool = False,
    ) -> AddResult:
        return self._add_docs(docs, chunker, metadata, include, exclude, prefix, skip_errors)

    def delete_docs_sync(self, ids: Sequence[str] | None = None, *, filter: dict[str, Any] | None = None) -> int:
        return self._delete(ids, filter)

    def clear_sync(self) -> int:
        return self._clear()

    def get_docs_sync(
        self,
        ids: Sequence[str] | None = None,
        filter: dict[str, Any] | None = None,
        *,
        include_embeddings: bool = False,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[DocumentInfo]:
        return self._get(ids, filter, include_embeddings, limit, offset)

    def query_sync(self, text: str, options: QueryOptions | dict[str, Any] | None = None) -> SearchResult:
        return self._query(text, options)

    def calibrate_sync(self) -> float | None:
        return self._calibrate()

    def prepare_sync(self, text: str) -> None:
        self._prepare(text)

    def push_index_sync(self, *, overwrite: bool = False) -> PushIndexResult:
        store = self._require_store()
        result = store.write(self._snapshot(), expected_version=self._expected_version(overwrite))
        return self._after_push(result)

    # ------------------------------------------------------------------ documents in: files, sources, folders
    # The ingestion wing (lichen.ingest) is imported when first used: a session that only
    # takes DocumentInfos (a voice agent's turns) never loads it.
    def _add_docs(
        self,
        docs: Any,
        chunker: Any,
        metadata: dict[str, Any] | None,
        include: str | Sequence[str] | None,
        exclude: str | Sequence[str] | None,
        prefix: str | None,
        skip_errors: bool,
    ) -> AddResult:
        from .ingest.results import AddResult, is_documents_only

        if is_documents_only(docs):  # the route add_docs always had
            added, updated = self._add(docs)
            return AddResult(added, updated)
        from .ingest.pipeline import add_inputs

        self._check_writable()
        return add_inputs(
            self, docs, chunker=chunker, metadata=metadata, include=include, exclude=exclude, prefix=prefix,
            skip_errors=skip_errors,
        )

    def _find_truncated(self, docs: Sequence[DocumentInfo]) -> Truncated:
        from .ingest.truncation import Truncated, mark_truncated

        if self._embedder is None:  # model_id="custom": nothing is embedded here
            return Truncated(docs)
        return mark_truncated(
            docs, self.model_id, prompt=getattr(self._embedder, "passage_prompt", ""),
            max_tokens=getattr(self._embedder, "max_tokens", None),
        )

    def _refresh_source(self, source: str, chunks: Sequence[DocumentInfo] | None) -> RefreshResult:
        from .ingest.sync import refresh_source

        self._check_writable()
        return refresh_source(self, source, chunks)

    def _sync_folder(self, directory: str | Path, options: dict[str, Any]) -> SyncReport:
        from .ingest.sync import sync_directory
        from .ingest.truncation import collected

        if not options.get("dry_run"):
            self._check_writable()
        with collected():  # one truncation warning for the whole sync, not one per batch
            return sync_directory(self, directory, **options)

    async def refresh_source(self, source: str, chunks: Sequence[DocumentInfo] | None = None) -> RefreshResult:
        """Make ``chunks`` the whole of ``source`` (documents whose ``metadata["source"]``
        is it; each chunk is stamped with it): upsert them, then delete every other
        document of that source, so a file that shrank from 21 chunks to 6 leaves nothing
        of chunks 6-20 to be found. ``None`` or ``[]`` removes the source. Returns what was
        added, updated and deleted. The upsert comes first: a refused batch leaves the old
        chunks in place."""
        return await asyncio.to_thread(self._refresh_source, source, chunks)

    def refresh_source_sync(self, source: str, chunks: Sequence[DocumentInfo] | None = None) -> RefreshResult:
        return self._refresh_source(source, chunks)

    async def sync_folder(
        self,
        directory: str | Path,
        *,
        include: str | Sequence[str] | None = None,
        exclude: str | Sequence[str] | None = None,
        prefix: str | None = None,
        chunker: Any = None,
        metadata: dict[str, Any] | None = None,
        skip_errors: bool = False,
        dry_run: bool = False,
        progress: Any = None,
    ) -> SyncReport:
        """Bring the index in step with the files under ``directory``: add new files,
        re-chunk changed ones (by content hash; changing ``chunker`` or ``metadata`` counts
        as a change), remove deleted ones, and only hash unchanged ones, so a second run
        changes nothing. The state is the chunks' own metadata (``source``,
        ``source_hash``, ``chunk_count``): no side file. Only sources under ``prefix``
        (default: the folder's name and ``/``) are considered; other documents are left
        alone. Unreadable files raise :class:`~lichen.SourceError` before anything is
        written, unless ``skip_errors`` (their chunks are then kept). ``dry_run`` reports
        what would change; ``progress(stage, done, total)`` is called as it goes. Returns a
        :class:`~lichen.ingest.SyncReport` (``lines()`` for people, ``to_dict()`` for
        scripts). Push the session to store the result."""
        options = dict(
            include=include, exclude=exclude, prefix=prefix, chunker=chunker, metadata=metadata,
            skip_errors=skip_errors, dry_run=dry_run, progress=progress,
        )
        return await asyncio.to_thread(self._sync_folder, directory, options)

    def sync_folder_sync(
        self,
        directory: str | Path,
        *,
        include: str | Sequence[str] | None = None,
        exclude: str | Sequence[str] | None = None,
        prefix: str | None = None,
        chunker: Any = None,
        metadata: dict[str, Any] | None = None,
        skip_errors: bool = False,
        dry_run: bool = False,
        progress: Any = None,
    ) -> SyncReport:
        options = dict(
            include=include, exclude=exclude, prefix=prefix, chunker=chunker, metadata=metadata,
            skip_errors=skip_errors, dry_run=dry_run, progress=progress,
        )
        return self._sync_folder(directory, options)

    # ------------------------------------------------------------------ local files
    def info(self) -> IndexInfo:
        """The index as it stands (no copy of it is made)."""
        return IndexInfo(
            name=self.name, doc_count=self.doc_count, model_id=self.model_id, dimension=self.dimension or 0,
            version=self._version, created_at=self._created_at, updated_at=self._updated_at,
            graph_fallback=self._core.graph_fallback, recall_estimate=self._core.recall_estimate(),
        )

    def save(self, path: str | Path) -> None:
        """Write the session to one artifact file (atomically), e.g. for a local backup."""
        try:
            write_artifact_file(self._snapshot(), Path(path))
        except OSError as exc:
            raise StorageError(f"cannot save index {self.name!r} to {path}: {exc}") from exc

    @classmethod
    def open(cls, path: str | Path, *, name: str | None = None) -> SessionIndex:
        """Load a file written by :meth:`save`, without re-embedding."""
        try:
            snapshot = read_artifact_file(Path(path), lazy=True)
        except FileNotFoundError as exc:
            raise NotFoundError(f"no index file at {path}") from exc
        except OSError as exc:
            raise StorageError(f"cannot read index file {path}: {exc}") from exc
        return cls.from_snapshot(snapshot, name=name)

    @classmethod
    def from_snapshot(
        cls,
        snapshot: IndexSnapshot,
        *,
        name: str | None = None,
        store: IndexStore | None = None,
        read_only: bool = False,
        progress: bool | None = None,
    ) -> SessionIndex:
        if snapshot.model_id != CUSTOM_MODEL_ID and model_info(snapshot.model_id) is None:
            recorded = snapshot.extra.get("model") if isinstance(snapshot.extra, dict) else None
            recorded = recorded if isinstance(recorded, dict) else {}
            raise ModelUnavailableError(missing_model_message(
                snapshot.model_id, revision=recorded.get("revision"), source=recorded.get("source"),
            ))
        session = cls(
            name or snapshot.name,
            snapshot.model_id,
            dimension=snapshot.dimension or None,
            store=store,
            read_only=read_only,
            progress=progress,
            _core=IndexCore.from_snapshot(snapshot),
            _version=snapshot.version,
        )
        session._created_at, session._updated_at = snapshot.created_at, snapshot.updated_at
        return session
