"""The wire protocol between :class:`~lichen.stores.http.HttpStore` and a Lichen server.

One definition shared by both ends: the JSON bodies as pydantic models, the header
names, the error codes and the protocol version. It imports nothing but pydantic, so the
client can use it without the server's optional dependencies (starlette, uvicorn,
boto3). ``docs/protocol.md`` describes the routes in prose. The naming rules both ends
enforce live here too: what makes a valid index name, a valid project id.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field

from ._errors import InvalidArgumentError

__all__ = [
    "PROTOCOL_VERSION",
    "API_PREFIX",
    "HEADER_VERSION",
    "HEADER_CREATED_AT",
    "HEADER_UPDATED_AT",
    "HEADER_DOC_COUNT",
    "HEADER_JOB_ID",
    "HEADER_CONTENT",
    "HEADER_BASE_VERSION",
    "FEATURE_WATCH",
    "FEATURE_CHANGES",
    "MAX_WAIT_S",
    "CHANGES_EXTRA_KEY",
    "ErrorCode",
    "ErrorBody",
    "ErrorResponse",
    "LimitsModel",
    "ProjectModel",
    "IndexInfoModel",
    "IndexListModel",
    "PushResultModel",
    "AddDocsResultModel",
    "DeleteDocsRequest",
    "DeleteDocsResultModel",
    "DeleteIndexResultModel",
    "DocumentModel",
    "DocsModel",
    "JobModel",
    "ChangesModel",
    "HealthModel",
    "format_version_tag",
    "parse_version_tag",
    "validate_index_name",
    "MAX_INDEX_NAME_LENGTH",
    "PROJECT_ID_PATTERN",
]

MAX_INDEX_NAME_LENGTH = 200
_FORBIDDEN_CATEGORIES = {"Cc", "Cs", "Zl", "Zp"}  # control chars, lone surrogates, line breaks
PROJECT_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""Project ids: also used as storage key prefixes, so plain ASCII only."""


def validate_index_name(name: object) -> str:
    """Return ``name`` if it is a valid index name, else raise ``InvalidArgumentError``.

    Valid: a non-empty ``str`` of at most 200 characters, without ``/`` or ``\\``,
    control characters or line separators, and not ``.`` or ``..``.
    """
    if not isinstance(name, str):
        raise InvalidArgumentError(f"index name must be a str, got {type(name).__name__}")
    if not name:
        raise InvalidArgumentError("index name must not be empty")
    if len(name) > MAX_INDEX_NAME_LENGTH:
        raise InvalidArgumentError(
            f"index name is {len(name)} characters long; the limit is {MAX_INDEX_NAME_LENGTH}"
        )
    if "/" in name or "\\" in name:
        raise InvalidArgumentError(f"index name {name!r} must not contain '/' or '\\'")
    if name in (".", ".."):
        raise InvalidArgumentError(f"index name {name!r} is reserved")
    for ch in name:
        if unicodedata.category(ch) in _FORBIDDEN_CATEGORIES:
            raise InvalidArgumentError(f"index name {name!r} contains the control character {ch!r}")
    return name

PROTOCOL_VERSION = 1
API_PREFIX = "/v1"

# Response headers of GET .../artifact (also sent with 304): the server's record of the
# index is authoritative over what the uploader wrote into the artifact's manifest.
HEADER_VERSION = "Lichen-Version"
HEADER_CREATED_AT = "Lichen-Created-At"
HEADER_UPDATED_AT = "Lichen-Updated-At"
HEADER_DOC_COUNT = "Lichen-Doc-Count"
HEADER_JOB_ID = "Lichen-Job-Id"
# The digest of an index's documents (ids, texts, metadata, vectors; not its graph): what
# a client's copy must match for a delta to apply. A compaction changes the ETag, not this.
HEADER_CONTENT = "Lichen-Content-Digest"
# On GET .../changes: the version the delta starts from (the client's ``since``).
HEADER_BASE_VERSION = "Lichen-Base-Version"

# What a server offers beyond the routes every version-1 server has, listed in
# ``GET /v1/project``'s ``features``: a client uses a feature only when it is listed, so
# older servers keep working (ETag polling and whole downloads instead).
FEATURE_WATCH = "watch"
"""``GET /v1/indexes/{name}?wait=S`` with ``If-None-Match`` waits for the index to change."""
FEATURE_CHANGES = "changes"
"""``GET /v1/indexes/{name}/changes?since=V&content=C`` answers what changed since V."""
MAX_WAIT_S = 60
"""The longest a long-poll waits (``wait`` above it is clamped)."""
CHANGES_EXTRA_KEY = "lichen_changes"
"""Manifest ``extra`` key of a changes body: :class:`ChangesModel`."""

