"""The HTTP face of a Lichen server: a Starlette ASGI app (protocol version 1).

Starlette rather than FastAPI: the server has ten routes, streams multi-hundred-megabyte
bodies in and out (which FastAPI's body handling adds nothing to), and validates its few
JSON bodies with the pydantic models of :mod:`lichen.protocol`, shared with the
client. Starlette is what FastAPI is built on, so the choice costs nothing in speed.

Every ``/v1/`` route but the protocol's description (``/v1/openapi.json``) needs
``Authorization: Bearer <project_id>:<project_key>`` and only ever touches that project's
indexes. Errors are JSON: ``{"error": {"code", "message"}}`` (see ``docs/protocol.md``).
What a load balancer and a monitoring system need is outside ``/v1/`` and needs no key:
``/healthz`` (the process answers), ``/readyz`` (its storage answers) and ``/metrics``
(Prometheus, :mod:`lichen.server.metrics`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from .._errors import (
    ConflictError,
    CorruptDataError,
    InvalidArgumentError,
    LimitExceededError,
    NotFoundError,
    UnauthorizedError,
)
from ..format.artifact import MEDIA_TYPE
from ..protocol import (
    API_PREFIX,
    HEADER_BASE_VERSION,
    HEADER_CONTENT,
    HEADER_CREATED_AT,
    HEADER_DOC_COUNT,
    HEADER_JOB_ID,
    HEADER_UPDATED_AT,
    HEADER_VERSION,
    MAX_WAIT_S,
    PROTOCOL_VERSION,
    DeleteDocsRequest,
    DeleteIndexResultModel,
    ErrorBody,
    ErrorCode,
    ErrorResponse,
    HealthModel,
    IndexInfoModel,
    IndexListModel,
    LimitsModel,
    ProjectModel,
    PushResultModel,
    parse_version_tag,
)
from .auth import Authenticator
from .changes import ChangePolicy, ChangesGone
from .compaction import CompactionPolicy
from .merge_queue import ServerBusyError
from .metrics import CONTENT_TYPE_LATEST, MetricsMiddleware, ServerMetrics
from .openapi import FEATURES, openapi_document
from .service import IndexService, InvalidUploadError, Limits
from .storage import IndexConflict, IndexHead, Storage, Upload
from .watch import HeadWatch, TooManyWatchers

__all__ = ["ServerConfig", "create_app"]

logger = logging.getLogger("lichen.server")

# A body over the limit is still read (and dropped) up to this much, so the client gets
# the 413 rather than a connection reset in the middle of its upload.
_DRAIN_LIMIT = 256 << 20
# An upload of undeclared length claims spool budget in steps of this much.
_CLAIM_STEP = 8 << 20
_RETRY_AFTER_S = "2"
_SHOWN_HEADER_CHARS = 40


@dataclass
class ServerConfig:
    storage: Storage
    limits: Limits = field(default_factory=Limits)
    compaction: CompactionPolicy = field(default_factory=CompactionPolicy)
    changes: ChangePolicy = field(default_factory=ChangePolicy)
    watch_interval: float = 0.5
    """Seconds between two looks at a watched index's head in storage, while a long-poll
    waits on it (``lichen serve --watch-interval``): how late a replica learns of a write
    another replica published."""
    max_long_polls: int = 1024
    """Long-polls one process holds open at once (``--max-long-polls``); 503 beyond."""


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, *, current: IndexHead | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.current = current


def _json(model: BaseModel, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(model.model_dump_json(), status_code=status, media_type="application/json", headers=headers)


def _health(model: HealthModel, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A probe's answer, without the fields that do not apply."""
    body = model.model_dump_json(exclude_none=True)
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _error_response(error: ApiError) -> Response:
    body = ErrorResponse(
        error=ErrorBody(
            code=error.code,
            message=error.message,
            current_version=error.current.version if error.current else None,
            current_etag=error.current.etag if error.current else None,
        )
    )
    headers = None
    if error.status == 401:
        headers = {"WWW-Authenticate": 'Bearer realm="lichen"'}
    elif error.status == 503:
        headers = {"Retry-After": _RETRY_AFTER_S}
    return _json(body, error.status, headers)


