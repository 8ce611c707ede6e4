"""The S3 storage backend (``lichen serve --storage s3://bucket/prefix``), via boto3.

Keys under ``prefix``::

    projects/<project_id>.json                  project record (hashed key)
    indexes/<project_id>/<key>/head.json        current version of one index
    indexes/<project_id>/<key>/<object>.lix     artifact objects, never overwritten
    jobs/<project_id>/<job_id>.json             job records
    changes/<project_id>/<key>/<version>-<content>.chg
                                                change records (lichen.server.changes)

Publishing uploads the verified artifact under a fresh key (invisible until referenced),
then swaps ``head.json`` with a *conditional* ``PutObject``: ``If-None-Match: *`` when the
index is new, ``If-Match: <ETag of the head we read>`` otherwise. S3 applies at most one
of several racing conditional writes, so replicas over one bucket never interleave
versions: the loser sees ``412 Precondition Failed`` and reports a conflict (or, for an
unconditional push, re-reads the head and tries again). Deletes are conditional the same
way. A replica or client dying mid-upload leaves at worst an unreferenced object, which
the next publish of that index removes once it is an hour old.

Credentials and region come from the usual AWS sources (environment, profile, instance
role); ``--s3-endpoint-url`` (or ``AWS_ENDPOINT_URL``) points at any S3-compatible server.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from ..._errors import ConflictError, InvalidArgumentError, NotFoundError
from ...format.artifact import ArtifactManifest
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

__all__ = ["S3Storage"]

logger = logging.getLogger(__name__)

_OPEN_ATTEMPTS = 8
_UNCONDITIONAL_ATTEMPTS = 8
_STRAY_AGE_S = 3600.0
_PRECONDITION_CODES = {"PreconditionFailed", "ConditionalRequestConflict", "412", "409"}
_MISSING_CODES = {"NoSuchKey", "404", "NotFound"}


def _check_project(project_id: str) -> str:
    if not PROJECT_ID_PATTERN.match(project_id):
        raise NotFoundError(f"unknown project {project_id!r}")
    return project_id


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


class _S3Artifact(StoredArtifact):
    def __init__(self, storage: S3Storage, head: IndexHead, key: str, body: Any, size: int | None) -> None:
        self.head = head
        self.size = size
        self._storage = storage
        self._key = key
        self._body = body
        self._spooled: BinaryIO | None = None

    def chunks(self, chunk_size: int = DOWNLOAD_CHUNK) -> Iterator[bytes]:
        yield from self._body.iter_chunks(chunk_size)

    def seekable(self) -> BinaryIO:
        if self._spooled is None:
            spooled = tempfile.TemporaryFile(dir=self._storage.spool_dir)  # noqa: SIM115 - closed in close()
            for chunk in self._body.iter_chunks(DOWNLOAD_CHUNK):
                spooled.write(chunk)
            self._spooled = spooled
        self._spooled.seek(0)
        return self._spooled

    def close(self) -> None:
        self._body.close()
        if self._spooled is not None:
            self._spooled.close()


class S3Storage(Storage):
    """Projects, indexes and jobs as objects in one bucket (see module docstring)."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        spool_dir: str | Path | None = None,
        client: Any = None,
    ) -> None:
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.client = client or boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            config=Config(retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=32),
        )
        try:
            self.client.head_bucket(Bucket=bucket)
        except Exception as exc:
            raise InvalidArgumentError(
                f"cannot use bucket {bucket!r}{' at ' + endpoint_url if endpoint_url else ''}: {exc}"
            ) from None
        self._transfer = TransferConfig(multipart_threshold=64 << 20, multipart_chunksize=16 << 20, max_concurrency=8)
        base = Path(spool_dir).expanduser() if spool_dir else Path(tempfile.gettempdir()) / "lichen-server"
        self.spool_dir = base / "tmp"
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        sweep_spool(self.spool_dir)
        # Conditional puts already make replicas safe; this only spares one process's
        # threads the pointless upload-then-412 round trip among themselves.
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def describe_public(self) -> str:
        return "s3"

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def __repr__(self) -> str:
        return f"S3Storage({self.describe()!r})"

    # ---- keys
    def _project_key(self, project_id: str) -> str:
        return f"{self.prefix}projects/{_check_project(project_id)}.json"

    def _index_prefix(self, project_id: str, name: str) -> str:
        return f"{self.prefix}indexes/{_check_project(project_id)}/{storage_key(name)}/"

    def _job_key(self, project_id: str, job_id: str) -> str:
        return f"{self.prefix}jobs/{_check_project(project_id)}/{job_id}.json"

    # ---- small objects
    def _get(self, key: str) -> tuple[bytes, str] | None:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
        except self.client.exceptions.NoSuchKey:
            return None
        except Exception as exc:
            if _code(exc) in _MISSING_CODES:
                return None
            raise
        with response["Body"] as body:
            return body.read(), response["ETag"]

    def _put(self, key: str, data: bytes, **conditions: str) -> bool:
        """Put ``data``; ``False`` if a condition (``IfMatch`` / ``IfNoneMatch``) failed."""
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=key, Body=data, ContentType="application/json", **conditions
            )
        except Exception as exc:
            # If-Match on a key deleted meanwhile answers 404 NoSuchKey rather than 412.
            if conditions and _code(exc) in _PRECONDITION_CODES | _MISSING_CODES:
                return False
            raise
        return True

    # ---- projects
    def get_project(self, project_id: str) -> dict[str, Any] | None:
        try:
            found = self._get(self._project_key(project_id))
        except NotFoundError:
            return None
        return orjson.loads(found[0]) if found else None

    def create_project(self, record: dict[str, Any]) -> bool:
        return self._put(self._project_key(record["project_id"]), orjson.dumps(record), IfNoneMatch="*")

    # ---- indexes
    def _head_and_etag(self, project_id: str, name: str) -> tuple[IndexHead | None, str | None]:
        found = self._get(self._index_prefix(project_id, name) + "head.json")
        if found is None:
            return None, None
        return IndexHead.from_json(found[0]), found[1]

    def head(self, project_id: str, name: str) -> IndexHead | None:
        return self._head_and_etag(project_id, name)[0]

    def list_heads(self, project_id: str) -> list[IndexHead]:
        base = f"{self.prefix}indexes/{_check_project(project_id)}/"
        heads: list[IndexHead] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=base, Delimiter="/"
        ):
            for common in page.get("CommonPrefixes", []):
                found = self._get(common["Prefix"] + "head.json")
                if found is not None:
                    heads.append(IndexHead.from_json(found[0]))
        return sorted(heads, key=lambda h: h.name)

    def open_artifact(self, project_id: str, name: str) -> StoredArtifact:
        prefix = self._index_prefix(project_id, name)
        for _ in range(_OPEN_ATTEMPTS):
            head = self.head(project_id, name)
            if head is None:
                raise NotFoundError(f"index {name!r} not found")
            key = prefix + head.object
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=key)
            except Exception as exc:
                if _code(exc) in _MISSING_CODES:
                    continue  # superseded and collected since we read the head
                raise
            return _S3Artifact(self, head, key, response["Body"], response.get("ContentLength"))
        raise ConflictError(f"index {name!r} changed too often while being opened; retry")

    def _lock(self, project_id: str, name: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault((project_id, name), threading.Lock())

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
        prefix = self._index_prefix(project_id, name)
        upload.finish()
        with self._lock(project_id, name):
            current, etag = self._head_and_etag(project_id, name)
            # Refuse a stale conditional write before paying for the upload.
            head = head_for(
                current, name, manifest, self.new_object_name(), expected_version=expected_version, job_id=job_id,
                replacing=replacing,
            )
            self.client.upload_file(
                str(upload.path), self.bucket, prefix + head.object, Config=self._transfer,
                ExtraArgs={"ContentType": "application/vnd.lichen.index"},
            )
            try:
                for _ in range(_UNCONDITIONAL_ATTEMPTS):
                    condition = {"IfMatch": etag} if current is not None else {"IfNoneMatch": "*"}
                    if self._put(prefix + "head.json", head.to_json(), **condition):  # the commit point
                        break
                    current, etag = self._head_and_etag(project_id, name)
                    # Another replica won the race: re-check against what it published.
                    head = head_for(
                        current, name, manifest, head.object, expected_version=expected_version, job_id=job_id,
                        replacing=replacing,
                    )
                else:
                    raise ConflictError(f"index {name!r} is being written by others; retry")
            except BaseException:
                self._delete_keys([prefix + head.object])
                raise
            self._committed(project_id, name)
            self._collect(prefix, keep=head.object, superseded=current.object if current else None)
        return head

    def delete(self, project_id: str, name: str, *, expected_version: int | None = None) -> bool:
        prefix = self._index_prefix(project_id, name)
        with self._lock(project_id, name):
            for _ in range(_UNCONDITIONAL_ATTEMPTS):
                current, etag = self._head_and_etag(project_id, name)
                if current is None:
                    return False
                if expected_version is not None and expected_version != current.version:
                    raise IndexConflict(
                        f"index {name!r} is at version {current.version}, expected {expected_version}", current
                    )
                try:
                    self.client.delete_object(Bucket=self.bucket, Key=prefix + "head.json", IfMatch=etag)
                    break
                except Exception as exc:
                    if _code(exc) in _PRECONDITION_CODES:
                        continue
                    if _code(exc) in _MISSING_CODES:
                        return False
                    raise
            else:
                raise ConflictError(f"index {name!r} is being written by others; retry")
            self._committed(project_id, name)
            # Young strays may be another replica's upload in flight: leave them to age.
            self._collect(prefix, keep=None, superseded=current.object)
            self.prune_changes(project_id, name, below_version=1 << 62)
        return True

    # ---- change records
    def _changes_prefix(self, project_id: str, name: str) -> str:
        return f"{self.prefix}changes/{_check_project(project_id)}/{storage_key(name)}/"

    def _change_key(self, project_id: str, name: str, version: int, content: str) -> str:
        return f"{self._changes_prefix(project_id, name)}{int(version):020d}-{content}.chg"

    def put_change(self, project_id: str, name: str, version: int, content: str, data: bytes) -> None:
        self.client.put_object(
            Bucket=self.bucket, Key=self._change_key(project_id, name, version, content), Body=data,
            ContentType="application/vnd.lichen.index",
        )

    def get_change(self, project_id: str, name: str, version: int, content: str) -> bytes | None:
        found = self._get(self._change_key(project_id, name, version, content))
        return None if found is None else found[0]

    def delete_change(self, project_id: str, name: str, version: int, content: str) -> None:
        self._delete_keys([self._change_key(project_id, name, version, content)])

    def prune_changes(self, project_id: str, name: str, below_version: int) -> int:
        prefix = self._changes_prefix(project_id, name)
        doomed = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                stem = obj["Key"][len(prefix) :].split("-", 1)[0]
                if stem.isdigit() and int(stem) < below_version:
                    doomed.append(obj["Key"])
        self._delete_keys(doomed)
        return len(doomed)

    # ---- watching
    def head_token(self, project_id: str, name: str) -> str | None:
        """The head object's ETag, from one ``HeadObject`` (no body): every publish
        writes a new head, so a long-poll asks only this until it moves."""
        try:
            response = self.client.head_object(Bucket=self.bucket, Key=self._index_prefix(project_id, name) + "head.json")
        except Exception as exc:
            if _code(exc) in _MISSING_CODES:
                return None
            raise
        return str(response["ETag"])

    def check_ready(self) -> None:
        self.client.head_bucket(Bucket=self.bucket)

    # ---- jobs
    def put_job(self, project_id: str, record: dict[str, Any]) -> None:
        self._put(self._job_key(project_id, record["job_id"]), orjson.dumps(record))

    def get_job(self, project_id: str, job_id: str) -> dict[str, Any] | None:
        if not PROJECT_ID_PATTERN.match(job_id):
            return None
        try:
            found = self._get(self._job_key(project_id, job_id))
        except NotFoundError:
            return None
        return orjson.loads(found[0]) if found else None

    # ---- internals
    def _delete_keys(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch = keys[start : start + 1000]
            if batch:
                try:
                    self.client.delete_objects(
                        Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
                    )
                except Exception:  # noqa: BLE001 - garbage collection is best effort
                    logger.warning("could not delete %d superseded objects", len(batch), exc_info=True)

    def _collect(self, prefix: str, *, keep: str | None, superseded: str | None) -> None:
        """Delete the artifact just superseded, and strays of crashed publishers once they
        are old enough not to be another replica's upload in flight."""
        cutoff = time.time() - _STRAY_AGE_S
        doomed: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                leaf = obj["Key"][len(prefix) :]
                if not leaf.endswith(".lix") or leaf == keep:
                    continue
                modified = obj["LastModified"]
                if isinstance(modified, datetime):
                    modified = modified.replace(tzinfo=modified.tzinfo or timezone.utc).timestamp()
                if leaf == superseded or modified < cutoff:
                    doomed.append(obj["Key"])
        self._delete_keys(doomed)

