"""The store of a Lichen server, reached over HTTP with httpx.

:class:`HttpStore` is what ``Client(project_id, project_key, url=...)`` uses. Every
operation is written once, as a generator that yields the HTTP exchanges it needs
(:class:`_Call`) and receives their outcome (:class:`_Reply`): request building, response
parsing, error mapping, the download cache and conditional writes live there. The sync
face runs those generators with an ``httpx.Client``, the async face with an
``httpx.AsyncClient`` (its CPU and disk steps in a worker thread); the two faces differ
only in how they send and wait (STYLE.md: httpx's own pattern).

Behaviour:

- **Timeouts** are a :class:`Timeout`; **retries** (:class:`Retries`) back off
  exponentially on connection errors (any call: nothing was sent) and on 5xx / dropped
  responses for idempotent calls only (GET, DELETE, and conditional writes: a repeated
  ``If-Match`` write cannot apply twice).
- **Downloads are cached** under ``<cache_dir>/http-cache/`` and revalidated with
  ``If-None-Match``: a second load of an unchanged index transfers no body (304).
- **Large transfers** (>= 8 MiB) show a tqdm progress bar on a TTY; ``progress=False`` or
  ``LICHEN_PROGRESS=0`` turns it off.
- **Errors** are :mod:`lichen` errors: unreachable server or dropped connection ->
  ``NetworkError``; 401 -> ``UnauthorizedError``; 404 -> ``NotFoundError``; 409/412 ->
  ``ConflictError``; 413 / limits -> ``LimitExceededError``; 422 ->
  ``InvalidArgumentError``; a damaged artifact -> ``CorruptDataError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import random
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import orjson
import platformdirs
import xxhash
from pydantic import ValidationError

from .. import artifact as _artifact
from .._errors import (
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
from .._progress import ProgressBar, progress_wanted
from .._types import DocumentInfo, IndexInfo, PushIndexResult
from .._util import utc_now
from ..server.protocol import (
    API_PREFIX,
    HEADER_CREATED_AT,
    HEADER_JOB_ID,
    HEADER_UPDATED_AT,
    HEADER_VERSION,
    PROTOCOL_VERSION,
    AddDocsResultModel,
    DeleteDocsResultModel,
    DocsModel,
    ErrorBody,
    ErrorCode,
    ErrorResponse,
    IndexInfoModel,
    IndexListModel,
    JobModel,
    LimitsModel,
    ProjectModel,
    PushResultModel,
    format_version_tag,
)
from ._base import IndexSnapshot
from .local import validate_index_name

__all__ = ["HttpStore", "Timeout", "Retries"]

T = TypeVar("T")

PROGRESS_THRESHOLD = 8 << 20
_UPLOAD_CHUNK = 1 << 20
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})
_RETRY_STATUSES = frozenset({500, 502, 503, 504})
_STALE_TEMP_S = 24 * 3600
_MAX_QUERY_CHARS = 6000  # servers refuse request heads beyond ~8-16 KB


@dataclass(frozen=True)
class Timeout:
    """Seconds to wait for each phase of a request (httpx semantics): ``read`` and
    ``write`` bound the pause between two chunks, not a whole transfer."""

    connect: float = 5.0
    read: float = 60.0
    write: float = 60.0
    pool: float = 10.0

    def to_httpx(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect, read=self.read, write=self.write, pool=self.pool)


@dataclass(frozen=True)
class Retries:
    """How often, and how patiently, to repeat a failed call: ``attempts`` repeats after
    the first try, waiting ``backoff * 2**n`` seconds (capped at ``max_backoff``, with
    +-25 % jitter) before repeat ``n``."""

    attempts: int = 3
    backoff: float = 0.2
    max_backoff: float = 5.0

    def delay(self, attempt: int) -> float:
        base = min(self.max_backoff, self.backoff * (2**attempt))
        return base * random.uniform(0.75, 1.25)


@dataclass
class _Call:
    """One HTTP exchange an operation asks for."""

    method: str
    path: str
    params: list[tuple[str, str]] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None
    body: Callable[[], Iterator[bytes]] | None = None
    """A fresh iterator of the body per attempt (streamed uploads)."""
    body_size: int = 0
    download: Path | None = None
    """Stream a 200 body into this file instead of memory."""
    idempotent: bool | None = None
    label: str = ""

    @property
    def retryable(self) -> bool:
        if self.idempotent is not None:
            return self.idempotent
        return self.method in _IDEMPOTENT_METHODS


@dataclass
class _Reply:
    status: int
    headers: httpx.Headers
    content: bytes = b""
    file: Path | None = None
    attempts: int = 1

    def model(self, model: type[T]) -> T:
        try:
            return model.model_validate_json(self.content)  # type: ignore[attr-defined]
        except ValidationError as exc:
            raise NetworkError(f"unexpected response from the server (HTTP {self.status}): {exc}") from None

    def error(self) -> ErrorBody | None:
        try:
            return ErrorResponse.model_validate_json(self.content).error
        except ValidationError:
            return None


Operation = Generator[_Call, _Reply, T]



def _progress(enabled: bool, total: int, label: str) -> ProgressBar:
    """A byte-counting bar for a transfer large enough to notice, or nothing."""
    return ProgressBar(enabled, total, PROGRESS_THRESHOLD, unit="B", unit_scale=True, unit_divisor=1024, desc=label)


class _Download:
    """Where a streamed response body goes: a file, with a progress bar."""

    def __init__(self, path: Path, total: int, label: str, progress: bool) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._f = open(path, "wb")  # noqa: SIM115 - closed by finish/discard
        self._progress = _progress(progress, total, label)

    def write(self, chunk: bytes) -> None:
        self._f.write(chunk)
        self._progress.update(len(chunk))

    def finish(self) -> None:
        self._progress.close()
        self._f.close()

    def discard(self) -> None:
        self._progress.close()
        self._f.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


class _ArtifactCache:
    """Downloaded artifacts, one file per index, each named by its index and revalidated
    by its ETag (the artifact's manifest digest, so the file itself carries it).

    A cache directory that cannot be written (read-only, not a directory, full) is not a
    reason to fail a read that the server can answer: the cache turns itself off, with one
    warning, and downloads go to a temporary file instead."""

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self._checked = root is None

    def check(self) -> None:
        """Turn the cache off (one warning) unless its directory can be created and written."""
        if self._checked or self.root is None:
            return
        self._checked = True
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            usable = os.access(self.root, os.W_OK | os.X_OK)
            problem = "it is not writable"
        except OSError as exc:
            usable, problem = False, str(exc.strerror or exc)
        if not usable:
            self.disable(problem)

    def disable(self, problem: str) -> None:
        if self.root is None:
            return
        root, self.root = self.root, None
        warnings.warn(
            f"the download cache {root} cannot be used ({problem}): indexes are downloaded whole on every load. "
            "Set LICHEN_HOME (or Client(home=...)) to a writable directory to cache them",
            RuntimeWarning,
            stacklevel=2,
        )

    def owns(self, path: Path) -> bool:
        return self.root is not None and path.parent == self.root

    def path(self, name: str) -> Path | None:
        if self.root is None:
            return None
        digest = xxhash.xxh3_64_hexdigest(name.encode("utf-8"))
        return self.root / f"{digest}{_artifact.FILE_SUFFIX}"

    def etag(self, name: str) -> str | None:
        path = self.path(name)
        if path is None:
            return None
        try:
            manifest = _artifact.read_manifest(path)
        except OSError:  # missing, or the cache directory is unusable: a miss either way
            return None
        except CorruptDataError:
            self.discard(name)
            return None
        return manifest.etag if manifest.name == name else None

    def temp_path(self, name: str) -> Path:
        self.check()
        final = self.path(name)
        if final is None:
            return self.uncached_path()
        return _artifact.temp_path_for(final)

    @staticmethod
    def uncached_path() -> Path:
        import tempfile

        return Path(tempfile.gettempdir()) / f".lichen-download-{uuid.uuid4().hex}.tmp"

    def commit(self, downloaded: Path, name: str) -> None:
        """Keep a verified download as the cached copy of ``name`` (or drop it: the
        snapshot read from it is a mapping that outlives the file)."""
        final = self.path(name)
        if final is not None and downloaded.parent == final.parent:
            try:
                os.replace(downloaded, final)
            except OSError as exc:
                self.disable(str(exc.strerror or exc))
            else:
                self._remove_stale_temps()
                return
        with contextlib.suppress(OSError):
            os.unlink(downloaded)

    def _remove_stale_temps(self) -> None:
        """Downloads of killed processes leave hidden temp files: drop day-old ones."""
        cutoff = time.time() - _STALE_TEMP_S
        assert self.root is not None
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.root):
                if entry.name.startswith(".") and entry.name.endswith(".tmp"):
                    with contextlib.suppress(OSError):
                        if entry.stat().st_mtime < cutoff:
                            os.unlink(entry.path)

    def discard(self, name: str) -> None:
        path = self.path(name)
        if path is not None:
            with contextlib.suppress(OSError):  # an unremovable entry is overwritten or bypassed later
                os.unlink(path)


class _HttpStoreBase:
    """Every decision of the HTTP store; subclasses only send and wait."""

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
        cache_root: Path | None = None
        if cache:
            base = Path(cache_dir).expanduser() if cache_dir else None
            if base is None:
                env = os.environ.get("LICHEN_HOME")
                base = Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("lichen", appauthor=False))
            server = xxhash.xxh3_64_hexdigest(self.url.encode("utf-8"))
            cache_root = base / "http-cache" / server / (project_id or "anonymous")
        self._cache = _ArtifactCache(cache_root)

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

    def _client_options(self) -> dict[str, Any]:
        return {
            "base_url": self.url,
            "timeout": self.timeout.to_httpx(),
            "headers": {"User-Agent": "lichen-python", **self._extra_headers},
        }

    def _build_request(self, client: httpx.Client | httpx.AsyncClient, call: _Call, stream: Any) -> httpx.Request:
        headers = {**self._auth_headers(), **call.headers}
        if stream is not None:
            headers["Content-Length"] = str(call.body_size)
            headers.setdefault("Content-Type", _artifact.MEDIA_TYPE)
        return client.build_request(
            call.method, call.path, params=call.params, headers=headers,
            content=stream if stream is not None else call.content,
        )

    def _upload_chunks(self, call: _Call) -> Iterator[bytes]:
        assert call.body is not None
        progress = _progress(progress_wanted(self.progress), call.body_size, call.label)
        try:
            for chunk in call.body():
                progress.update(len(chunk))
                yield chunk
        finally:
            progress.close()

    def _open_download(self, call: _Call, response: httpx.Response) -> _Download | None:
        if call.download is None or response.status_code != 200:
            return None
        total = int(response.headers.get("content-length", "0") or 0)
        return _Download(call.download, total, call.label, progress_wanted(self.progress))

    def _after_failed_attempt(self, call: _Call, attempt: int, sink: _Download | None, exc: Exception) -> float:
        """Drop a partial download, then return how long to wait before retrying or raise
        the error this failure maps to (shared by both faces' send loops)."""
        if sink is not None:
            sink.discard()
        if not isinstance(exc, httpx.TransportError):  # OSError: the download's file cannot be written
            if call.download is not None and self._cache.owns(call.download):
                # The cache directory refused it (read-only, full): read without the cache.
                self._cache.disable(str(exc.strerror or exc))
                call.download = self._cache.uncached_path()
                return 0.0
            raise StorageError(
                f"cannot write the downloaded index to {call.download}: {getattr(exc, 'strerror', None) or exc} "
                "(no usable download cache either: set LICHEN_HOME to a writable directory)"
            ) from exc
        delay = self._retry_delay(call, attempt, exc=exc)
        if delay is None:
            raise self._network_error(call, exc) from None
        return delay

    def _retry_delay(self, call: _Call, attempt: int, *, exc: Exception | None = None, reply: _Reply | None = None) -> float | None:
        """Seconds to wait before repeating ``call``, or ``None`` to give up now."""
        if attempt >= self.retries.attempts:
            return None
        if exc is not None:
            # Nothing reached the server: always safe to repeat.
            if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
                return self.retries.delay(attempt)
            return self.retries.delay(attempt) if call.retryable else None
        assert reply is not None
        if reply.status not in _RETRY_STATUSES:
            return None
        error = reply.error()
        retry_after = reply.headers.get("retry-after", "")
        # A Lichen server's own 503 with Retry-After (its spool or merge queue is full)
        # refused the request before doing anything: any call, even one that is not safe to
        # repeat, can be sent again. A proxy's 503 carries no Lichen error body.
        turned_away = reply.status == 503 and error is not None and retry_after.isdigit()
        if not (call.retryable or turned_away):
            return None
        if error is not None and error.code not in (ErrorCode.INTERNAL,):
            return None  # a definite answer (e.g. corrupt data): repeating will not change it
        if retry_after.isdigit():
            return min(float(retry_after), self.retries.max_backoff)
        return self.retries.delay(attempt)

    def _network_error(self, call: _Call, exc: Exception) -> NetworkError:
        what = f"{call.method} {self.url}{call.path}"
        if isinstance(exc, httpx.ConnectError):
            return NetworkError(f"cannot reach the Lichen server at {self.url} ({exc or 'connection refused'})")
        if isinstance(exc, httpx.TimeoutException):
            return NetworkError(f"{what} timed out ({type(exc).__name__}); see HttpStore(timeout=Timeout(...))")
        return NetworkError(f"{what} failed: the connection dropped ({type(exc).__name__}: {exc})")

    def _raise_for(self, reply: _Reply, call: _Call) -> None:
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

    def _expect(self, reply: _Reply, call: _Call, *ok: int) -> _Reply:
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
        call = _Call("GET", f"{API_PREFIX}/project")
        reply = self._expect((yield call), call, 200)
        project = reply.model(ProjectModel)
        if project.protocol != PROTOCOL_VERSION:
            raise LichenError(
                f"the server at {self.url} speaks protocol {project.protocol}; this client speaks {PROTOCOL_VERSION}"
            )
        self._limits = project.limits

    def _op_get_info(self, name: str) -> Operation[IndexInfo]:
        call = _Call("GET", self._index_path(name))
        reply = self._expect((yield call), call, 200)
        return self._info(reply.model(IndexInfoModel))

    def _op_list(self) -> Operation[list[IndexInfo]]:
        call = _Call("GET", f"{API_PREFIX}/indexes")
        reply = self._expect((yield call), call, 200)
        return [self._info(m) for m in reply.model(IndexListModel).indexes]

    def _op_delete(self, name: str, expected_version: int | None = None) -> Operation[bool]:
        call = _Call("DELETE", self._index_path(name), headers=self._conditions(expected_version))
        reply = yield call
        if reply.status == 404 and (reply.error() is None or reply.error().code == ErrorCode.NOT_FOUND):
            return False
        self._expect(reply, call, 200)
        self._cache.discard(name)
        return True

    def _op_read(self, name: str) -> Operation[IndexSnapshot]:
        validate_index_name(name)
        for _ in range(2):
            etag = self._cache.etag(name)
            call = _Call(
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
                return self._apply_headers(snapshot, reply)
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
            return self._apply_headers(snapshot, reply)
        raise CorruptDataError(f"the local cache of index {name!r} keeps failing to read; remove {self._cache.root}")

    @staticmethod
    def _apply_headers(snapshot: IndexSnapshot, reply: _Reply) -> IndexSnapshot:
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
        call = _Call(
            "PUT", self._index_path(name, "/artifact"), headers=conditions,
            body=self._artifact_body(encoded), body_size=encoded.size,
            idempotent=bool(conditions), label=f"push {name}",
        )
        reply = yield call
        if reply.status in (409, 412) and reply.attempts > 1:
            error = reply.error()
            if error is not None and error.current_etag == encoded.etag:
                # An earlier attempt was applied but its answer was lost: that is success.
                info_call = _Call("GET", self._index_path(name))
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
        call = _Call(
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
        call = _Call(
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
            call = _Call("GET", self._index_path(name, "/docs"), params=[("ids", i) for i in batch] + extra)
            reply = self._expect((yield call), call, 200)
            docs.extend(
                DocumentInfo(id=d.id, text=d.text, metadata=d.metadata, embedding=d.embedding)
                for d in reply.model(DocsModel).docs
            )
        return docs

    def _op_job(self, job_id: str) -> Operation[JobModel]:
        call = _Call("GET", f"{API_PREFIX}/jobs/{quote(job_id, safe='')}")
        reply = self._expect((yield call), call, 200)
        return reply.model(JobModel)


def _read_mapped(path: Path) -> IndexSnapshot:
    """Decode a downloaded artifact lazily: memory-mapped on POSIX, documents decoded row
    by row, single rows read from the file (see :func:`lichen.artifact.read_artifact`);
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


def _advance(op: Operation[T], reply: _Reply | None) -> tuple[bool, Any]:
    """One step of an operation: ``(False, next call)`` or ``(True, result)``."""
    try:
        return False, op.send(reply)  # type: ignore[arg-type]
    except StopIteration as stop:
        return True, stop.value


class HttpStore(_HttpStoreBase):
    """An :class:`~lichen.stores.IndexStore` on a Lichen server.

    Setup: run a server (``lichen serve --data DIR``) and create a project
    (``lichen project create --data DIR``).

    Instantiate (usually through ``Client(project_id, project_key, url=...)``)::

        from lichen.stores.http import HttpStore, Retries, Timeout
        store = HttpStore("http://127.0.0.1:8080", project_id, project_key,
                          timeout=Timeout(read=120), retries=Retries(attempts=5))
        store.check_credentials()                  # UnauthorizedError if wrong

    Write, read, inspect (the same contract as ``LocalStore``)::

        store.write(snapshot, expected_version=0)  # create; ConflictError if it exists
        snap = store.read("faq")                   # cached; revalidated with ETag
        store.get_info("faq"); store.list(); store.delete("faq")

    Server-side document operations (no whole-index transfer)::

        store.add_documents(batch_snapshot)        # (added, updated), vectors included
        store.delete_documents("faq", ["a", "b"])  # how many were deleted
        store.get_documents("faq", ["a"])          # list[DocumentInfo]

    Async: every method has an ``a``-prefixed twin (``await store.aread("faq")``).
    """

    def __init__(self, url: str, project_id: str | None = None, project_key: str | None = None, **options: Any) -> None:
        super().__init__(url, project_id, project_key, **options)
        self._client: httpx.Client | None = None
        self._aclient: httpx.AsyncClient | None = None
        self._aclient_loop: asyncio.AbstractEventLoop | None = None
        self._clients_lock = threading.Lock()  # threads racing to create the one sync client

    # ---- the two ways of sending
    def _sync_client(self) -> httpx.Client:
        if self._client is None:
            with self._clients_lock:
                if self._client is None:
                    self._client = httpx.Client(
                        transport=self._transport, event_hooks=self._event_hooks, **self._client_options()
                    )
        return self._client

    def _async_client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._aclient is None or self._aclient_loop is not loop:
            # An AsyncClient's connections belong to one event loop; asyncio.run() twice
            # in one program means two loops.
            self._aclient = httpx.AsyncClient(transport=self._async_transport, **self._client_options())
            self._aclient_loop = loop
        return self._aclient

    def _send(self, call: _Call) -> _Reply:
        client = self._sync_client()
        attempt = 0
        while True:
            stream = self._upload_chunks(call) if call.body is not None else None
            request = self._build_request(client, call, stream)
            sink: _Download | None = None
            try:
                response = client.send(request, stream=True)
                try:
                    sink = self._open_download(call, response)
                    if sink is not None:
                        for chunk in response.iter_raw():
                            sink.write(chunk)
                        sink.finish()
                        reply = _Reply(response.status_code, response.headers, file=sink.path, attempts=attempt + 1)
                    else:
                        reply = _Reply(response.status_code, response.headers, response.read(), attempts=attempt + 1)
                finally:
                    response.close()
            except (httpx.TransportError, OSError) as exc:
                delay = self._after_failed_attempt(call, attempt, sink, exc)
            else:
                delay = self._retry_delay(call, attempt, reply=reply)
                if delay is None:
                    return reply
            time.sleep(delay)
            attempt += 1

    async def _asend(self, call: _Call) -> _Reply:
        client = self._async_client()
        attempt = 0
        while True:
            stream = _aiterate(self._upload_chunks(call)) if call.body is not None else None
            request = self._build_request(client, call, stream)
            sink: _Download | None = None
            try:
                response = await client.send(request, stream=True)
                try:
                    sink = self._open_download(call, response)
                    if sink is not None:
                        async for chunk in response.aiter_raw():
                            sink.write(chunk)
                        sink.finish()
                        reply = _Reply(response.status_code, response.headers, file=sink.path, attempts=attempt + 1)
                    else:
                        reply = _Reply(response.status_code, response.headers, await response.aread(), attempts=attempt + 1)
                finally:
                    await response.aclose()
            except (httpx.TransportError, OSError) as exc:
                delay = self._after_failed_attempt(call, attempt, sink, exc)
            else:
                delay = self._retry_delay(call, attempt, reply=reply)
                if delay is None:
                    return reply
            await asyncio.sleep(delay)
            attempt += 1

    def _run(self, op: Operation[T]) -> T:
        done, value = _advance(op, None)
        while not done:
            done, value = _advance(op, self._send(value))
        return value

    async def _arun(self, op: Operation[T]) -> T:
        # Operation steps decode and verify artifacts: keep them off the event loop.
        done, value = await asyncio.to_thread(_advance, op, None)
        while not done:
            reply = await self._asend(value)
            done, value = await asyncio.to_thread(_advance, op, reply)
        return value

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        if self._aclient is not None:
            await self._aclient.aclose()
            self._aclient = None
        self.close()

    def __enter__(self) -> HttpStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- sync face
    def check_credentials(self) -> None:
        """Raise ``UnauthorizedError`` unless the server accepts the project's key."""
        return self._run(self._op_check_credentials())

    def server_limits(self) -> LimitsModel:
        return self._run(self._op_limits())

    def get_info(self, name: str) -> IndexInfo:
        return self._run(self._op_get_info(name))

    def read(self, name: str) -> IndexSnapshot:
        return self._run(self._op_read(name))

    def write(self, snapshot: IndexSnapshot, *, expected_version: int | None = None) -> PushIndexResult:
        return self._run(self._op_write(snapshot, expected_version))

    def list(self) -> list[IndexInfo]:
        return self._run(self._op_list())

    def delete(self, name: str, *, expected_version: int | None = None) -> bool:
        return self._run(self._op_delete(name, expected_version))

    def add_documents(self, batch: IndexSnapshot, *, expected_version: int | None = None) -> tuple[int, int]:
        """Upsert ``batch`` (documents with their vectors) into the stored index of
        ``batch.name`` on the server; returns ``(added, updated)``."""
        return self._run(self._op_add_documents(batch, expected_version))

    def delete_documents(self, name: str, ids: Sequence[str], *, expected_version: int | None = None) -> int:
        return self._run(self._op_delete_documents(name, ids, expected_version))

    def get_documents(
        self, name: str, ids: Sequence[str] | None = None, *, include_embeddings: bool = False
    ) -> list[DocumentInfo]:
        return self._run(self._op_get_documents(name, ids, include_embeddings))

    def job(self, job_id: str) -> JobModel:
        return self._run(self._op_job(job_id))

    # ---- async face
    async def acheck_credentials(self) -> None:
        return await self._arun(self._op_check_credentials())

    async def aserver_limits(self) -> LimitsModel:
        return await self._arun(self._op_limits())

    async def aget_info(self, name: str) -> IndexInfo:
        return await self._arun(self._op_get_info(name))

    async def aread(self, name: str) -> IndexSnapshot:
        return await self._arun(self._op_read(name))

    async def awrite(self, snapshot: IndexSnapshot, *, expected_version: int | None = None) -> PushIndexResult:
        return await self._arun(self._op_write(snapshot, expected_version))

    async def alist(self) -> list[IndexInfo]:
        return await self._arun(self._op_list())

    async def adelete(self, name: str, *, expected_version: int | None = None) -> bool:
        return await self._arun(self._op_delete(name, expected_version))

    async def aadd_documents(self, batch: IndexSnapshot, *, expected_version: int | None = None) -> tuple[int, int]:
        return await self._arun(self._op_add_documents(batch, expected_version))

    async def adelete_documents(self, name: str, ids: Sequence[str], *, expected_version: int | None = None) -> int:
        return await self._arun(self._op_delete_documents(name, ids, expected_version))

    async def aget_documents(
        self, name: str, ids: Sequence[str] | None = None, *, include_embeddings: bool = False
    ) -> list[DocumentInfo]:
        return await self._arun(self._op_get_documents(name, ids, include_embeddings))

    async def ajob(self, job_id: str) -> JobModel:
        return await self._arun(self._op_job(job_id))


async def _aiterate(chunks: Iterator[bytes]) -> Any:
    for chunk in chunks:
        yield chunk
