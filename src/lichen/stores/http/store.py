"""The HTTP store's two transports: ``httpx.Client`` for the sync face, ``httpx.AsyncClient``
for the async one (its CPU and disk steps in a worker thread), running the operations of
:mod:`.operations`, with the retry policy (STYLE.md: httpx's own pattern, one logic and
two faces that differ only in how they send and wait)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import httpx

from ..._errors import NetworkError, StorageError
from ..._progress import progress_wanted
from ..._types import DocumentInfo, IndexInfo, PushIndexResult
from ...format import artifact as _artifact
from ...format.snapshot import IndexSnapshot
from ...protocol import FEATURE_CHANGES, FEATURE_WATCH, ErrorCode, JobModel, LimitsModel
from ..base import IndexChanges, IndexState
from .cache import Download, transfer_progress
from .exchange import RETRY_STATUSES, Call, Operation, Reply
from .operations import HttpOperations

__all__ = ["HttpStore"]

T = TypeVar("T")


def _advance(op: Operation[T], reply: Reply | None) -> tuple[bool, Any]:
    """One step of an operation: ``(False, next call)`` or ``(True, result)``."""
    try:
        return False, op.send(reply)  # type: ignore[arg-type]
    except StopIteration as stop:
        return True, stop.value


class HttpStore(HttpOperations):
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

    # ---- retries, requests and transfers
    def _client_options(self) -> dict[str, Any]:
        return {
            "base_url": self.url,
            "timeout": self.timeout.to_httpx(),
            "headers": {"User-Agent": "lichen-python", **self._extra_headers},
        }

    def _build_request(self, client: httpx.Client | httpx.AsyncClient, call: Call, stream: Any) -> httpx.Request:
        headers = {**self._auth_headers(), **call.headers}
        if stream is not None:
            headers["Content-Length"] = str(call.body_size)
            headers.setdefault("Content-Type", _artifact.MEDIA_TYPE)
        extra: dict[str, Any] = {}
        if call.read_timeout is not None:
            timeout = self.timeout
            extra["timeout"] = httpx.Timeout(
                connect=timeout.connect, read=max(timeout.read, call.read_timeout), write=timeout.write, pool=timeout.pool
            )
        return client.build_request(
            call.method, call.path, params=call.params, headers=headers,
            content=stream if stream is not None else call.content, **extra,
        )

    def _upload_chunks(self, call: Call) -> Iterator[bytes]:
        assert call.body is not None
        progress = transfer_progress(progress_wanted(self.progress), call.body_size, call.label)
        try:
            for chunk in call.body():
                progress.update(len(chunk))
                yield chunk
        finally:
            progress.close()

    def _open_download(self, call: Call, response: httpx.Response) -> Download | None:
        if call.download is None or response.status_code != 200:
            return None
        total = int(response.headers.get("content-length", "0") or 0)
        return Download(call.download, total, call.label, progress_wanted(self.progress))

    def _after_failed_attempt(self, call: Call, attempt: int, sink: Download | None, exc: Exception) -> float:
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

    def _retry_delay(self, call: Call, attempt: int, *, exc: Exception | None = None, reply: Reply | None = None) -> float | None:
        """Seconds to wait before repeating ``call``, or ``None`` to give up now."""
        if attempt >= self.retries.attempts:
            return None
        if exc is not None:
            # Nothing reached the server: always safe to repeat.
            if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
                return self.retries.delay(attempt)
            return self.retries.delay(attempt) if call.retryable else None
        assert reply is not None
        if reply.status not in RETRY_STATUSES:
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

    def _network_error(self, call: Call, exc: Exception) -> NetworkError:
        what = f"{call.method} {self.url}{call.path}"
        if isinstance(exc, httpx.ConnectError):
            return NetworkError(f"cannot reach the Lichen server at {self.url} ({exc or 'connection refused'})")
        if isinstance(exc, httpx.TimeoutException):
            return NetworkError(f"{what} timed out ({type(exc).__name__}); see HttpStore(timeout=Timeout(...))")
        return NetworkError(f"{what} failed: the connection dropped ({type(exc).__name__}: {exc})")

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

    def _send(self, call: Call) -> Reply:
        client = self._sync_client()
        attempt = 0
        while True:
            stream = self._upload_chunks(call) if call.body is not None else None
            request = self._build_request(client, call, stream)
            sink: Download | None = None
            try:
                response = client.send(request, stream=True)
                try:
                    sink = self._open_download(call, response)
                    if sink is not None:
                        for chunk in response.iter_raw():
                            sink.write(chunk)
                        sink.finish()
                        reply = Reply(response.status_code, response.headers, file=sink.path, attempts=attempt + 1)
                    else:
                        reply = Reply(response.status_code, response.headers, response.read(), attempts=attempt + 1)
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

    async def _asend(self, call: Call) -> Reply:
        client = self._async_client()
        attempt = 0
        while True:
            stream = _aiterate(self._upload_chunks(call)) if call.body is not None else None
            request = self._build_request(client, call, stream)
            sink: Download | None = None
            try:
                response = await client.send(request, stream=True)
                try:
                    sink = self._open_download(call, response)
                    if sink is not None:
                        async for chunk in response.aiter_raw():
                            sink.write(chunk)
                        sink.finish()
                        reply = Reply(response.status_code, response.headers, file=sink.path, attempts=attempt + 1)
                    else:
                        reply = Reply(response.status_code, response.headers, await response.aread(), attempts=attempt + 1)
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

    # ---- live indexes (lichen.stores.base.LiveStore)
    def features(self) -> frozenset[str]:
        """What the server offers beyond every version-1 server (``watch``, ``changes``):
        an older server offers neither, and is polled and downloaded from instead."""
        return self._run(self._op_features())

    def read_with_state(self, name: str) -> tuple[IndexSnapshot, IndexState]:
        return self._run(self._op_read_with_state(name))

    def state(self, name: str) -> IndexState:
        return self._run(self._op_state(name))

    def watch(self, name: str, etag: str, wait: float, poll: float = 5.0) -> IndexState | None:
        """A long-poll where the server offers one; else ``get_info`` every ``poll``
        seconds (ETag polling), until ``wait`` has passed."""
        if FEATURE_WATCH in self.features():
            return self._run(self._op_watch(name, etag, wait))
        deadline = time.monotonic() + wait
        while True:
            state = self.state(name)
            if state.etag != etag:
                return state
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            time.sleep(min(poll, left))

    def changes(self, name: str, since: IndexState) -> IndexChanges | None:
        if not since.content or FEATURE_CHANGES not in self.features():
            return None
        return self._run(self._op_changes(name, since))

    def read_cached(self, name: str) -> tuple[IndexSnapshot, IndexState] | None:
        return self._cached_copy(name)

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
