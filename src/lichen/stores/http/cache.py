"""Downloaded artifacts kept between loads, and the progress of big transfers."""

from __future__ import annotations

import contextlib
import os
import time
import uuid
import warnings
from pathlib import Path

import orjson
import xxhash

from ..._errors import CorruptDataError
from ..._progress import ProgressBar
from ...format import artifact as _artifact
from ...format.snapshot import IndexSnapshot
from ..base import IndexState

__all__ = ["ArtifactCache", "Download", "transfer_progress", "PROGRESS_THRESHOLD"]

PROGRESS_THRESHOLD = 8 << 20
_STALE_TEMP_S = 24 * 3600


def transfer_progress(enabled: bool, total: int, label: str) -> ProgressBar:
    """A byte-counting bar for a transfer large enough to notice, or nothing."""
    return ProgressBar(enabled, total, PROGRESS_THRESHOLD, unit="B", unit_scale=True, unit_divisor=1024, desc=label)


class Download:
    """Where a streamed response body goes: a file, with a progress bar."""

    def __init__(self, path: Path, total: int, label: str, progress: bool) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._f = open(path, "wb")  # noqa: SIM115 - closed by finish/discard
        self._progress = transfer_progress(progress, total, label)

    def write(self, chunk: bytes) -> None:
        self._f.write(chunk)
        self._progress.update(len(chunk))

    def finish(self) -> None:
        self._progress.close()
        self._f.close()

    def discard(self) -> None:
        self._progress.close()
        self._f.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


class ArtifactCache:
    """Downloaded artifacts, one file per index, each named by its index and revalidated
    by its ETag (the artifact's manifest digest, so the file itself carries it).

    A cache directory that cannot be written (read-only, not a directory, full) is not a
    reason to fail a read that the server can answer: the cache turns itself off, with one
    warning, and downloads go to a temporary file instead."""

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self._checked = root is None

    def check(self) -> None:
        """Turn the cache off (one warning) unless its directory can be created and written."""
        if self._checked or self.root is None:
            return
        self._checked = True
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            usable = os.access(self.root, os.W_OK | os.X_OK)
            problem = "it is not writable"
        except OSError as exc:
            usable, problem = False, str(exc.strerror or exc)
        if not usable:
            self.disable(problem)

    def disable(self, problem: str) -> None:
        if self.root is None:
            return
        root, self.root = self.root, None
        warnings.warn(
            f"the download cache {root} cannot be used ({problem}): indexes are downloaded whole on every load. "
            "Set LICHEN_HOME (or Client(home=...)) to a writable directory to cache them",
            RuntimeWarning,
            stacklevel=2,
        )

    def owns(self, path: Path) -> bool:
        return self.root is not None and path.parent == self.root

    def path(self, name: str) -> Path | None:
        if self.root is None:
            return None
        digest = xxhash.xxh3_64_hexdigest(name.encode("utf-8"))
        return self.root / f"{digest}{_artifact.FILE_SUFFIX}"

    def etag(self, name: str) -> str | None:
        path = self.path(name)
        if path is None:
            return None
        try:
            manifest = _artifact.read_manifest(path)
        except OSError:  # missing, or the cache directory is unusable: a miss either way
            return None
        except CorruptDataError:
            self.discard(name)
            return None
        return manifest.etag if manifest.name == name else None

    def temp_path(self, name: str) -> Path:
        self.check()
        final = self.path(name)
        if final is None:
            return self.uncached_path()
        return _artifact.temp_path_for(final)

    @staticmethod
    def uncached_path() -> Path:
        import tempfile

        return Path(tempfile.gettempdir()) / f".lichen-download-{uuid.uuid4().hex}.tmp"

    def commit(self, downloaded: Path, name: str) -> None:
        """Keep a verified download as the cached copy of ``name`` (or drop it: the
        snapshot read from it is a mapping that outlives the file)."""
        final = self.path(name)
        if final is not None and downloaded.parent == final.parent:
            try:
                os.replace(downloaded, final)
            except OSError as exc:
                self.disable(str(exc.strerror or exc))
            else:
                self._remove_stale_temps()
                return
        with contextlib.suppress(OSError):
            os.unlink(downloaded)

    def _remove_stale_temps(self) -> None:
        """Downloads of killed processes leave hidden temp files: drop day-old ones."""
        cutoff = time.time() - _STALE_TEMP_S
        assert self.root is not None
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.root):
                if entry.name.startswith(".") and entry.name.endswith(".tmp"):
                    with contextlib.suppress(OSError):
                        if entry.stat().st_mtime < cutoff:
                            os.unlink(entry.path)

    def _state_path(self, name: str) -> Path | None:
        path = self.path(name)
        return None if path is None else path.with_suffix(".json")

    def remember(self, name: str, state: IndexState) -> None:
        """Keep the server's record of the cached copy (version, ETag, content digest)
        beside it, so that a load with the server down can say which version it serves
        and a later refresh can ask for the changes since it. Best effort."""
        path = self._state_path(name)
        if path is None:
            return
        record = {"etag": state.etag, "version": state.version, "content": state.content,
                  "doc_count": state.doc_count, "updated_at": state.updated_at}
        temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            temp.write_bytes(orjson.dumps(record))
            os.replace(temp, path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(temp)

    def remembered(self, name: str, snapshot: IndexSnapshot) -> IndexState:
        """The state of the cached copy of ``name``: as remembered if the record is of
        this very artifact, else what its manifest says (no content digest: no delta)."""
        etag = self.etag(name) or ""
        path = self._state_path(name)
        try:
            raw = orjson.loads(path.read_bytes()) if path is not None else None
        except (OSError, orjson.JSONDecodeError):
            raw = None
        if isinstance(raw, dict) and raw.get("etag") == etag and isinstance(raw.get("version"), int):
            return IndexState(raw["version"], etag, str(raw.get("content") or ""), int(raw.get("doc_count") or 0),
                              str(raw.get("updated_at") or ""))
        return IndexState(snapshot.version, etag, "", snapshot.doc_count, snapshot.updated_at)

    def discard(self, name: str) -> None:
        for path in (self.path(name), self._state_path(name)):
            if path is not None:
                with contextlib.suppress(OSError):  # an unremovable entry is overwritten or bypassed later
                    os.unlink(path)