def _to_api_error(exc: Exception, request: Request) -> ApiError:
    conditional = "if-match" in request.headers or "if-none-match" in request.headers
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, (ServerBusyError, TooManyWatchers)):
        return ApiError(503, ErrorCode.INTERNAL, str(exc))
    if isinstance(exc, ChangesGone):
        return ApiError(410, ErrorCode.GONE, str(exc))
    if isinstance(exc, UnauthorizedError):
        return ApiError(401, ErrorCode.UNAUTHORIZED, str(exc))
    if isinstance(exc, NotFoundError):
        return ApiError(404, ErrorCode.NOT_FOUND, str(exc))
    if isinstance(exc, IndexConflict):
        return ApiError(412 if conditional else 409, ErrorCode.CONFLICT, str(exc), current=exc.current)
    if isinstance(exc, ConflictError):
        return ApiError(409, ErrorCode.CONFLICT, str(exc))
    if isinstance(exc, LimitExceededError):
        return ApiError(422, ErrorCode.LIMIT_EXCEEDED, str(exc))
    if isinstance(exc, InvalidUploadError):
        return ApiError(422, ErrorCode.CORRUPT_DATA, str(exc))
    if isinstance(exc, InvalidArgumentError):
        return ApiError(422, ErrorCode.INVALID_ARGUMENT, str(exc))
    if isinstance(exc, CorruptDataError):
        return ApiError(500, ErrorCode.CORRUPT_DATA, str(exc))
    logger.exception("unexpected error serving %s %s", request.method, request.url.path)
    return ApiError(500, ErrorCode.INTERNAL, f"internal server error ({type(exc).__name__})")


def _private_paths(storage: Storage) -> list[str]:
    """Where the server keeps its files: never to be named in an error body."""
    roots = {storage.spool_dir.parent, getattr(storage, "root", storage.spool_dir.parent)}
    spelled = {str(p) for root in roots for p in (root, root.resolve())}
    return sorted(spelled, key=len, reverse=True)


def _redacted(message: str, private_paths: list[str]) -> str:
    for path in private_paths:
        message = message.replace(path, "<server>")
    return message


def _head_headers(head: IndexHead) -> dict[str, str]:
    headers = {
        "ETag": f'"{head.etag}"',
        HEADER_VERSION: str(head.version),
        HEADER_CREATED_AT: head.created_at,
        HEADER_UPDATED_AT: head.updated_at,
        HEADER_DOC_COUNT: str(head.doc_count),
        HEADER_JOB_ID: head.job_id,
        "Cache-Control": "private, no-cache",
    }
    if head.content:
        headers[HEADER_CONTENT] = head.content
    return headers


def _info(head: IndexHead) -> IndexInfoModel:
    return IndexInfoModel(
        name=head.name, doc_count=head.doc_count, model_id=head.model_id, dimension=head.dimension,
        version=head.version, created_at=head.created_at, updated_at=head.updated_at, etag=head.etag, size=head.size,
        content=head.content,
    )


def _wait_seconds(request: Request) -> float | None:
    """``?wait=S`` (seconds, clamped to :data:`MAX_WAIT_S`), or ``None`` without it."""
    raw = request.query_params.get("wait")
    if raw is None:
        return None
    try:
        wait = float(raw)
    except ValueError:
        raise ApiError(400, ErrorCode.INVALID_ARGUMENT, f"wait must be a number of seconds, got {_shown(raw)}") from None
    if not wait >= 0:  # NaN too
        raise ApiError(400, ErrorCode.INVALID_ARGUMENT, f"wait must be a number of seconds, got {_shown(raw)}")
    return min(wait, float(MAX_WAIT_S))


def _expected_version(request: Request) -> int | None:
    """``If-Match: "<version>"`` pins the version a write applies to; ``If-None-Match: *``
    means the index must not exist yet (version 0)."""
    if_match = request.headers.get("if-match")
    if_none_match = request.headers.get("if-none-match")
    if if_match is not None and if_none_match is not None:
        raise ApiError(400, ErrorCode.INVALID_ARGUMENT, "send If-Match or If-None-Match, not both")
    if if_none_match is not None:
        if if_none_match.strip() != "*":
            raise ApiError(
                400, ErrorCode.INVALID_ARGUMENT, f"on writes, If-None-Match only accepts '*', got {_shown(if_none_match)}"
            )
        return 0
    if if_match is not None:
        version = parse_version_tag(if_match)
        if version is None:
            raise ApiError(
                400, ErrorCode.INVALID_ARGUMENT,
                f'If-Match must be an index version such as "3", got {_shown(if_match)}',
            )
        return version
    return None


