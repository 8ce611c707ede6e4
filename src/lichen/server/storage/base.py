"""Where a Lichen server keeps its state: the contract every backend implements.

A server is stateless apart from its :class:`Storage`; replicas over one storage share
projects, indexes and job records. Per project and index the storage holds:

- immutable *artifact objects*, the uploaded bytes unchanged, one per version;
- a small *head* record (:class:`IndexHead`) naming the current artifact object, its
  version, ETag, content digest and summary. Publishing a version is writing a new head, atomically and
  only if the head is still the one the writer read (file lock + rename on the file
  system, a conditional ``PutObject`` on S3), so a reader sees the old version or the
  new one, never a mix, and concurrent writers are serialised or refused.

- *change records*, one per version a server-side write (documents added or deleted)
  made, keyed by that version and its content digest: the rows it added or replaced and
  the ids it removed, from which any replica answers "what changed since version V"
  (:mod:`lichen.server.changes`); a few dozen are kept per index, older ones pruned.

Uploads are spooled to a local temporary file first (:class:`Upload`), verified, and only
then published; an upload interrupted at any point never touches the head. A server
killed mid-upload leaves its spool file behind; the next start removes it
(:func:`sweep_spool`), while the uploads of live servers sharing the directory stay.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import tempfile
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import orjson
import xxhash

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

from ..._errors import ConflictError
from ..._util import storage_key, utc_now
from ...format.artifact import ArtifactManifest

__all__ = [
    "IndexHead",
    "IndexConflict",
    "Upload",
    "StoredArtifact",
    "Storage",
    "storage_key",
    "utc_now",
    "next_head",
    "sweep_spool",
    "head_for",
    "content_digest",
]

DOWNLOAD_CHUNK = 1 << 20
_SPOOL_PREFIX = ".upload-"
_STALE_SPOOL_S = 6 * 3600

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexHead:
    """The current version of one index: what ``list`` and ``get_info`` answer from, and
    which artifact object ``GET .../artifact`` streams. ``object`` is backend-specific
    (a file name, an object key)."""

    name: str
    version: int
    object: str
    etag: str
    size: int
    doc_count: int
    model_id: str
    dimension: int
    created_at: str
    updated_at: str
    job_id: str
    content: str = ""
    """:func:`content_digest` of the artifact (empty in heads older servers wrote)."""

    def to_json(self) -> bytes:
        return orjson.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, data: bytes) -> IndexHead:
        raw = orjson.loads(data)
        # Fields with a default were added later: heads written before them still read.
        fields = dataclasses.fields(cls)
        return cls(**{f.name: raw[f.name] for f in fields if f.name in raw or f.default is dataclasses.MISSING})


_CONTENT_SECTIONS = ("ids", "texts", "metadata", "matrix")


def content_digest(manifest: ArtifactManifest) -> str:
    """A digest of the index's documents (model, dimension, and the checksums of the ids,
    texts, metadata and matrix sections), not of its graph: two artifacts with the same
    digest hold the same documents in the same order, whatever graph they carry, so a
    compaction (a new graph, :mod:`lichen.server.compaction`) keeps it while the ETag
    changes. A delta applies to a client's copy only if the copy's digest is the one the
    delta starts from."""
    parts = [manifest.model_id, str(manifest.dimension)]
    parts += [manifest.sections[key].checksum if key in manifest.sections else "" for key in _CONTENT_SECTIONS]
    return xxhash.xxh3_128_hexdigest("\x1f".join(parts).encode("utf-8"))


class IndexConflict(ConflictError):
    """A conditional write found another version than it expected; carries the current
    head (``None`` if the index does not exist) for the error response."""

    def __init__(self, message: str, current: IndexHead | None) -> None:
        super().__init__(message)
        self.current = current


def next_head(
    current: IndexHead | None,
    name: str,
    manifest: ArtifactManifest,
    object_name: str,
    *,
    expected_version: int | None,
    job_id: str,
) -> IndexHead:
    """The head that publishing ``manifest`` over ``current`` produces, or
    :class:`IndexConflict` if ``expected_version`` (0: must not exist) is stale."""
    stored_version = current.version if current is not None else 0
    if expected_version is not None and expected_version != stored_version:
        if current is None:
            message = f"index {name!r} does not exist (expected version {expected_version})"
        elif expected_version == 0:
            message = f"index {name!r} already exists (version {stored_version})"
        else:
            message = f"index {name!r} is at version {stored_version}, expected {expected_version}"
        raise IndexConflict(message, current)
    now = utc_now()
    return IndexHead(
        name=name,
        version=stored_version + 1,
        object=object_name,
        etag=manifest.etag,
        size=manifest.size,
        doc_count=manifest.doc_count,
        model_id=manifest.model_id,
        dimension=manifest.dimension,
        created_at=current.created_at if current is not None else now,
        updated_at=now,
        job_id=job_id,
        content=content_digest(manifest),
    )


def head_for(
    current: IndexHead | None,
    name: str,
    manifest: ArtifactManifest,
    object_name: str,
    *,
    expected_version: int | None,
    job_id: str,
    replacing: IndexHead | None = None,
) -> IndexHead:
    """What publishing produces: :func:`next_head`, or with ``replacing`` (a compaction:
    the same documents with a new graph) the head ``replacing`` was, naming the new
    artifact under the same version, and only while ``replacing`` is still current (same
    version and ETag): a compaction never overwrites a newer version, and clients holding
    that version can still write to it."""
    if replacing is None:
        return next_head(current, name, manifest, object_name, expected_version=expected_version, job_id=job_id)
    if current is None or current.version != replacing.version or current.etag != replacing.etag:
        now = "deleted" if current is None else f"at version {current.version}"
        raise IndexConflict(f"index {name!r} changed (now {now}) since version {replacing.version} was read", current)
    return dataclasses.replace(
        current, object=object_name, etag=manifest.etag, size=manifest.size, content=content_digest(manifest)
    )


class Upload:
    """A request body spooled to a local temporary file before it is verified and
    published. ``discard`` removes the file unless a backend has taken it over.

    The file stays open, and ``flock``'ed, until ``discard``: a live upload is one whose
    lock is held, so :func:`sweep_spool` can tell the files of a crashed server (the
    kernel dropped its locks) from those of a live one sharing the directory.
    """

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        while True:
            fd, name = tempfile.mkstemp(prefix=_SPOOL_PREFIX, suffix=".tmp", dir=directory)
            if _lock_spool_file(fd, name):
                break
        self.path = Path(name)
        self.file: BinaryIO = open(fd, "wb")  # noqa: SIM115 - closed by discard
        self.size = 0
        self._finished = False

    def write(self, chunk: bytes) -> None:
        self.file.write(chunk)
        self.size += len(chunk)

    def finish(self) -> None:
        """Make the bytes durable before anything refers to them."""
        if not self._finished:
            self.file.flush()
            os.fsync(self.file.fileno())
            self._finished = True

    def discard(self) -> None:
        """Remove the file (if no backend moved it into storage) and release it."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        if not self.file.closed:
            self.file.close()  # drops the lock, after the unlink: never a stray to sweep


