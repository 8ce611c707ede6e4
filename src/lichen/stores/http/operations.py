"""Every operation of the HTTP store written once, as a generator that yields the HTTP
exchanges it needs (:class:`~.exchange.Call`) and receives their outcome
(:class:`~.exchange.Reply`): request building, response parsing, error mapping, the
download cache and conditional writes, with no I/O of its own (sans-IO). The transports of
:class:`~.store.HttpStore` run these generators."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import platformdirs
import xxhash

from ..._errors import (
    ConflictError,
    CorruptDataError,
    InvalidArgumentError,
    LichenError,
    LimitExceededError,
    NetworkError,
    NotFoundError,
    StorageError,
    UnauthorizedError,
    index_exists,
)
from ..._types import DocumentInfo, IndexInfo, PushIndexResult
from ..._util import utc_now
from ...format import artifact as _artifact
from ...format.snapshot import IndexSnapshot
from ...protocol import (
    API_PREFIX,
    CHANGES_EXTRA_KEY,
    HEADER_CONTENT,
    HEADER_CREATED_AT,
    HEADER_DOC_COUNT,
    HEADER_JOB_ID,
    HEADER_UPDATED_AT,
    HEADER_VERSION,
    PROTOCOL_VERSION,
    AddDocsResultModel,
    ChangesModel,
    DeleteDocsResultModel,
    DocsModel,
    ErrorCode,
    IndexInfoModel,
    IndexListModel,
    JobModel,
    LimitsModel,
    ProjectModel,
    PushResultModel,
    format_version_tag,
    validate_index_name,
)
from ..base import IndexChanges, IndexState
from .cache import ArtifactCache
from .config import Retries, Timeout
from .exchange import Call, Operation, Reply

__all__ = ["HttpOperations"]

_UPLOAD_CHUNK = 1 << 20
_MAX_QUERY_CHARS = 6000  # servers refuse request heads beyond ~8-16 KB


class HttpOperations:
    """Every decision of the HTTP store; :class:`~.store.HttpStore` only sends and waits."""

    def __init__(
        self,
        url: str,
        project_id: str | None = None,
        project_key: str | None = None,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        cache: bool = True,
        timeout: Timeout | float | None = None,
        retries: Retries | int | None = None,
        progress: bool | None = None,
        headers: dict[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
        event_hooks: dict[str, list[Callable[..., Any]]] | None = None,
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise InvalidArgumentError(f"server url must start with http:// or https://, got {url!r}")
        self.url = url.rstrip("/")
        self.project_id = project_id
        self.project_key = project_key
        if isinstance(timeout, (int, float)):
            timeout = Timeout(connect=min(float(timeout), 5.0), read=float(timeout), write=float(timeout), pool=float(timeout))
        self.timeout = timeout or Timeout()
        if isinstance(retries, int):
            retries = Retries(attempts=retries)
        self.retries = retries or Retries()
        self.progress = progress
        self._extra_headers = dict(headers or {})
        self._transport = transport
        self._async_transport = async_transport
        self._event_hooks = event_hooks
        self._limits: LimitsModel | None = None
        self._features: frozenset[str] | None = None
        cache_root: Path | None = None
        if cache:
            base = Path(cache_dir).expanduser() if cache_dir else None
            if base is None:
                env = os.environ.get("LICHEN_HOME")
                base = Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("lichen", appauthor=False))
            server = xxhash.xxh3_64_hexdigest(self.url.encode("utf-8"))
            cache_root = base / "http-cache" / server / (project_id or "anonymous")
        self._cache = ArtifactCache(cache_root)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={self.url!r}, project_id={self.project_id!r})"

    def check_home(self) -> None:
        """Check the download cache now (the ``Client`` calls this when it opens the
        store): an unusable one is turned off with one warning, never an error."""
        self._cache.check()

    # ---- request building and response handling (shared by both faces)
    def _auth_headers(self) -> dict[str, str]:
        if not self.project_id or not self.project_key:
            raise UnauthorizedError(
                "no project credentials: pass project_id and project_key to Client(...), "
                "or set LICHEN_PROJECT_ID and LICHEN_PROJECT_KEY"
            )
        return {"Authorization": f"Bearer {self.project_id}:{self.project_key}"}

    def _raise_for(self, reply: Reply, call: Call) -> None:
        """Turn an error reply into the matching :mod:`lichen` exception."""
        status = reply.status
        error = reply.error()
        code = error.code if error else ""
        message = error.message if error else f"HTTP {status} from {call.method} {self.url}{call.path}"
        if status == 401 or code == ErrorCode.UNAUTHORIZED:
            raise UnauthorizedError(f"{message} (server {self.url}, project {self.project_id!r})")
        if code == ErrorCode.NOT_FOUND or status == 404:
            raise NotFoundError(message)
        if code == ErrorCode.CONFLICT or status in (409, 412):
            raise ConflictError(message)
        if code == ErrorCode.LIMIT_EXCEEDED or status == 413:
            raise LimitExceededError(message)
        if code == ErrorCode.CORRUPT_DATA:
            raise CorruptDataError(message)
        if code == ErrorCode.INVALID_ARGUMENT or status in (400, 422):
            raise InvalidArgumentError(message)
        if status >= 500:
            raise NetworkError(f"the Lichen server failed (HTTP {status}): {message}")
        raise LichenError(f"unexpected HTTP {status} from {call.method} {self.url}{call.path}: {message}")

    def _expect(self, reply: Reply, call: Call, *ok: int) -> Reply:
        if reply.status not in ok:
            self._raise_for(reply, call)
        return reply

    @staticmethod
    def _index_path(name: str, suffix: str = "") -> str:
        return f"{API_PREFIX}/indexes/{quote(validate_index_name(name), safe='')}{suffix}"

    @staticmethod
    def _info(model: IndexInfoModel) -> IndexInfo:
        return IndexInfo(
            name=model.name, doc_count=model.doc_count, model_id=model.model_id, dimension=model.dimension,
            version=model.version, created_at=model.created_at, updated_at=model.updated_at,
        )

    @staticmethod
    def _conditions(expected_version: int | None) -> dict[str, str]:
        if expected_version is None:
            return {}
        if type(expected_version) is not int or expected_version < 0:
            raise InvalidArgumentError(f"expected_version must be a non-negative int or None, got {expected_version!r}")
        if expected_version == 0:
            return {"If-None-Match": "*"}
        return {"If-Match": format_version_tag(expected_version)}

    def _artifact_body(self, encoded: _artifact.EncodedArtifact) -> Callable[[], Iterator[bytes]]:
        def chunks() -> Iterator[bytes]:
            for chunk in encoded.chunks:
                view = memoryview(chunk).cast("B")
                for start in range(0, view.nbytes, _UPLOAD_CHUNK):
                    yield bytes(view[start : start + _UPLOAD_CHUNK])

        return chunks

    # ---- operations (generators: yield calls, receive replies)
    def _op_limits(self) -> Operation[LimitsModel]:
        if self._limits is None:
            yield from self._op_check_credentials()
        assert self._limits is not None
        return self._limits

    def _op_check_credentials(self) -> Operation[None]:
        self._auth_headers()
        call = Call("GET", f"{API_PREFIX}/project")
        reply = self._expect((yield call), call, 200)
        project = reply.model(ProjectModel)
        if project.protocol != PROTOCOL_VERSION:
            raise LichenError(
                f"the server at {self.url} speaks protocol {project.protocol}; this client speaks {PROTOCOL_VERSION}"
            )
        self._limits = project.limits
        self._features = frozenset(project.features)

    def _op_features(self) -> Operation[frozenset[str]]:
        if self._features is None:
            yield from self._op_check_credentials()
        assert self._features is not None
        return self._features

    def _op_get_info(self, name: str) -> Operation[IndexInfo]:
        call = Call("GET", self._index_path(name))
        reply = self._expect((yield call), call, 200)
        return self._info(reply.model(IndexInfoModel))

    def _op_list(self) -> Operation[list[IndexInfo]]:
        call = Call("GET", f"{API_PREFIX}/indexes")
        reply = self._expect((yield call), call, 200)
        return [self._info(m) for m in reply.model(IndexListModel).indexes]

    def _op_delete(self, name: str, expected_version: int | None = None) -> Operation[bool]:
        call = Call("DELETE", self._index_path(name), headers=self._conditions(expected_version))
        reply = yield call
        if reply.status == 404 and (reply.error() is None or reply.error().code == ErrorCode.NOT_FOUND):
            return False
        self._expect(reply, call, 200)
        self._cache.discard(name)
        return True

    def _op_read(self, name: str) -> Operation[IndexSnapshot]:
        snapshot, _ = yield from self._op_read_with_state(name)
        return snapshot

    def _op_read_with_state(self, name: str) -> Operation[tuple[IndexSnapshot, IndexState]]:
        validate_index_name(name)
        for _ in range(2):
            etag = self._cache.etag(name)
            call = Call(
                "GET", self._index_path(name, "/artifact"),
                headers={"If-None-Match": f'"{etag}"'} if etag else {},
                download=self._cache.temp_path(name), label=f"load {name}",
            )
            reply = yield call
            if reply.status == 304 and etag:
                cached = self._cache.path(name)
                try:
                    snapshot = _read_mapped(cached)
                except (OSError, CorruptDataError):
                    self._cache.discard(name)  # damaged, removed or unreadable locally: fetch it whole
                    continue
                state = _state_from(reply, snapshot)
                self._cache.remember(name, state)
                return self._apply_headers(snapshot, reply), state
            self._expect(reply, call, 200)
            assert reply.file is not None
            try:
                snapshot = _read_mapped(reply.file)
            except OSError as exc:
                raise StorageError(f"cannot read the downloaded index {reply.file}: {exc.strerror or exc}") from exc
            except CorruptDataError as exc:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(reply.file)
                problem = str(exc).split(": ", 1)[-1]
                raise CorruptDataError(
                    f"index {name!r} served by {self.url} is corrupt ({problem}); "
                    "the stored copy is damaged: push the index again"
                ) from None
            if snapshot.name != name:
                raise CorruptDataError(f"the server answered for index {name!r} with index {snapshot.name!r}")
            self._cache.commit(reply.file, name)
            state = _state_from(reply, snapshot)
            self._cache.remember(name, state)
            return self._apply_headers(snapshot, reply), state
        raise CorruptDataError(f"the local cache of index {name!r} keeps failing to read; remove {self._cache.root}")

    @staticmethod
    def _apply_headers(snapshot: IndexSnapshot, reply: Reply) -> IndexSnapshot:
        """The server's record (version, timestamps) is authoritative over the manifest."""
        version = reply.headers.get(HEADER_VERSION, "")
        if version.isdigit():
            snapshot.version = int(version)
        snapshot.created_at = reply.headers.get(HEADER_CREATED_AT, snapshot.created_at)
        snapshot.updated_at = reply.headers.get(HEADER_UPDATED_AT, snapshot.updated_at)
        return snapshot

    def _check_upload(self, limits: LimitsModel, name: str, encoded: _artifact.EncodedArtifact) -> None:
        if encoded.size > limits.max_body_bytes:
            raise LimitExceededError(
                f"index {name!r} encodes to {encoded.size} bytes; the server at {self.url} accepts at most "
                f"{limits.max_body_bytes} per request"
            )
        if encoded.manifest.doc_count > limits.max_docs:
            raise LimitExceededError(
                f"index {name!r} has {encoded.manifest.doc_count} documents; the server at {self.url} allows "
                f"at most {limits.max_docs} per index"
            )

    def _op_write(self, snapshot: IndexSnapshot, expected_version: int | None) -> Operation[PushIndexResult]:
        name = validate_index_name(snapshot.name)
        conditions = self._conditions(expected_version)
        limits = yield from self._op_limits()
        now = utc_now()
        base = expected_version if expected_version is not None else snapshot.version
        encoded = _artifact.encode_artifact(
            dataclasses.replace(snapshot, version=base + 1, created_at=snapshot.created_at or now, updated_at=now)
        )
        self._check_upload(limits, name, encoded)
        call = Call(
            "PUT", self._index_path(name, "/artifact"), headers=conditions,
            body=self._artifact_body(encoded), body_size=encoded.size,
            idempotent=bool(conditions), label=f"push {name}",
        )
        reply = yield call
        if reply.status in (409, 412) and reply.attempts > 1:
            error = reply.error()
            if error is not None and error.current_etag == encoded.etag:
                # An earlier attempt was applied but its answer was lost: that is success.
                info_call = Call("GET", self._index_path(name))
                info = self._expect((yield info_call), info_call, 200)
                model = info.model(IndexInfoModel)
                if model.etag == encoded.etag:
                    return PushIndexResult(
                        job_id=info.headers.get(HEADER_JOB_ID, ""), index_name=name,
                        doc_count=model.doc_count, status="completed", version=model.version,
                    )
        if expected_version == 0 and reply.status in (409, 412):
            error = reply.error()
            raise index_exists(name, error.current_version if error is not None else None)
        self._expect(reply, call, 200, 201)
        result = reply.model(PushResultModel)
        return PushIndexResult(
            job_id=result.job_id, index_name=result.index_name, doc_count=result.doc_count,
            status=result.status, version=result.version,
        )

    def _op_add_documents(self, batch: IndexSnapshot, expected_version: int | None) -> Operation[tuple[int, int]]:
        name = validate_index_name(batch.name)
        conditions = self._conditions(expected_version)
        limits = yield from self._op_limits()
        encoded = _artifact.encode_artifact(batch)
        self._check_upload(limits, name, encoded)
        call = Call(
            "POST", self._index_path(name, "/docs"), headers=conditions,
            body=self._artifact_body(encoded), body_size=encoded.size,
            idempotent=bool(conditions), label=f"add to {name}",
        )
        reply = self._expect((yield call), call, 200)
        result = reply.model(AddDocsResultModel)
        return result.added, result.updated

    def _op_delete_documents(self, name: str, ids: Sequence[str], expected_version: int | None) -> Operation[int]:
        if isinstance(ids, str) or not all(isinstance(i, str) for i in ids):
            raise InvalidArgumentError("ids must be a list of strings")
        call = Call(
            "POST", self._index_path(name, "/docs/delete"),
            headers={"Content-Type": "application/json", **self._conditions(expected_version)},
            content=orjson.dumps({"ids": list(ids)}), idempotent=expected_version is not None,
        )
        reply = self._expect((yield call), call, 200)
        return reply.model(DeleteDocsResultModel).deleted

    def _op_get_documents(
        self, name: str, ids: Sequence[str] | None, include_embeddings: bool
    ) -> Operation[list[DocumentInfo]]:
        if isinstance(ids, str):
            raise InvalidArgumentError("ids must be a list of strings, not one string")
        if ids is not None and not ids:
            return []
        extra = [("include_embeddings", "true")] if include_embeddings else []
        # Ids travel in the query string: long lists are split so each URL stays short.
        batches = _url_batches(list(dict.fromkeys(ids))) if ids is not None else [[]]
        docs: list[DocumentInfo] = []
        for batch in batches:
            call = Call("GET", self._index_path(name, "/docs"), params=[("ids", i) for i in batch] + extra)
            reply = self._expect((yield call), call, 200)
            docs.extend(
                DocumentInfo(id=d.id, text=d.text, metadata=d.metadata, embedding=d.embedding)
                for d in reply.model(DocsModel).docs
            )
        return docs

    def _op_state(self, name: str) -> Operation[IndexState]:
        call = Call("GET", self._index_path(name))
        reply = self._expect((yield call), call, 200)
        return _state_of(reply.model(IndexInfoModel))

    def _op_watch(self, name: str, etag: str, wait: float) -> Operation[IndexState | None]:
        """A long-poll (feature ``watch``): the index's new state once it differs from
        ``etag``, or ``None`` when ``wait`` seconds passed without a change."""
        call = Call(
            "GET", self._index_path(name), params=[("wait", f"{wait:g}")],
            headers={"If-None-Match": f'"{etag}"'} if etag else {}, read_timeout=wait + 15.0,
        )
        reply = yield call
        if reply.status == 304:
            return None
        self._expect(reply, call, 200)
        state = _state_of(reply.model(IndexInfoModel))
        return state if state.etag != etag else None

    def _op_changes(self, name: str, since: IndexState) -> Operation[IndexChanges | None]:
        """The delta from the copy ``since`` (feature ``changes``), or ``None`` when the
        server has none to give (410: the caller downloads the artifact)."""
        call = Call(
            "GET", self._index_path(name, "/changes"),
            params=[("since", str(since.version)), ("content", since.content)],
        )
        reply = yield call
        if reply.status == 410:
            return None
        self._expect(reply, call, 200)
        try:
            delta = _artifact.read_artifact(reply.content, verify=True)
            described = ChangesModel.model_validate(delta.extra.get(CHANGES_EXTRA_KEY))
        except (CorruptDataError, ValueError) as exc:
            raise CorruptDataError(f"the changes of index {name!r} served by {self.url} are damaged: {exc}") from None
        if delta.name != name or described.since != since.version:
            raise CorruptDataError(f"the server answered the changes of index {name!r} with another delta")
        state = _state_from(reply, delta)
        return IndexChanges(
            since=since.version, state=state, deleted=described.deleted, docs=delta, updated=described.updated,
            transferred=len(reply.content),
        )

    def _cached_copy(self, name: str) -> tuple[IndexSnapshot, IndexState] | None:
        """The cached copy of ``name`` and its state, read without the server."""
        path = self._cache.path(name)
        if path is None or self._cache.etag(name) is None:
            return None
        try:
            snapshot = _read_mapped(path)
        except (OSError, CorruptDataError):
            return None
        state = self._cache.remembered(name, snapshot)
        snapshot.version = state.version
        snapshot.updated_at = state.updated_at or snapshot.updated_at
        return snapshot, state

    def _op_job(self, job_id: str) -> Operation[JobModel]:
        call = Call("GET", f"{API_PREFIX}/jobs/{quote(job_id, safe='')}")
        reply = self._expect((yield call), call, 200)
        return reply.model(JobModel)


