"""The embedded store: named indexes as artifact files in a local directory.

This is what the ``Client`` uses when no server URL is configured, so the seed's samples
run with zero setup. It owns the directory layout, index-name validation, atomic
replacement, versions and cross-process locking; the bytes of each file are the
artifact format of :mod:`lichen.format.artifact`, unchanged.

Layout under ``root``::

    indexes/<safe-name>.lix            the current artifact of one index
    indexes/.<safe-name>.lix.<hex>.tmp a write in progress (or left by a crash: ignored
                                       by readers, removed by the next write)
    locks/<safe-name>.lock             flock'ed by writers of that index

``<safe-name>`` is an ASCII slug of the name plus a hash of its exact spelling, so any
valid name maps to a short, portable file name and names differing only in case never
collide on case-insensitive file systems. The name itself lives in the manifest.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

from .._errors import (
    ConflictError,
    CorruptDataError,
    InvalidArgumentError,
    NotFoundError,
    StorageError,
    index_exists,
)
from .._types import IndexInfo, PushIndexResult
from .._util import storage_key, utc_now
from ..format import artifact as _artifact
from ..format.snapshot import IndexSnapshot
from ..protocol import validate_index_name
from .base import IndexChanges, IndexState

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt

__all__ = ["LocalStore"]

logger = logging.getLogger(__name__)

def _lock_fd(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX)
    else:  # pragma: no cover - Windows
        while True:
            try:
                msvcrt.locking(fd, msvcrt.LK_LOCK, 1)
                return
            except OSError:
                continue


class LocalStore:
    """Named indexes kept as files in a local directory; the ``Client``'s default store.

    Setup: nothing to install or run; the directory is created on the first write.

    Instantiate::

        from lichen.stores import LocalStore
        store = LocalStore("/tmp/my-indexes")        # or LocalStore("/tmp/my-indexes")

    Write, read, inspect::

        result = store.write(snapshot)             # PushIndexResult(version=1, ...)
        snap = store.read("my-index")              # IndexSnapshot, matrix included
        info = store.get_info("my-index")          # manifest only: cheap at any size
        [i.name for i in store.list()]
        store.delete("my-index")                   # True if it existed

    Optimistic concurrency (safe across threads and processes)::

        snap = store.read("my-index")
        store.write(changed, expected_version=snap.version)   # ConflictError if changed

    Async: every method has an ``a``-prefixed twin (``await store.aread("my-index")``)
    running the same code in a worker thread.

    Writes are atomic: a crash or an error mid-write leaves the previous version intact.
    A directory that cannot be read or written raises :class:`~lichen.StorageError`
    naming the path and how to choose another (``LICHEN_HOME``), never a bare ``OSError``.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser()
        self._indexes = self.root / "indexes"
        self._locks = self.root / "locks"

    def __repr__(self) -> str:
        return f"LocalStore(root={str(self.root)!r})"

    def check_home(self) -> None:
        """Fail when the store is opened, not at the first push: raise ``StorageError`` if
        the directory (or the nearest part of it that exists) is not a directory; warn if
        it cannot be written (loading still works; pushing will fail). Creates nothing."""
        existing = self.root
        while not existing.exists() and existing.parent != existing:
            existing = existing.parent
        for path in (existing, self._indexes, self._locks):
            if path.exists() and not path.is_dir():
                raise self._storage_error(f"{path} is not a directory", path)
        if not os.access(existing, os.W_OK | os.X_OK):
            warnings.warn(
                f"the embedded store {self.root} is not writable ({existing}): indexes can be loaded but not "
                "pushed; set LICHEN_HOME (or Client(home=...)) to a writable directory",
                RuntimeWarning,
                stacklevel=3,
            )

    def _storage_error(self, problem: str | OSError, path: Path, doing: str = "use") -> StorageError:
        if isinstance(problem, OSError):
            problem = f"cannot {doing} {path}: {problem.strerror or problem}"
        return StorageError(
            f"{problem}. The embedded store lives in {self.root} (LICHEN_HOME, or Client(home=...)): "
            "point it at a writable directory"
        )

    @contextlib.contextmanager
    def _disk(self, path: Path, doing: str) -> Iterator[None]:
        """Turn a file-system failure into ``StorageError`` naming ``path`` and the home."""
        try:
            yield
        except (FileNotFoundError, StorageError):
            raise
        except OSError as exc:
            raise self._storage_error(exc, path, doing) from exc

    def index_path(self, name: str) -> Path:
        """The artifact file of index ``name`` (which may not exist)."""
        return self._indexes / (storage_key(validate_index_name(name)) + _artifact.FILE_SUFFIX)

    # ---- sync face ---------------------------------------------------------------

    def check_credentials(self) -> None:
        """No-op: the embedded store has no credentials."""

    def get_info(self, name: str) -> IndexInfo:
        path = self.index_path(name)
        try:
            with self._disk(path, "read"):
                manifest = _artifact.read_manifest(path)
        except FileNotFoundError:
            raise NotFoundError(f"index {name!r} not found") from None
        self._check_name(manifest.name, name, path)
        return manifest.info()

    def read(self, name: str) -> IndexSnapshot:
        path = self.index_path(name)
        try:
            with self._disk(path, "read"):
                snapshot = _artifact.read_artifact(path, lazy=True)
        except FileNotFoundError:
            raise NotFoundError(f"index {name!r} not found") from None
        self._check_name(snapshot.name, name, path)
        return snapshot

    def write(self, snapshot: IndexSnapshot, *, expected_version: int | None = None) -> PushIndexResult:
        name = validate_index_name(snapshot.name)
        if expected_version is not None and (type(expected_version) is not int or expected_version < 0):
            raise InvalidArgumentError(
                f"expected_version must be a non-negative int or None, got {expected_version!r}"
            )
        safe = storage_key(name)
        path = self._indexes / (safe + _artifact.FILE_SUFFIX)
        try:
            with self._disk(path, "write"):
                return self._write(snapshot, name, safe, path, expected_version)
        except FileNotFoundError as exc:  # a directory removed under us
            raise self._storage_error(exc, path, "write") from exc

    def _write(
        self, snapshot: IndexSnapshot, name: str, safe: str, path: Path, expected_version: int | None
    ) -> PushIndexResult:
        self._indexes.mkdir(parents=True, exist_ok=True)
        with self._locked(safe):
            self._remove_stray_temps(safe)
            current = self._current_manifest(path, name, expected_version)
            stored_version = current.version if current is not None else 0
            if expected_version == 0 and stored_version:
                raise index_exists(name, stored_version)
            if expected_version is not None and expected_version != stored_version:
                raise ConflictError(
                    f"index {name!r} is at version {stored_version}, expected {expected_version}"
                    if stored_version
                    else f"index {name!r} does not exist, expected version {expected_version}"
                )
            now = utc_now()
            stored = dataclasses.replace(
                snapshot,
                version=stored_version + 1,
                created_at=current.created_at if current is not None else now,
                updated_at=now,
            )
            _artifact.write_artifact_file(stored, path)
        return PushIndexResult(
            job_id=uuid.uuid4().hex,
            index_name=name,
            doc_count=stored.doc_count,
            status="completed",
            version=stored.version,
        )

    def list(self) -> list[IndexInfo]:
        try:
            with self._disk(self._indexes, "list"):
                entries = sorted(os.scandir(self._indexes), key=lambda e: e.name)
        except FileNotFoundError:
            return []
        infos: list[IndexInfo] = []
        for entry in entries:
            if entry.name.startswith(".") or not entry.name.endswith(_artifact.FILE_SUFFIX):
                continue
            try:
                infos.append(_artifact.read_manifest(entry.path).info())
            except FileNotFoundError:
                continue  # deleted since the directory was scanned
            except (CorruptDataError, OSError) as exc:
                logger.warning("skipping unreadable index file %s: %s", entry.path, exc)
        infos.sort(key=lambda info: info.name)
        return infos

    def delete(self, name: str) -> bool:
        safe = storage_key(validate_index_name(name))
        path = self._indexes / (safe + _artifact.FILE_SUFFIX)
        try:
            with self._disk(path, "delete"):
                os.stat(path)
        except FileNotFoundError:
            return False
        with self._disk(path, "delete"), self._locked(safe, remove_after=True):
            self._remove_stray_temps(safe)
            try:
                os.unlink(path)
            except FileNotFoundError:
                return False
            _artifact.fsync_dir(self._indexes)
        return True

    # ---- live indexes (lichen.stores.base.LiveStore) --------------------------------

    def read_with_state(self, name: str) -> tuple[IndexSnapshot, IndexState]:
        snapshot = self.read(name)
        return snapshot, self._state_of(snapshot.name, self.index_path(name))

    def state(self, name: str) -> IndexState:
        path = self.index_path(name)
        try:
            with self._disk(path, "read"):
                return self._state_of(name, path)
        except FileNotFoundError:
            raise NotFoundError(f"index {name!r} not found") from None

    def _state_of(self, name: str, path: Path) -> IndexState:
        manifest = _artifact.read_manifest(path)
        self._check_name(manifest.name, name, path)
        return IndexState(manifest.version, manifest.etag, "", manifest.doc_count, manifest.updated_at)

    def _file_token(self, path: Path) -> tuple[int, int, int] | None:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def watch(self, name: str, etag: str, wait: float, poll: float = 0.5) -> IndexState | None:
        """Another process pushing into this directory replaces the file (a new inode):
        look at it every ``poll`` seconds, and read its manifest only when it moved."""
        path = self.index_path(name)
        deadline = time.monotonic() + wait
        token: object = object()
        while True:
            current = self._file_token(path)
            if current is None:
                raise NotFoundError(f"index {name!r} not found (deleted)")
            if current != token:
                token = current
                try:
                    state = self._state_of(name, path)
                except FileNotFoundError:
                    continue  # replaced between the stat and the read: look again
                if state.etag != etag:
                    return state
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            time.sleep(min(poll, left))

    def changes(self, name: str, since: IndexState) -> IndexChanges | None:
        """None: a local file is mapped, not downloaded, so reading it whole is the delta."""
        return None

    def read_cached(self, name: str) -> tuple[IndexSnapshot, IndexState] | None:
        return None  # the directory is the store itself: nothing to fall back on

    # ---- async face: the same code in a worker thread ------------------------------

    async def acheck_credentials(self) -> None:
        return None

    async def aget_info(self, name: str) -> IndexInfo:
        return await asyncio.to_thread(self.get_info, name)

    async def aread(self, name: str) -> IndexSnapshot:
        return await asyncio.to_thread(self.read, name)

    async def awrite(self, snapshot: IndexSnapshot, *, expected_version: int | None = None) -> PushIndexResult:
        return await asyncio.to_thread(self.write, snapshot, expected_version=expected_version)

    async def alist(self) -> list[IndexInfo]:
        return await asyncio.to_thread(self.list)

    async def adelete(self, name: str) -> bool:
        return await asyncio.to_thread(self.delete, name)

    # ---- internals -----------------------------------------------------------------

    @staticmethod
    def _check_name(stored: str, requested: str, path: Path) -> None:
        if stored != requested:
            raise CorruptDataError(f"index file {path} holds index {stored!r}, not {requested!r}")

    def _current_manifest(
        self, path: Path, name: str, expected_version: int | None
    ) -> _artifact.ArtifactManifest | None:
        try:
            manifest = _artifact.read_manifest(path)
            self._check_name(manifest.name, name, path)
            return manifest
        except FileNotFoundError:
            return None
        except CorruptDataError:
            if expected_version is not None:
                raise  # its version is unknown: only an unconditional write may replace it
            logger.warning("replacing corrupt index file %s", path)
            return None

    def _remove_stray_temps(self, safe: str) -> None:
        """Delete temp files left by crashed writers. Only called under the index lock,
        so no live writer of this index owns one."""
        prefix = f".{safe}{_artifact.FILE_SUFFIX}."
        try:
            entries = list(os.scandir(self._indexes))
        except FileNotFoundError:
            return
        for entry in entries:
            if entry.name.startswith(prefix) and entry.name.endswith(".tmp"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)

    @contextlib.contextmanager
    def _locked(self, safe: str, *, remove_after: bool = False) -> Iterator[None]:
        """Hold the exclusive per-index lock (``flock``: per open file, so it serialises
        threads of one process as well as processes)."""
        self._locks.mkdir(parents=True, exist_ok=True)
        lock_path = self._locks / f"{safe}.lock"
        while True:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                _lock_fd(fd)
                # A deleting writer unlinks the lock file while holding it; if that
                # happened while we waited, our lock is on an orphan inode: start over.
                held = os.fstat(fd)
                try:
                    current = os.stat(lock_path)
                except FileNotFoundError:
                    current = None
            except BaseException:
                os.close(fd)
                raise
            if current is not None and (current.st_dev, current.st_ino) == (held.st_dev, held.st_ino):
                break
            os.close(fd)
        try:
            yield
            if remove_after and fcntl is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(lock_path)
        finally:
            os.close(fd)
