"""How LangGraph items are laid out as Lichen documents, and read back.

One item is one *record* document plus one *vector* document per embedded text:

- the record's id encodes ``(namespace, key)``; its text is the item's value as JSON (the
  source of truth, returned by ``get`` and ``search``); its embedding is a placeholder
  (the first basis vector: Lichen refuses all-zero vectors), and record documents are
  never ranked; its metadata holds the namespace labels, the
  timestamps, how many vector documents the item has, and the value's filterable fields;
- vector document ``i`` of an item has the record's id plus ``#i``; its text is the text
  that was embedded (``index`` / ``fields`` paths); its metadata repeats the namespace
  labels and the filterable fields, so a semantic search is one filtered vector query.

Why namespaces are metadata and not one Lichen index each: namespaces are hierarchical
and numerous (one per user, per assistant), and ``search`` runs over a namespace
*prefix*. As one column per level (``lg:ns0``, ``lg:ns1``, ...), a prefix is an equality
filter per level that the engine evaluates as numpy masks, in the same pass as the value
filter and the similarity ranking.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np
import orjson
from langgraph.store.base import Item, SearchItem, get_text_at_path
from lichen import DocumentInfo, InvalidArgumentError

KIND = "lg:kind"
RECORD = "item"
VECTOR = "vector"
CREATED = "lg:created"
UPDATED = "lg:updated"
VECTOR_COUNT = "lg:vectors"
TTL = "lg:ttl"  # minutes, on records put with a TTL
EXPIRES = "lg:expires"  # seconds since the epoch, when the record's TTL runs out
# The one document that says what the store's vectors were built from: the index fields
# of the last write that used them, and the vector size. Not a JSON array, so never a
# record id (nor, without "#", a vector id).
CONFIG_ID = "lg:index-config"
CONFIG = "config"
FIELDS = "lg:fields"
DIMS = "lg:dims"
PATH = "lg:path"
NAMESPACE_FIELD = "lg:ns{}"
VALUE_FIELD = "v:{}"

# Datetimes and dataclasses are refused rather than silently turned into strings: a value
# must read back equal to what was put.
_JSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_INT64 = (-(2**63), 2**63 - 1)

TextPath = tuple[str, "str | list[str]"]  # (path as written, "$" or its tokens)


def record_id(namespace: Sequence[str], key: str) -> str:
    return orjson.dumps([list(namespace), key]).decode()


def parse_record_id(doc_id: str) -> tuple[tuple[str, ...], str]:
    namespace, key = orjson.loads(doc_id)
    return tuple(namespace), key


def vector_ids(record: str, count: int, start: int = 0) -> list[str]:
    # A record id is a JSON array (it ends in "]"), so "<record>#i" never names a record.
    return [f"{record}#{i}" for i in range(start, count)]


def record_of(vector_id: str) -> str:
    return vector_id.rsplit("#", 1)[0]


def namespace_fields(namespace: Sequence[str]) -> dict[str, str]:
    return {NAMESPACE_FIELD.format(level): label for level, label in enumerate(namespace)}


def namespace_clauses(prefix: Sequence[str]) -> list[dict[str, Any]]:
    return [{name: {"$eq": label}} for name, label in namespace_fields(prefix).items()]


def epoch() -> float:
    """Now, in seconds since the epoch: what TTL expiry times are measured in."""
    return time.time()


def expiry(ttl_minutes: float, now: float) -> dict[str, float]:
    """The metadata of a record whose TTL of ``ttl_minutes`` starts at ``now``."""
    return {TTL: float(ttl_minutes), EXPIRES: now + float(ttl_minutes) * 60.0}


def timestamp() -> str:
    """UTC, fixed width (always microseconds), so timestamps sort as strings."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def encode_value(value: Any, where: str) -> str:
    if not isinstance(value, Mapping):
        raise InvalidArgumentError(f"{where}: value must be a dict, got {type(value).__name__}")
    try:
        return orjson.dumps(dict(value), option=_JSON_OPTIONS).decode()
    except TypeError as exc:
        raise InvalidArgumentError(f"{where}: value is not JSON-serializable ({exc})") from exc


def _is_filterable(value: Any) -> bool:
    if value is None or isinstance(value, (str, bool)):
        return True
    if isinstance(value, int):
        return _INT64[0] <= value <= _INT64[1]
    if isinstance(value, float):
        return math.isfinite(value)
    return False


def value_fields(value: Mapping[str, Any]) -> dict[str, Any]:
    """The value's top-level fields that Lichen metadata can hold (scalars, ``None`` and
    lists of those), as ``v:<field>`` columns. Nested objects stay in the JSON only."""
    fields: dict[str, Any] = {}
    for name, field in value.items():
        if _is_filterable(field):
            fields[VALUE_FIELD.format(name)] = field
        elif isinstance(field, (list, tuple)) and all(_is_filterable(element) for element in field):
            fields[VALUE_FIELD.format(name)] = list(field)
    return fields


def texts_to_embed(value: Mapping[str, Any], paths: Sequence[TextPath]) -> list[tuple[str, str]]:
    """``(label, text)`` for each text the paths select, labelled like LangGraph's own
    stores (``path``, or ``path.i`` when one path yields several texts)."""
    texts: list[tuple[str, str]] = []
    for path, tokens in paths:
        found = get_text_at_path(value, tokens)
        if len(found) == 1:
            texts.append((path, found[0]))
        else:
            texts.extend((f"{path}.{i}", text) for i, text in enumerate(found))
    return texts


def record_document(
    namespace: Sequence[str],
    key: str,
    value_json: str,
    fields: dict[str, Any],
    *,
    created: str,
    updated: str,
    vector_count: int,
    placeholder: np.ndarray,
    ttl: dict[str, float] | None = None,
) -> DocumentInfo:
    metadata = {
        KIND: RECORD,
        **namespace_fields(namespace),
        CREATED: created,
        UPDATED: updated,
        VECTOR_COUNT: vector_count,
        **(ttl or {}),
        **fields,
    }
    return DocumentInfo(id=record_id(namespace, key), text=value_json, metadata=metadata, embedding=placeholder)


def vector_document(
    record: str, position: int, label: str, text: str, namespace: Sequence[str], fields: dict[str, Any], vector: Any
) -> DocumentInfo:
    metadata = {KIND: VECTOR, PATH: label, **namespace_fields(namespace), **fields}
    return DocumentInfo(id=f"{record}#{position}", text=text, metadata=metadata, embedding=vector)


def config_document(fields: Sequence[str], dims: int, placeholder: np.ndarray) -> DocumentInfo:
    metadata = {KIND: CONFIG, FIELDS: list(fields), DIMS: dims}
    return DocumentInfo(id=CONFIG_ID, text=orjson.dumps({"fields": list(fields), "dims": dims}).decode(), metadata=metadata, embedding=placeholder)


def to_item(doc: DocumentInfo) -> Item:
    namespace, key = parse_record_id(doc.id)
    metadata = doc.metadata or {}
    return Item(
        value=orjson.loads(doc.text),
        key=key,
        namespace=namespace,
        created_at=metadata[CREATED],
        updated_at=metadata[UPDATED],
    )


def to_search_item(doc: DocumentInfo, score: float | None) -> SearchItem:
    namespace, key = parse_record_id(doc.id)
    metadata = doc.metadata or {}
    return SearchItem(
        namespace=namespace,
        key=key,
        value=orjson.loads(doc.text),
        created_at=datetime.fromisoformat(metadata[CREATED]),
        updated_at=datetime.fromisoformat(metadata[UPDATED]),
        score=score,
    )
