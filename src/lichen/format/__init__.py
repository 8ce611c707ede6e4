"""Everything that defines the bytes of an index on disk and on the wire: the
:class:`IndexSnapshot` they hold, the versioned, checksummed artifact (:mod:`.artifact`),
its memory-mapped file access and encoded columns, the graph section's proven layout and
the graph edits a server defers, and the content checks a server runs before publishing."""

from .artifact import (
    FILE_SUFFIX,
    FORMAT_VERSION,
    MAGIC,
    MEDIA_TYPE,
    ArtifactManifest,
    EncodedArtifact,
    encode_artifact,
    read_artifact,
    read_artifact_file,
    read_manifest,
    verify_artifact,
    write_artifact,
    write_artifact_file,
)
from .checks import check_snapshot
from .snapshot import IndexSnapshot

__all__ = [
    "FILE_SUFFIX",
    "FORMAT_VERSION",
    "MAGIC",
    "MEDIA_TYPE",
    "ArtifactManifest",
    "EncodedArtifact",
    "IndexSnapshot",
    "check_snapshot",
    "encode_artifact",
    "read_artifact",
    "read_artifact_file",
    "read_manifest",
    "verify_artifact",
    "write_artifact",
    "write_artifact_file",
]
