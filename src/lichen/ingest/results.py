"""What ``add_docs`` returns, and which inputs keep its first route: kept apart from the
pipeline so that a session adding ``DocumentInfo``s (a voice agent's turns) loads nothing
else of the ingestion wing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._types import DocumentInfo
from .errors import SkippedSource

__all__ = ["AddResult", "is_documents_only"]


class AddResult(tuple):
    """``(added, updated)`` as ``add_docs`` always returned, plus ``deleted`` (stale chunks
    of re-read files removed) and ``skipped`` (inputs left out with ``skip_errors=True``)."""

    deleted: int
    skipped: list[SkippedSource]

    def __new__(cls, added: int, updated: int, deleted: int = 0, skipped: Sequence[SkippedSource] = ()) -> AddResult:
        result = super().__new__(cls, (added, updated))
        result.deleted = deleted
        result.skipped = list(skipped)
        return result

    @property
    def added(self) -> int:
        return self[0]

    @property
    def updated(self) -> int:
        return self[1]

    def __repr__(self) -> str:
        return f"AddResult(added={self[0]}, updated={self[1]}, deleted={self.deleted}, skipped={self.skipped!r})"


def is_documents_only(docs: Any) -> bool:
    """Whether ``docs`` is a list of ``DocumentInfo`` only (``add_docs``' route before
    ingestion existed), so a caller can keep that path exactly as it was."""
    return isinstance(docs, Sequence) and not isinstance(docs, (str, bytes)) and all(
        isinstance(doc, DocumentInfo) for doc in docs
    )
