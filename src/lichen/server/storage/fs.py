"""The file-system storage backend (``lichen serve --data DIR``), the default.

Layout under ``DIR``::

    projects/<project_id>.json                  project record (hashed key)
    indexes/<project_id>/<key>/head.json        current version of one index
    indexes/<project_id>/<key>/<object>.lix     artifact objects (the current one, plus
                                                at most a stray left by a crash)
    jobs/<project_id>/<job_id>.json             job records
    changes/<project_id>/<key>/<version>-<content>.chg
                                                change records (lichen.server.changes)
    locks/<project_id>/<key>.lock               flock'ed while publishing or deleting
    tmp/.upload-*.tmp                           request bodies being received

Publishing holds the index's ``flock`` (which serialises threads and processes alike),
renames the verified upload into place (same file system: no copy), then replaces
``head.json`` with ``os.replace`` after an fsync. A crash before that rename leaves the
old head, and so the old version, in force. Readers open the artifact named by the head;
an open file stays readable after a newer version replaces it (POSIX unlink semantics),
and a reader that loses the race between reading the head and opening the file simply
re-reads the head.

Replicas on one host may share ``DIR``; for several hosts use the S3 backend (``flock``
over network file systems is not dependable). Without ``flock`` (Windows) writes are
serialised within one server process only: run one process per ``DIR`` there.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from ..._errors import ConflictError, NotFoundError
from ...format.artifact import ArtifactManifest, fsync_dir
from ...protocol import PROJECT_ID_PATTERN
from .base import (
    DOWNLOAD_CHUNK,
    IndexConflict,
    IndexHead,
    Storage,
    StoredArtifact,
    Upload,
    head_for,
    storage_key,
    sweep_spool,
)

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["FileStorage"]

logger = logging.getLogger(__name__)

_HEAD = "head.json"
_CHANGES = "changes"
_CHANGE_SUFFIX = ".chg"
_OPEN_ATTEMPTS = 8


def _check_project(project_id: str) -> str:
    if not PROJECT_ID_PATTERN.match(project_id):
        raise NotFoundError(f"unknown project {project_id!r}")
    return project_id


def _write_atomic(path: Path, data: bytes, *, durable: bool = True) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        if durable:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)
    if durable:
        fsync_dir(path.parent)


class _FileArtifact(StoredArtifact):
    def __init__(self, head: IndexHead, fileobj: BinaryIO) -> None:
        self.head = head
        self._f = fileobj
        self.size = os.fstat(fileobj.fileno()).st_size

    def chunks(self, chunk_size: int = DOWNLOAD_CHUNK) -> Iterator[bytes]:
        self._f.seek(0)
        while True:
            data = self._f.read(chunk_size)
            if not data:
                return
            yield data

    def seekable(self) -> BinaryIO:
        self._f.seek(0)
        return self._f

    def close(self) -> None:
        self._f.close()


class FileStorage(Storage):
    """Projects, indexes and jobs as files under one directory (see module docstring)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()
        self.spool_dir = self.root / "tmp"
        for sub in ("projects", "indexes", "jobs", "locks", "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        sweep_spool(self.spool_dir)

    def describe_public(self) -> str:
        return "file system"

    def describe(self) -> str:
        return f"file system at {self.root}"

    def __repr__(self) -> str:
        return f"FileStorage({str(self.root)!r})"

    # ---- paths
    def _index_dir(self, project_id: str, name: str) -> Path:
        return self.root / "indexes" / _check_project(project_id) / storage_key(name)

    def _lock_path(self, project_id: str, name: str) -> Path:
        return self.root / "locks" / _check_project(project_id) / f"{storage_key(name)}.lock"

    # ---- projects
    def get_project(self, project_id: str) -> dict[str, Any] | None:
        try:
            return orjson.loads((self.root / "projects" / f"{_check_project(project_id)}.json").read_bytes())
        except (FileNotFoundError, NotFoundError):
            return None

    def create_project(self, record: dict[str, Any]) -> bool:
        path = self.root / "projects" / f"{_check_project(record['project_id'])}.json"
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(orjson.dumps(record))
        try:
            os.link(tmp, path)  # atomic create-if-absent
        except FileExistsError:
            return False
        finally:
            tmp.unlink()
        fsync_dir(path.parent)
        return True

    # ---- indexes
    @staticmethod
    def _read_head(directory: Path) -> IndexHead | None:
        try:
            return IndexHead.from_json((directory / _HEAD).read_bytes())
        except FileNotFoundError:
            return None

    def head(self, project_id: str, name: str) -> IndexHead | None:
        return self._read_head(self._index_dir(project_id, name))

    def list_heads(self, project_id: str) -> list[IndexHead]:
        base = self.root / "indexes" / _check_project(project_id)
        try:
            entries = list(os.scandir(base))
        except FileNotFoundError:
            return []
        heads = [h for h in (self._read_head(Path(e.path)) for e in entries if e.is_dir()) if h is not None]
        return sorted(heads, key=lambda h: h.name)

    def open_artifact(self, project_id: str, name: str) -> StoredArtifact:
        directory = self._index_dir(project_id, name)
        for _ in range(_OPEN_ATTEMPTS):
            head = self._read_head(directory)
            if head is None:
                raise NotFoundError(f"index {name!r} not found")
            try:
                return _FileArtifact(head, open(directory / head.object, "rb"))  # noqa: SIM115
            except FileNotFoundError:
                continue  # replaced between reading the head and opening: read it again
        raise ConflictError(f"index {name!r} changed too often while being opened; retry")

    def publish(
        self,
        project_id: str,
        name: str,
        upload: Upload,
        manifest: ArtifactManifest,
        *,
        expected_version: int | None,
        job_id: str,
        replacing: IndexHead | None = None,
    ) -> IndexHead:
        directory = self._index_dir(project_id, name)
        upload.finish()
        with self._locked(project_id, name):
            # Created under the lock: a delete removes the directory under the same lock.
            directory.mkdir(parents=True, exist_ok=True)
            current = self._read_head(directory)
            head = head_for(
                current, name, manifest, self.new_object_name(), expected_version=expected_version, job_id=job_id,
                replacing=replacing,
            )
            os.replace(upload.path, directory / head.object)
            _write_atomic(directory / _HEAD, head.to_json())  # the commit point
            self._committed(project_id, name)
            self._remove_unreferenced(directory, keep=head.object)
        return head

    def delete(self, project_id: str, name: str, *, expected_version: int | None = None) -> bool:
        directory = self._index_dir(project_id, name)
        if not directory.exists():
            return False
        with self._locked(project_id, name):
            current = self._read_head(directory)
            if current is None:
                return False
            if expected_version is not None and expected_version != current.version:
                raise IndexConflict(
                    f"index {name!r} is at version {current.version}, expected {expected_version}", current
                )
            os.unlink(directory / _HEAD)  # the commit point
            fsync_dir(directory)
            self._committed(project_id, name)
            self._remove_unreferenced(directory, keep=None)
            shutil.rmtree(self._changes_dir(project_id, name), ignore_errors=True)
            with contextlib.suppress(OSError):
                directory.rmdir()
        return True

    # ---- change records
    def _changes_dir(self, project_id: str, name: str) -> Path:
        return self.root / _CHANGES / _check_project(project_id) / storage_key(name)

    def _change_path(self, project_id: str, name: str, version: int, content: str) -> Path:
        return self._changes_dir(project_id, name) / f"{int(version):020d}-{content}{_CHANGE_SUFFIX}"

    def put_change(self, project_id: str, name: str, version: int, content: str, data: bytes) -> None:
        path = self._change_path(project_id, name, version, content)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Not fsynced: a record lost in a crash only costs its readers a whole download.
        _write_atomic(path, data, durable=False)

    def get_change(self, project_id: str, name: str, version: int, content: str) -> bytes | None:
        try:
            return self._change_path(project_id, name, version, content).read_bytes()
        except FileNotFoundError:
            return None

    def delete_change(self, project_id: str, name: str, version: int, content: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._change_path(project_id, name, version, content))

    def prune_changes(self, project_id: str, name: str, below_version: int) -> int:
        removed = 0
        try:
            entries = list(os.scandir(self._changes_dir(project_id, name)))
        except FileNotFoundError:
            return 0
        for entry in entries:
            stem = entry.name.split("-", 1)[0]
            if entry.name.endswith(_CHANGE_SUFFIX) and stem.isdigit() and int(stem) < below_version:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed += 1
        return removed

    # ---- watching
    def head_token(self, project_id: str, name: str) -> str | None:
        """The head file's identity: every publish replaces it (a new inode), so one
        ``stat`` tells a long-poll whether to read it."""
        try:
            st = os.stat(self._index_dir(project_id, name) / _HEAD)
        except FileNotFoundError:
            return None
        return f"{st.st_ino}:{st.st_mtime_ns}:{st.st_size}"

    def check_ready(self) -> None:
        for sub in ("projects", "indexes"):
            if not os.access(self.root / sub, os.R_OK | os.W_OK | os.X_OK):
                raise OSError(f"{sub}/ is not readable and writable")

    # ---- jobs
    def put_job(self, project_id: str, record: dict[str, Any]) -> None:
        directory = self.root / "jobs" / _check_project(project_id)
        directory.mkdir(parents=True, exist_ok=True)
        _write_atomic(directory / f"{record['job_id']}.json", orjson.dumps(record), durable=False)

    def get_job(self, project_id: str, job_id: str) -> dict[str, Any] | None:
        if not PROJECT_ID_PATTERN.match(job_id):
            return None
        try:
            return orjson.loads((self.root / "jobs" / _check_project(project_id) / f"{job_id}.json").read_bytes())
        except (FileNotFoundError, NotFoundError):
            return None

    # ---- internals
    @staticmethod
    def _remove_unreferenced(directory: Path, keep: str | None) -> None:
        """Remove superseded artifacts (and strays of crashed publishers). Only called
        under the index lock, after the head stopped naming them."""
        for entry in os.scandir(directory):
            if entry.name.endswith(".lix") and entry.name != keep:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)

    @contextlib.contextmanager
    def _locked(self, project_id: str, name: str) -> Iterator[None]:
        path = self._lock_path(project_id, name)
        if fcntl is None:  # pragma: no cover - Windows: one server process per DIR
            with _thread_lock(str(path)):
                yield
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # per open file: serialises threads and processes
            yield
        finally:
            os.close(fd)  # releases the flock


_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


def _thread_lock(key: str) -> threading.Lock:
    with _thread_locks_guard:
        return _thread_locks.setdefault(key, threading.Lock())
