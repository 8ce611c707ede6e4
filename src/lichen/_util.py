"""Small helpers shared by the engine, the stores and the server (one copy each)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import xxhash

__all__ = ["utc_now", "copy_metadata", "storage_key"]

_SLUG_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_LEAF_TYPES = frozenset({str, int, float, bool, type(None)})


def utc_now() -> str:
    """ISO 8601 UTC with a ``Z``: the timestamp format of every stored index."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def copy_metadata(row: Mapping[str, Any]) -> dict[str, Any]:
    """A copy deep enough that callers mutating it cannot reach stored lists or nested
    dicts (nested mappings come back as plain dicts)."""
    if _LEAF_TYPES.issuperset(map(type, row.values())):
        return dict(row)  # flat metadata, the common case: one C-level copy per search hit
    return {
        key: (
            value if (kind := type(value)) in _LEAF_TYPES
            else value.copy() if kind is list
            else copy_metadata(value) if isinstance(value, Mapping)
            else value
        )
        for key, value in row.items()
    }


def storage_key(name: str) -> str:
    """A short, portable file or object name for an index name: an ASCII slug plus a hash
    of the exact spelling, so names differing only in case never collide."""
    slug = _SLUG_UNSAFE.sub("_", name)[:48].strip("_") or "index"
    return f"{slug}-{xxhash.xxh3_64_hexdigest(name.encode('utf-8'))}"
