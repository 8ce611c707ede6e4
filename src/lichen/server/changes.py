"""What changed in an index since a version: the records a server keeps so that clients
refresh a loaded index by delta instead of downloading it whole.

A client that loaded version *V* of a 1M-document index (a ~700 MB to 2.6 GB artifact)
needs only the rows added or replaced since, and the ids removed, to reach the current
version. Server-side writes (:mod:`lichen.server.rewrite`'s merges and deletes) know
exactly that, so each one stores a **change record** before it publishes: a small
artifact (the format of :mod:`lichen.format.artifact`, every section checksummed) holding
the rows it replaced in place and the rows it appended, in order, with their vectors,
and in its manifest's ``extra`` the ids it deleted, the version it made and the content
digests (:func:`~lichen.server.storage.content_digest`) it went from and to.

Records live in the storage, keyed by version and content digest, so the server stays
stateless and every replica over one bucket answers the same:
``GET /v1/indexes/{name}/changes?since=V&content=C`` walks back from the head (its
version and digest name the newest record, whose base digest names the one before, and
so on down to *V*, which must be the client's digest *C*), composes the records in order
and answers one changes body: the ids to delete, then the documents to upsert. Applied
to the client's copy (delete, then upsert: replaced rows stay in place, new ones are
appended) that gives exactly the documents, in the order, of the current version.

Keying by content as well as version means a record a writer left behind after losing a
race to another replica (it writes its record before publishing, so that the record is
there the moment the head moves) never takes the place of the winner's, and a chain that
does not join up (a push replaced the index, a record was pruned or lost, the client's
copy is of another incarnation of the name) is refused with 410: the client downloads
the artifact, as before. So is a delta bigger than :attr:`ChangePolicy.max_fraction` of
the index. A push records nothing (it replaces everything); a compaction keeps the
version and the digest (same documents, new graph), so it needs no record: the client's
copy stays valid and its graph keeps serving.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .._errors import CorruptDataError, LichenError
from ..format.artifact import ArtifactManifest, encode_artifact, read_artifact
from ..format.snapshot import IndexSnapshot
from ..protocol import CHANGES_EXTRA_KEY, ChangesModel
from .rewrite import RowChanges
from .storage import IndexHead, Storage, content_digest

__all__ = ["ChangePolicy", "ChangeLog", "ChangesGone", "compose"]

logger = logging.getLogger(__name__)

_RECORD_KEY = "lichen_change"


class ChangesGone(LichenError):
    """No delta leads from the client's version to the current one (HTTP 410): the client
    downloads the artifact instead."""


@dataclass(frozen=True)
class ChangePolicy:
    """How many change records a server keeps, and how big a delta it serves."""

    keep_versions: int = 64
    """Records kept per index (older versions pruned): a client more than this many
    versions behind downloads the artifact. 0 records nothing (no deltas)."""
    max_fraction: float = 0.25
    """A delta touching more than this share of the index's documents (or a record of one
    write touching more) is refused: past it, a whole download is about as cheap."""
    min_rows: int = 64
    """...but a delta of up to this many rows is always served (small indexes)."""
    max_record_bytes: int = 64 << 20
    """A write whose record would be bigger is not recorded (clients download instead)."""
    prune_every: int = 8
    """Prune old records once every this many versions (one listing of the records)."""

    def row_budget(self, doc_count: int) -> int:
        return max(self.min_rows, int(self.max_fraction * doc_count))


@dataclass
class _Record:
    """One decoded change record."""

    base_version: int
    version: int
    base_content: str
    content: str
    deleted: list[str]
    updated: int
    snapshot: IndexSnapshot


def _rows_snapshot(name: str, model_id: str, dimension: int, rows: Sequence[tuple[str, IndexSnapshot, int]]) -> IndexSnapshot:
    matrix = np.empty((len(rows), dimension), dtype=np.float32)
    for i, (_, batch, j) in enumerate(rows):
        matrix[i] = batch.matrix[j]
    return IndexSnapshot(
        name=name, model_id=model_id, dimension=dimension,
        ids=[doc_id for doc_id, _, _ in rows],
        texts=[batch.texts[j] for _, batch, j in rows],
        metadata=[batch.metadata[j] for _, batch, j in rows],
        matrix=matrix,
    )


def _decode(data: bytes, label: str) -> _Record:
    snapshot = read_artifact(data, verify=True)
    raw = snapshot.extra.get(_RECORD_KEY)
    try:
        return _Record(
            base_version=int(raw["base_version"]), version=int(raw["version"]), base_content=str(raw["base_content"]),
            content=str(raw["content"]), deleted=[str(i) for i in raw["deleted"]], updated=int(raw["updated"]),
            snapshot=snapshot,
        )
    except (TypeError, KeyError, ValueError):
        raise CorruptDataError(f"change record {label} is not one") from None


def compose(records: Sequence[_Record], name: str, model_id: str, dimension: int, since: int, version: int) -> IndexSnapshot:
    """The records (oldest first) as one delta from version ``since``: the ids to delete
    (documents of ``since`` that were deleted at some point, even if added again), then the
    documents to upsert: those of ``since`` replaced in place (latest values), then those
    appended since, in the order the current version holds them."""
    removed: dict[str, None] = {}
    replaced: dict[str, tuple[IndexSnapshot, int]] = {}
    appended: dict[str, tuple[IndexSnapshot, int]] = {}
    for record in records:
        for doc_id in record.deleted:
            if doc_id in appended:
                del appended[doc_id]
            else:
                replaced.pop(doc_id, None)
                removed[doc_id] = None
        for row, doc_id in enumerate(record.snapshot.ids):
            value = (record.snapshot, row)
            if row < record.updated and doc_id not in appended:
                replaced[doc_id] = value  # a document of ``since``, replaced in place
            else:
                appended[doc_id] = value  # in place if appended earlier, else at the end
    rows = [(doc_id, *value) for doc_id, value in replaced.items()]
    rows += [(doc_id, *value) for doc_id, value in appended.items()]
    delta = _rows_snapshot(name, model_id, dimension, rows)
    delta.version = version
    delta.extra = {
        CHANGES_EXTRA_KEY: ChangesModel(since=since, version=version, deleted=list(removed), updated=len(replaced)).model_dump()
    }
    return delta


class ChangeLog:
    """Writes a change record for each server-side write and answers "what changed since
    version V" from them (see the module docstring)."""

    def __init__(self, storage: Storage, policy: ChangePolicy | None = None) -> None:
        self.storage = storage
        self.policy = policy or ChangePolicy()

    # ---- writing
    def record(
        self, project_id: str, name: str, changes: RowChanges | None, base: IndexHead, manifest: ArtifactManifest
    ) -> tuple[int, str] | None:
        """Store the record of the write from ``base`` to the artifact ``manifest``
        describes (version ``base.version + 1``), before it is published; returns its key
        for :meth:`discard` (``None``: nothing recorded: not a delta, too big, no digest)."""
        policy = self.policy
        if changes is None or not policy.keep_versions or not base.content:
            return None
        if changes.rows > policy.row_budget(manifest.doc_count):
            return None
        rows = [*changes.updated, *changes.appended]
        snapshot = _rows_snapshot(name, manifest.model_id, manifest.dimension, rows)
        version, content = base.version + 1, content_digest(manifest)
        snapshot.version = version
        snapshot.extra = {
            _RECORD_KEY: {
                "base_version": base.version, "version": version, "base_content": base.content, "content": content,
                "deleted": list(changes.deleted), "updated": len(changes.updated),
            }
        }
        data = encode_artifact(snapshot).to_bytes()
        if len(data) > policy.max_record_bytes:
            return None
        try:
            self.storage.put_change(project_id, name, version, content, data)
        except Exception:  # noqa: BLE001 - without its record, the write still applies; readers download
            logger.warning("could not store the change record of index %r version %d", name, version, exc_info=True)
            return None
        return version, content

    def discard(self, project_id: str, name: str, key: tuple[int, str] | None) -> None:
        """Remove a record whose write was not published (it lost a race)."""
        if key is None:
            return
        try:
            self.storage.delete_change(project_id, name, *key)
        except Exception:  # noqa: BLE001 - an orphan record is never on a chain: harmless
            logger.warning("could not remove an unpublished change record of index %r", name, exc_info=True)

    def published(self, project_id: str, name: str, version: int) -> None:
        """After publishing ``version``: now and then, prune the records too old to keep."""
        policy = self.policy
        if version % max(1, policy.prune_every) or version <= policy.keep_versions:
            return
        try:
            self.storage.prune_changes(project_id, name, below_version=version - policy.keep_versions + 1)
        except Exception:  # noqa: BLE001 - pruning is housekeeping
            logger.warning("could not prune the change records of index %r", name, exc_info=True)

    # ---- reading
    def since(self, project_id: str, name: str, head: IndexHead, since: int, content: str) -> IndexSnapshot:
        """The delta from the client's copy (version ``since``, digest ``content``) to
        ``head``; :class:`ChangesGone` saying why when there is none to give."""
        if not head.content:
            raise ChangesGone(f"index {name!r} was last written by a server that keeps no change records")
        if since > head.version:
            raise ChangesGone(f"index {name!r} is at version {head.version}, before {since}: it was replaced")
        behind = head.version - since
        if behind > self.policy.keep_versions:
            raise ChangesGone(
                f"index {name!r} is {behind} versions past {since}; changes are kept for {self.policy.keep_versions}"
            )
        budget = self.policy.row_budget(head.doc_count)
        records: list[_Record] = []
        version, digest, rows = head.version, head.content, 0
        while version > since:
            data = self.storage.get_change(project_id, name, version, digest)
            if data is None:
                raise ChangesGone(
                    f"no change record leads to version {version} of index {name!r} (replaced by a push, or pruned)"
                )
            try:
                record = _decode(data, f"{version} of index {name!r}")
            except CorruptDataError as exc:
                logger.warning("%s", exc)  # a record only spares a download: serve the artifact instead
                raise ChangesGone(f"the change record of version {version} of index {name!r} is damaged") from None
            if record.version != version or record.base_version != version - 1:
                raise ChangesGone(f"the change record of version {version} of index {name!r} does not chain")
            rows += len(record.deleted) + record.snapshot.doc_count
            if rows > budget:
                raise ChangesGone(f"more than {budget} documents of index {name!r} changed since version {since}")
            records.append(record)
            version, digest = record.base_version, record.base_content
        if digest != content:
            raise ChangesGone(f"the copy of version {since} does not hold the documents index {name!r} had then")
        records.reverse()
        dimension = records[-1].snapshot.dimension if records else head.dimension
        return compose(records, name, head.model_id, head.dimension or dimension, since, head.version)

    @staticmethod
    def body(delta: IndexSnapshot) -> bytes:
        return encode_artifact(delta).to_bytes()