def _lock_spool_file(fd: int, name: str) -> bool:
    """Lock a new spool file; ``False`` (file closed) if a sweep removed it between its
    creation and the lock, so the caller creates another."""
    if fcntl is None:  # pragma: no cover - Windows: sweep_spool goes by age
        return True
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        if os.stat(name).st_ino == os.fstat(fd).st_ino:
            return True
    except FileNotFoundError:
        pass
    os.close(fd)
    return False


def sweep_spool(directory: Path) -> int:
    """Remove the spool files no live process owns, i.e. whose lock nobody holds (their
    writer was killed mid-upload): run at server start. Returns how many were removed.
    Without ``flock`` (Windows) only files older than six hours go."""
    removed = 0
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if not entry.name.startswith(_SPOOL_PREFIX):
            continue
        with contextlib.suppress(OSError):
            if fcntl is None:  # pragma: no cover - Windows
                if entry.stat().st_mtime < time.time() - _STALE_SPOOL_S:
                    os.unlink(entry.path)
                    removed += 1
                continue
            fd = os.open(entry.path, os.O_RDONLY)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live upload
                if os.stat(entry.path).st_ino == os.fstat(fd).st_ino:
                    os.unlink(entry.path)
                    removed += 1
            finally:
                os.close(fd)
    if removed:
        logger.info("removed %d abandoned upload spool files from %s", removed, directory)
    return removed


