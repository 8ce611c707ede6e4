"""Small reads from an artifact file with ``pread``, so that what they touch is never mapped.

A loaded big index answers each query from a few hundred float32 rows (the graph's
candidates, re-ranked exactly) and a few documents (the results). Read through a memory
map, every one of those touches makes the kernel map a large block of the file around it
(measured: 20,000 random one-byte touches of a 2.4 GB artifact left 2.2 GB resident), so a
process serving a 1M-document index soon counts the whole file in its RSS. Read with
``pread`` instead, the bytes come from the page cache into small private buffers that are
freed right after: 128 rows of 384 floats cost ~0.13 ms on the reference box, and the
process keeps only what it decoded.
"""

from __future__ import annotations

import os
import weakref
from pathlib import Path

import numpy as np

from .._errors import corrupt_artifact

__all__ = ["ArtifactFile", "FileMatrix"]


class ArtifactFile:
    """An open artifact, read at absolute offsets; safe to share between threads
    (``pread`` has no file position). The descriptor is closed when the object goes."""

    def __init__(self, fd: int, label: str) -> None:
        self._fd = fd
        self.label = label
        self._closer = weakref.finalize(self, os.close, fd)

    @classmethod
    def duplicate(cls, fd: int, label: str) -> ArtifactFile:
        """Keep reading the file behind ``fd`` after its owner closes it, even if a newer
        artifact is renamed over the path meanwhile (it is the same file as the map's)."""
        return cls(os.dup(fd), label)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> ArtifactFile:
        return cls(os.open(Path(path), os.O_RDONLY | getattr(os, "O_BINARY", 0)), f"({path})")

    def read(self, offset: int, length: int) -> bytes:
        data = os.pread(self._fd, length, offset)
        if len(data) != length:
            raise corrupt_artifact(self.label, f"truncated: expected {length} bytes at offset {offset}, got {len(data)}")
        return data

    def close(self) -> None:
        self._closer()


class FileMatrix:
    """The float32 matrix section of an :class:`ArtifactFile`, read row by row."""

    def __init__(self, file: ArtifactFile, offset: int, doc_count: int, dimension: int) -> None:
        self.file = file
        self.offset = offset
        self.shape = (doc_count, dimension)
        self._row_bytes = dimension * 4

    def rows(self, positions: np.ndarray) -> np.ndarray:
        """``matrix[positions]`` without mapping the matrix. Sorted reads would not be
        faster: the rows are scattered over the file either way."""
        count, dimension = self.shape
        if positions.size and (int(positions.min()) < 0 or int(positions.max()) >= count):
            raise IndexError(f"row out of range for a matrix of {count} rows")
        row_bytes, offset, read = self._row_bytes, self.offset, self.file.read
        data = b"".join([read(offset + row * row_bytes, row_bytes) for row in positions.tolist()])
        return np.frombuffer(data, dtype="<f4").reshape(len(positions), dimension)
