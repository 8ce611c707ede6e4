"""Lichen: local-first retrieval for LLM applications.

A :class:`SessionIndex` is an in-process index you read and write in real time, embedded
by a model shipped inside the package; a :class:`Client` pushes sessions to, and loads
long-term indexes from, an embedded directory or a Lichen server.
"""

from importlib import metadata as _metadata

from ._client import Client, IndexStatus, LoadReport
from ._errors import (
    ConflictError,
    CorruptDataError,
    IndexNotLoadedError,
    InvalidArgumentError,
    LichenError,
    LimitExceededError,
    ModelUnavailableError,
    NetworkError,
    NotFoundError,
    SourceError,
    StorageError,
    TruncationWarning,
    Unauthorized,
    UnauthorizedError,
)
from ._session import SessionIndex
from ._types import (
    DocumentInfo,
    IndexInfo,
    PushIndexResult,
    QueryOptions,
    QueryResultDocument,
    SearchResult,
)
from .merge import ContextHit, ContextSearch, merge_ranked
from .models import get_embedder

try:  # one source of truth: the version in pyproject.toml, as installed
    __version__ = _metadata.version("lichen")
except _metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = ""

__all__ = [
    "Client",
    "SessionIndex",
    "DocumentInfo",
    "QueryOptions",
    "QueryResultDocument",
    "SearchResult",
    "PushIndexResult",
    "IndexInfo",
    "IndexStatus",
    "LoadReport",
    "ContextSearch",
    "ContextHit",
    "merge_ranked",
    "get_embedder",
    "LichenError",
    "InvalidArgumentError",
    "NotFoundError",
    "IndexNotLoadedError",
    "UnauthorizedError",
    "Unauthorized",
    "ConflictError",
    "NetworkError",
    "CorruptDataError",
    "ModelUnavailableError",
    "LimitExceededError",
    "StorageError",
    "SourceError",
    "TruncationWarning",
    "__version__",
]
