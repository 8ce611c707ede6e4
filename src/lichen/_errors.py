"""The one exception tree of Lichen.

Users catch :class:`LichenError` or something narrower; nothing escapes from deep inside
numpy, onnxruntime or httpx without being translated into one of these first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "LichenError",
    "InvalidArgumentError",
    "NotFoundError",
    "UnauthorizedError",
    "ConflictError",
    "NetworkError",
    "CorruptDataError",
    "ModelUnavailableError",
    "LimitExceededError",
    "IndexNotLoadedError",
    "StorageError",
    "SourceError",
    "TruncationWarning",
]


class LichenError(Exception):
    """Root of every error Lichen raises on purpose."""


class InvalidArgumentError(LichenError, ValueError):
    """An argument is malformed: wrong embedding size, NaN, unknown filter operator,
    duplicate or non-string ids, a model mismatch on resume. Also a ``ValueError`` so code
    written against the seed (which documents ``ValueError``) keeps working."""


class NotFoundError(LichenError, KeyError):
    """A named index (or a loaded index) does not exist."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable.
        return str(self.args[0]) if self.args else ""


class IndexNotLoadedError(NotFoundError):
    """A long-term index is queried before ``client.load_index(name)`` (or after unload)."""


class UnauthorizedError(LichenError):
    """Project credentials are missing or wrong; raised when a session is opened."""


class ConflictError(LichenError):
    """A concurrent writer changed the index since it was read (optimistic concurrency)."""


class NetworkError(LichenError):
    """The server could not be reached, or the connection dropped mid-transfer."""


class CorruptDataError(LichenError):
    """A stored artifact fails its checksum, is truncated, or has an unknown format."""


class StorageError(LichenError):
    """The disk (or the server's storage) refused a read or write: a missing directory,
    no space, no permission. What was stored before is left as it was."""


class ModelUnavailableError(LichenError):
    """The requested embedding model is unknown or its files are missing."""


class LimitExceededError(InvalidArgumentError):
    """A document, request or index is larger than the configured limits allow."""


class SourceError(InvalidArgumentError):
    """Inputs given to ``add_docs``, ``create_index`` or a sync (files, folders) could not
    be read or chunked. ``failures`` lists each, by path, with the reason (records with
    ``source`` and ``reason``: :class:`lichen.ingest.SkippedSource`); nothing was added.
    Pass ``skip_errors=True`` to add the rest and get these back as skipped instead."""

    def __init__(self, failures: Sequence[Any], *, total: int | None = None) -> None:
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


class TruncationWarning(UserWarning):
    """Documents given to ``add_docs`` are longer than the embedding model reads (256 word
    pieces for the built-in model): only their beginning was embedded. Warned once per
    call with the count; each such document's metadata says so under
    ``lichen_truncated_tokens``. Chunk long texts (``add_docs`` of files does) to embed
    all of them."""


# Friendly alias matching the seed's wording ("Unauthorized").
Unauthorized = UnauthorizedError


def corrupt_artifact(label: str, problem: str) -> CorruptDataError:
    """The error for an artifact that is not what it claims, worded the same wherever its
    bytes are read (whole at load, row by row later); ``label`` names the file, if any."""
    where = f" {label}" if label else ""
    return CorruptDataError(f"corrupt Lichen index artifact{where}: {problem}")


def index_exists(name: str, version: int | None) -> ConflictError:
    """The conflict of creating an index whose name is taken, worded as what it is (not
    "version 1, expected 0") with the ways out."""
    at = f" (version {version})" if version else ""
    return ConflictError(
        f"index {name!r} already exists{at}. To add to it, open it with client.session({name!r}); "
        f"to replace it, delete it first (client.delete_index({name!r}), lichen rm {name!r}) "
        "or push with push_index(overwrite=True)"
    )
