"""What ingestion reports when an input cannot become documents.

One error for every input that could not be read (a missing file, an unknown type, bad
JSON, a PDF without the ``files`` extra), naming each by path, so a batch fails whole
with the complete list instead of one problem per attempt; with ``skip_errors=True`` the
same :class:`SkippedSource` records come back in the result instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .._errors import InvalidArgumentError

__all__ = ["SkippedSource", "SourceError"]


@dataclass(frozen=True)
class SkippedSource:
    """One input that could not be read: its source id (the path as Lichen names it) and
    why, in words a user can act on."""

    source: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source}: {self.reason}"


class SourceError(InvalidArgumentError):
    """One or more inputs could not be read or chunked (``failures`` lists each, by
    path); nothing was added. Also an :class:`~lichen.InvalidArgumentError` (and so a
    ``ValueError``)."""

    def __init__(self, failures: Sequence[SkippedSource], *, total: int | None = None) -> None:
        self.failures = list(failures)
        count = len(self.failures)
        of = f" of {total}" if total is not None else ""
        shown = "; ".join(str(failure) for failure in self.failures[:10])
        more = f"; and {count - 10} more" if count > 10 else ""
        noun = "input" if (total or count) == 1 else "inputs"
        super().__init__(
            f"{count}{of} {noun} could not be read, so nothing was added: {shown}{more} "
            "(pass skip_errors=True to add the rest and get these back as skipped)"
        )