async def _disconnected(request: Request) -> None:
    """Return once the client has closed the connection (a GET's body is empty: the next
    message the server gets is the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _shown(header: str) -> str:
    """A header value fit to quote back in an error: short, whatever was sent."""
    if len(header) > _SHOWN_HEADER_CHARS:
        return f"{header[:_SHOWN_HEADER_CHARS]!r}... ({len(header)} characters)"
    return repr(header)


def _declared_length(request: Request) -> int | None:
    """``Content-Length`` as an int, or ``None`` when absent or not plain ASCII digits
    (the HTTP layer refuses those first; this keeps ``int()`` away from them anyway)."""
    value = request.headers.get("content-length", "")
    if value.isascii() and value.isdigit() and len(value) <= 19:
        return int(value)
    return None


class _SpoolBudget:
    """The bytes that uploads in flight in this process may hold in the spool at once
    (:attr:`Limits.spool_budget`): each upload claims its declared length, or its
    received length as it grows, and releases its claim when it is done."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def claim(self, total: int, held: int) -> bool:
        """Grow one upload's claim from ``held`` to ``total`` bytes, if the budget allows."""
        with self._lock:
            if total > held and self.used - held + total > self.limit:
                return False
            self.used += total - held
            return True

    def release(self, held: int) -> None:
        with self._lock:
            self.used -= held


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    tags = {tag.strip().removeprefix("W/").strip('"') for tag in header.split(",")}
    return etag in tags


Handler = Callable[[Request, str], Awaitable[Response]]