_VERSION_TAG = re.compile(r'(?:W/)?"?([0-9]{1,18})"?')


class ErrorCode:
    """The ``error.code`` values; the client maps each to one :mod:`lichen` exception."""

    UNAUTHORIZED = "unauthorized"  # 401 -> UnauthorizedError
    NOT_FOUND = "not_found"  # 404 -> NotFoundError
    CONFLICT = "conflict"  # 409 / 412 -> ConflictError
    LIMIT_EXCEEDED = "limit_exceeded"  # 413 / 422 -> LimitExceededError
    INVALID_ARGUMENT = "invalid_argument"  # 400 / 422 -> InvalidArgumentError
    CORRUPT_DATA = "corrupt_data"  # 422 (upload) / 500 (stored) -> CorruptDataError
    INTERNAL = "internal"  # 500 / 503 -> NetworkError after retries
    GONE = "gone"  # 410 on GET .../changes: no delta from that version, download the artifact


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ErrorBody(_Model):
    code: str
    message: str
    current_version: Optional[int] = None
    current_etag: Optional[str] = None


class ErrorResponse(_Model):
    """Every 4xx/5xx body: ``{"error": {"code": ..., "message": ...}}``."""

    error: ErrorBody


class LimitsModel(_Model):
    max_body_bytes: int
    max_docs: int


class ProjectModel(_Model):
    """``GET /v1/project``: who the credentials belong to, and the server's limits."""

    project_id: str
    protocol: int = PROTOCOL_VERSION
    limits: LimitsModel
    features: list[str] = Field(default_factory=list)
    """Optional routes this server offers (:data:`FEATURE_WATCH`, :data:`FEATURE_CHANGES`);
    absent from older servers' answers."""


class IndexInfoModel(_Model):
    name: str
    doc_count: int
    model_id: str
    dimension: int
    version: int
    created_at: str
    updated_at: str
    etag: str = ""
    size: int = 0
    content: str = ""
    """Digest of the documents (see ``Lichen-Content-Digest``); empty from older servers."""


class IndexListModel(_Model):
    indexes: list[IndexInfoModel]


class PushResultModel(_Model):
    job_id: str
    index_name: str
    doc_count: int
    status: str = "completed"
    version: int
    etag: str


class AddDocsResultModel(_Model):
    job_id: str
    index_name: str
    added: int
    updated: int
    doc_count: int
    version: int


class DeleteDocsRequest(_Model):
    ids: list[str] = Field(max_length=1_000_000)


class DeleteDocsResultModel(_Model):
    job_id: str
    index_name: str
    deleted: int
    doc_count: int
    version: int


class DeleteIndexResultModel(_Model):
    index_name: str
    deleted: bool


class DocumentModel(_Model):
    id: str
    text: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    embedding: Optional[list[float]] = None


class DocsModel(_Model):
    index_name: str
    version: int
    docs: list[DocumentModel]


class JobModel(_Model):
    """``GET /v1/jobs/{job_id}``. Writes complete before their response is sent, so a job
    is ``completed`` when the client first learns its id; records remain for lookups."""

    job_id: str
    kind: str
    index_name: str
    status: str
    doc_count: int
    version: int
    created_at: str


class ChangesModel(_Model):
    """What a changes body (``GET .../changes``, an artifact of the documents added or
    replaced) carries in its manifest's ``extra[CHANGES_EXTRA_KEY]``: apply ``deleted``
    (ids), then upsert the body's documents in order (the first ``updated`` replace
    documents in place, the rest are appended), and the copy is ``version``."""

    since: int
    version: int
    deleted: list[str] = Field(default_factory=list)
    updated: int = 0


class HealthModel(_Model):
    """``GET /healthz`` and ``GET /readyz`` (no credentials): ``status`` is ``"ok"``, or
    for ``/readyz`` with 503 ``"unavailable"`` and why."""

    status: str
    storage: Optional[str] = None
    detail: Optional[str] = None


def format_version_tag(version: int) -> str:
    """The ``If-Match`` value for a conditional write at ``version``: ``"3"``."""
    return f'"{int(version)}"'


def parse_version_tag(value: str) -> int | None:
    """Parse an ``If-Match`` version (quoted or bare, weak prefix tolerated); ``None`` if
    it is not a non-negative integer of ASCII digits that fits in 64 bits (so neither
    ``"²"`` nor 5,000 digits reach ``int()``)."""
    match = _VERSION_TAG.fullmatch(value.strip())
    return int(match.group(1)) if match else None