def _state_of(model: IndexInfoModel) -> IndexState:
    return IndexState(model.version, model.etag, model.content, model.doc_count, model.updated_at)


def _state_from(reply: Reply, snapshot: IndexSnapshot) -> IndexState:
    """The state the response headers give (the server's record), the snapshot's where
    an older server sent none."""
    headers = reply.headers
    version = headers.get(HEADER_VERSION, "")
    count = headers.get(HEADER_DOC_COUNT, "")
    return IndexState(
        version=int(version) if version.isdigit() else snapshot.version,
        etag=headers.get("etag", "").removeprefix("W/").strip('"'),
        content=headers.get(HEADER_CONTENT, ""),
        doc_count=int(count) if count.isdigit() else snapshot.doc_count,
        updated_at=headers.get(HEADER_UPDATED_AT, snapshot.updated_at),
    )


def _read_mapped(path: Path) -> IndexSnapshot:
    """Decode a downloaded artifact lazily: memory-mapped on POSIX, documents decoded row
    by row, single rows read from the file (see :func:`lichen.format.artifact.read_artifact`);
    the open file outlives a later replacement of the path (rename)."""
    return _artifact.read_artifact(path, lazy=True)


def _url_batches(ids: list[str], budget: int = _MAX_QUERY_CHARS) -> list[list[str]]:
    batches: list[list[str]] = [[]]
    used = 0
    for doc_id in ids:
        cost = len(quote(doc_id, safe="")) + 5  # "ids=" and "&"
        if batches[-1] and used + cost > budget:
            batches.append([])
            used = 0
        batches[-1].append(doc_id)
        used += cost
    return batches