def create_app(config: ServerConfig) -> Starlette:
    """Build the ASGI app over ``config.storage``."""
    storage = config.storage
    limits = config.limits
    service = IndexService(storage, limits, config.compaction, config.changes)
    watch = HeadWatch(storage, interval=config.watch_interval, max_open=config.max_long_polls)
    storage.on_commit = watch.poke  # at the commit point: before a superseded artifact is removed
    metrics = ServerMetrics(lambda: service.merges.running, lambda: service.merges.waiting, lambda: watch.open)
    authenticator = Authenticator(storage)
    spool_budget = _SpoolBudget(limits.spool_budget)
    private_paths = _private_paths(storage)

    def endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                project_id = await run_in_threadpool(authenticator.authenticate, request.headers.get("authorization"))
                return await handler(request, project_id)
            except Exception as exc:  # noqa: BLE001 - every failure becomes a JSON error
                error = _to_api_error(exc, request)
                error.message = _redacted(error.message, private_paths)
                return _error_response(error)

        run.__name__ = handler.__name__
        return run

    async def receive_upload(request: Request, claim: Callable[[int], bool]) -> Upload:
        """Spool the request body to a local file, within the body limit and the spool
        budget (``claim``). A refused body is still read, and dropped, up to a point, so
        the client gets the answer rather than a connection reset mid-upload."""
        declared = _declared_length(request)
        if declared is not None and declared > limits.max_body_bytes + _DRAIN_LIMIT:
            raise _too_large()
        claimed = min(declared or 0, limits.max_body_bytes)
        refusal = None if claim(claimed) else _busy()
        upload = None if refusal else await run_in_threadpool(storage.new_upload)
        received = 0
        try:
            async for chunk in request.stream():
                received += len(chunk)
                if refusal is None and received > limits.max_body_bytes:
                    refusal = _too_large()
                if refusal is None and received > claimed:
                    claimed = min(received + _CLAIM_STEP, limits.max_body_bytes)
                    if not claim(claimed):
                        refusal = _busy()
                if refusal is not None:
                    if received > limits.max_body_bytes + _DRAIN_LIMIT:
                        break
                    continue
                assert upload is not None
                upload.write(chunk)
        except ClientDisconnect:
            refusal = ApiError(400, ErrorCode.INVALID_ARGUMENT, "the client disconnected during the upload")
        except BaseException:
            if upload is not None:
                upload.discard()
            raise
        if refusal is not None:
            if upload is not None:
                await run_in_threadpool(upload.discard)
            raise refusal
        assert upload is not None
        return upload

    def _too_large() -> ApiError:
        return ApiError(
            413, ErrorCode.LIMIT_EXCEEDED,
            f"request body is larger than this server's limit of {limits.max_body_bytes} bytes",
        )

    def _busy() -> ApiError:
        return ApiError(
            503, ErrorCode.INTERNAL,
            "the server is receiving too many uploads at once (its spool is full); retry shortly",
        )

    async def with_upload(request: Request, work: Callable[[Upload], Any]) -> Any:
        held = 0

        def claim(total: int) -> bool:
            nonlocal held
            if not spool_budget.claim(total, held):
                return False
            held = max(held, total)
            return True

        try:
            upload = await receive_upload(request, claim)
            try:
                return await run_in_threadpool(work, upload)
            finally:
                await run_in_threadpool(upload.discard)
        finally:
            spool_budget.release(held)

    def index_name(request: Request) -> str:
        return request.path_params["name"]

    # ---- routes
    async def get_project(request: Request, project_id: str) -> Response:
        return _json(
            ProjectModel(
                project_id=project_id,
                protocol=PROTOCOL_VERSION,
                limits=LimitsModel(max_body_bytes=limits.max_body_bytes, max_docs=limits.max_docs),
                features=list(FEATURES),
            )
        )

    async def list_indexes(request: Request, project_id: str) -> Response:
        heads = await run_in_threadpool(service.list, project_id)
        return _json(IndexListModel(indexes=[_info(h) for h in heads]))

    async def get_index(request: Request, project_id: str) -> Response:
        name = index_name(request)
        wait = _wait_seconds(request)
        if_none_match = request.headers.get("if-none-match")
        head = await run_in_threadpool(service.info, project_id, name)
        if wait is not None and if_none_match and _etag_matches(if_none_match, head.etag):
            # A long-poll: answer when the head moves away from the client's ETag.
            etag = if_none_match.strip().removeprefix("W/").strip('"')
            waiting = asyncio.ensure_future(watch.wait(project_id, name, etag, wait))
            gone = asyncio.ensure_future(_disconnected(request))
            await asyncio.wait({waiting, gone}, return_when=asyncio.FIRST_COMPLETED)
            gone.cancel()
            if not waiting.done():  # the client hung up: free its place now, not at the end of its wait
                waiting.cancel()
                return Response(status_code=499)
            changed, current = waiting.result()
            if not changed:
                return Response(status_code=304, headers=_head_headers(current or head))
            if current is None:
                raise NotFoundError(f"index {name!r} not found (deleted)")
            head = current
        return _json(_info(head), headers=_head_headers(head))

    async def get_changes(request: Request, project_id: str) -> Response:
        name = index_name(request)
        since_raw = request.query_params.get("since", "")
        content = request.query_params.get("content", "")
        if not (since_raw.isascii() and since_raw.isdigit() and len(since_raw) <= 18):
            raise ApiError(400, ErrorCode.INVALID_ARGUMENT, f"since must be an index version, got {_shown(since_raw)}")
        since = int(since_raw)
        try:
            head, body = await run_in_threadpool(service.changes_since, project_id, name, since, content)
        except ChangesGone:
            metrics.changes.labels("gone").inc()
            raise
        metrics.changes.labels("delta").inc()
        headers = _head_headers(head)
        headers[HEADER_BASE_VERSION] = str(since)
        return Response(body, media_type=MEDIA_TYPE, headers=headers)

    async def delete_index(request: Request, project_id: str) -> Response:
        name = index_name(request)
        expected = _expected_version(request)
        deleted = await run_in_threadpool(lambda: service.delete_index(project_id, name, expected_version=expected))
        if not deleted:
            raise NotFoundError(f"index {name!r} not found")
        return _json(DeleteIndexResultModel(index_name=name, deleted=True))

    async def get_artifact(request: Request, project_id: str) -> Response:
        name = index_name(request)
        if_none_match = request.headers.get("if-none-match")
        if if_none_match:
            head = await run_in_threadpool(service.info, project_id, name)
            if _etag_matches(if_none_match, head.etag):
                return Response(status_code=304, headers=_head_headers(head))
        stored, chunks = await run_in_threadpool(service.open_download, project_id, name)
        headers = _head_headers(stored.head)
        headers["Content-Length"] = str(stored.head.size)

        async def body() -> AsyncIterator[bytes]:
            try:
                while True:
                    chunk = await run_in_threadpool(next, chunks, None)
                    if chunk is None:
                        return
                    yield chunk
            finally:
                stored.close()

        return StreamingResponse(body(), media_type=MEDIA_TYPE, headers=headers)

    async def put_artifact(request: Request, project_id: str) -> Response:
        name = index_name(request)
        expected = _expected_version(request)
        head = await with_upload(request, lambda upload: service.push(project_id, name, upload, expected_version=expected))
        result = PushResultModel(
            job_id=head.job_id, index_name=name, doc_count=head.doc_count, status="completed",
            version=head.version, etag=head.etag,
        )
        return _json(result, 201 if head.version == 1 else 200, headers=_head_headers(head))

    async def add_docs(request: Request, project_id: str) -> Response:
        name = index_name(request)
        expected = _expected_version(request)
        result = await with_upload(
            request, lambda upload: service.add_docs(project_id, name, upload, expected_version=expected)
        )
        return _json(result)

    async def delete_docs(request: Request, project_id: str) -> Response:
        name = index_name(request)
        expected = _expected_version(request)
        declared = _declared_length(request)
        if declared is not None and declared > limits.max_body_bytes:
            raise ApiError(413, ErrorCode.LIMIT_EXCEEDED, "request body is larger than this server's limit")
        body = await request.body()
        if len(body) > limits.max_body_bytes:
            raise ApiError(413, ErrorCode.LIMIT_EXCEEDED, "request body is larger than this server's limit")
        try:
            ids = DeleteDocsRequest.model_validate_json(body).ids
        except ValidationError as exc:
            raise ApiError(422, ErrorCode.INVALID_ARGUMENT, f"expected {{\"ids\": [str, ...]}}: {exc.errors()[0]['msg']}") from None
        result = await run_in_threadpool(
            lambda: service.delete_docs(project_id, name, ids, expected_version=expected)
        )
        return _json(result)

    async def get_docs(request: Request, project_id: str) -> Response:
        name = index_name(request)
        ids = request.query_params.getlist("ids") or None
        include = request.query_params.get("include_embeddings", "false").lower() in ("1", "true", "yes")
        result = await run_in_threadpool(
            lambda: service.get_docs(project_id, name, ids, include_embeddings=include)
        )
        return _json(result)

    async def get_job(request: Request, project_id: str) -> Response:
        job = await run_in_threadpool(service.job, project_id, request.path_params["job_id"])
        return _json(job)

    # ---- routes without credentials: probes, metrics, the protocol's description
    async def healthz(request: Request) -> Response:
        return _health(HealthModel(status="ok"))

    async def readyz(request: Request) -> Response:
        try:
            await run_in_threadpool(storage.check_ready)
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
            logger.warning("readiness check failed: %s", exc)
            detail = _redacted(f"{type(exc).__name__}: {exc}", private_paths)
            body = HealthModel(status="unavailable", storage=storage.describe_public(), detail=detail[:300])
            return _health(body, 503, headers={"Retry-After": _RETRY_AFTER_S})
        return _health(HealthModel(status="ok", storage=storage.describe_public()))

    async def get_metrics(request: Request) -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    document = openapi_document()

    async def get_openapi(request: Request) -> Response:
        return _json_bytes(document)

    async def http_error(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        code = ErrorCode.NOT_FOUND if status == 404 else ErrorCode.INVALID_ARGUMENT
        detail = getattr(exc, "detail", "") or "error"
        return _error_response(ApiError(status, code, f"{detail}: {request.method} {request.url.path}"))

    p = API_PREFIX
    routes = [
        Route(f"{p}/project", endpoint(get_project), methods=["GET"]),
        Route(f"{p}/indexes", endpoint(list_indexes), methods=["GET"]),
        Route(f"{p}/indexes/{{name}}", endpoint(get_index), methods=["GET"]),
        Route(f"{p}/indexes/{{name}}", endpoint(delete_index), methods=["DELETE"]),
        Route(f"{p}/indexes/{{name}}/artifact", endpoint(get_artifact), methods=["GET"]),
        Route(f"{p}/indexes/{{name}}/artifact", endpoint(put_artifact), methods=["PUT"]),
        Route(f"{p}/indexes/{{name}}/docs", endpoint(get_docs), methods=["GET"]),
        Route(f"{p}/indexes/{{name}}/docs", endpoint(add_docs), methods=["POST"]),
        Route(f"{p}/indexes/{{name}}/docs/delete", endpoint(delete_docs), methods=["POST"]),
        Route(f"{p}/indexes/{{name}}/changes", endpoint(get_changes), methods=["GET"]),
        Route(f"{p}/jobs/{{job_id}}", endpoint(get_job), methods=["GET"]),
        Route(f"{p}/openapi.json", get_openapi, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", get_metrics, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes, exception_handlers={HTTPException: http_error},
        middleware=[Middleware(MetricsMiddleware, metrics=metrics)],
    )
    app.state.config = config
    app.state.service = service
    app.state.watch = watch
    app.state.metrics = metrics
    return app


def _json_bytes(document: dict[str, Any]) -> Response:
    return Response(orjson.dumps(document), media_type="application/json")
