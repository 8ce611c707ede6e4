"""Where a server keeps projects, indexes and job records: the :class:`Storage` contract
(:mod:`.base`) and its backends, the file system (:mod:`.fs`) and S3 (:mod:`.s3`, which
needs boto3 and is imported only when asked for)."""

from __future__ import annotations

import os

from ..._errors import InvalidArgumentError
from .base import (
    DOWNLOAD_CHUNK,
    IndexConflict,
    IndexHead,
    Storage,
    StoredArtifact,
    Upload,
    content_digest,
    head_for,
    next_head,
    storage_key,
    sweep_spool,
    utc_now,
)

__all__ = [
    "DOWNLOAD_CHUNK",
    "IndexConflict",
    "IndexHead",
    "Storage",
    "StoredArtifact",
    "Upload",
    "content_digest",
    "head_for",
    "next_head",
    "open_storage",
    "storage_key",
    "sweep_spool",
    "utc_now",
]


def open_storage(
    data_dir: str | os.PathLike[str] | None,
    storage_url: str | None = None,
    *,
    s3_endpoint_url: str | None = None,
) -> Storage:
    """``--data DIR`` alone: the file-system backend in DIR. ``--storage s3://bucket/prefix``:
    the S3 backend (DIR, if given, holds only temporary upload spools)."""
    if storage_url:
        if storage_url.startswith("s3://"):
            from .s3 import S3Storage

            bucket, _, prefix = storage_url[len("s3://") :].partition("/")
            if not bucket:
                raise InvalidArgumentError(f"storage URL {storage_url!r} names no bucket")
            return S3Storage(bucket, prefix, endpoint_url=s3_endpoint_url, spool_dir=data_dir)
        if storage_url.startswith("file://"):
            from .fs import FileStorage

            return FileStorage(storage_url[len("file://") :])
        raise InvalidArgumentError(f"unsupported storage URL {storage_url!r}: use s3://bucket/prefix or file://DIR")
    if data_dir is None:
        raise InvalidArgumentError("give --data DIR (file system) or --storage s3://bucket/prefix")
    from .fs import FileStorage

    return FileStorage(data_dir)