class StoredArtifact:
    """One stored artifact opened for reading, pinned to the head it was opened at (the
    bytes stay readable even if a newer version is published meanwhile)."""

    head: IndexHead
    size: int | None = None
    """Size of the stored object in bytes, if the backend knows it without reading."""

    def chunks(self, chunk_size: int = DOWNLOAD_CHUNK) -> Iterator[bytes]:
        raise NotImplementedError

    def seekable(self) -> BinaryIO:
        """A seekable binary file of the whole artifact (downloaded first if remote)."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> StoredArtifact:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Storage(ABC):
    """Projects, index heads, artifact objects and job records (see module docstring).
    All methods are blocking; the server calls them from worker threads."""

    spool_dir: Path
    on_commit: Callable[[str, str], None] | None = None
    """Called with ``(project_id, name)`` the moment a publish or delete of this process
    has moved an index's head, before the clean-up that follows it (removing a superseded
    artifact of gigabytes takes a while): the app wakes its long-polls on it."""

    def _committed(self, project_id: str, name: str) -> None:
        if self.on_commit is not None:
            try:
                self.on_commit(project_id, name)
            except Exception:  # noqa: BLE001 - waking long-polls early is a courtesy
                logger.warning("the commit hook failed for index %r", name, exc_info=True)

    @abstractmethod
    def describe(self) -> str: ...

    def describe_public(self) -> str:
        """What kind of storage this is, fit for an unauthenticated answer (``/readyz``):
        no path, no bucket."""
        return "storage"

    # ---- projects
    @abstractmethod
    def get_project(self, project_id: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def create_project(self, record: dict[str, Any]) -> bool:
        """Store a new project record; ``False`` if the id is taken."""

    # ---- indexes
    @abstractmethod
    def head(self, project_id: str, name: str) -> IndexHead | None: ...

    @abstractmethod
    def list_heads(self, project_id: str) -> list[IndexHead]: ...

    @abstractmethod
    def open_artifact(self, project_id: str, name: str) -> StoredArtifact:
        """Open the current artifact; ``NotFoundError`` if there is no index."""

    @abstractmethod
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
        """Make ``upload`` (verified, described by ``manifest``) the current version,
        atomically; :class:`IndexConflict` if ``expected_version`` is stale. With
        ``replacing``, the upload takes the place of that head's artifact under the same
        version, if it is still current (see :func:`head_for`)."""

    @abstractmethod
    def delete(self, project_id: str, name: str, *, expected_version: int | None = None) -> bool: ...

    # ---- change records (see lichen.server.changes)
    @abstractmethod
    def put_change(self, project_id: str, name: str, version: int, content: str, data: bytes) -> None:
        """Store the change record that made ``version`` (with content digest ``content``)."""

    @abstractmethod
    def get_change(self, project_id: str, name: str, version: int, content: str) -> bytes | None:
        """The change record stored for ``(version, content)``, or ``None``."""

    @abstractmethod
    def delete_change(self, project_id: str, name: str, version: int, content: str) -> None: ...

    @abstractmethod
    def prune_changes(self, project_id: str, name: str, below_version: int) -> int:
        """Remove the index's change records for versions below ``below_version``;
        returns how many went."""

    # ---- watching
    def head_token(self, project_id: str, name: str) -> str | None:
        """Something that changes whenever the index's head is rewritten, as cheap to get
        as the backend allows (a long-poll asks for it every fraction of a second);
        ``None`` when there is no index. By default the head's ETag and version."""
        head = self.head(project_id, name)
        return None if head is None else f"{head.version}:{head.etag}"

    def check_ready(self) -> None:
        """Raise if the storage cannot be reached (``GET /readyz``); by default, list the
        projects' directory or prefix once."""
        self.get_project("readiness-probe")

    # ---- jobs
    @abstractmethod
    def put_job(self, project_id: str, record: dict[str, Any]) -> None: ...

    @abstractmethod
    def get_job(self, project_id: str, job_id: str) -> dict[str, Any] | None: ...

    def new_upload(self) -> Upload:
        return Upload(self.spool_dir)

    @staticmethod
    def new_object_name() -> str:
        """Artifact objects are never overwritten: each gets a fresh, time-ordered name."""
        return f"{time.time_ns():020d}-{uuid.uuid4().hex}.lix"
