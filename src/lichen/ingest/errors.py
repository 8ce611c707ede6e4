"""What ingestion reports when an input cannot become documents.

One error for every input that could not be read (a missing file, an unknown type, bad
JSON, a PDF without the ``files`` extra), naming each by path, so a batch fails whole
with the complete list instead of one problem per attempt; with ``skip_errors=True`` the
same :class:`SkippedSource` records come back in the result instead.

:class:`SourceError` itself is public (``lichen.SourceError``, defined in
:mod:`lichen._errors` with the rest of the tree); it is re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._errors import SourceError

__all__ = ["SkippedSource", "SourceError"]


@dataclass(frozen=True)
class SkippedSource:
    """One input that could not be read: its source id (the path as Lichen names it) and
    why, in words a user can act on."""

    source: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source}: {self.reason}"
