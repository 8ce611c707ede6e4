"""One HTTP exchange, as an operation asks for it (:class:`Call`) and as it turned out
(:class:`Reply`): the vocabulary between the sans-IO operations and the transports."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx
from pydantic import ValidationError

from ..._errors import NetworkError
from ...protocol import ErrorBody, ErrorResponse

__all__ = ["Call", "Reply", "Operation", "IDEMPOTENT_METHODS", "RETRY_STATUSES"]

T = TypeVar("T")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})
RETRY_STATUSES = frozenset({500, 502, 503, 504})


@dataclass
class Call:
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
    read_timeout: float | None = None
    """Seconds to wait for the answer, when longer than the store's (a long-poll)."""

    @property
    def retryable(self) -> bool:
        if self.idempotent is not None:
            return self.idempotent
        return self.method in IDEMPOTENT_METHODS


@dataclass
class Reply:
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


Operation = Generator[Call, Reply, T]
