"""What a query hands back beyond the ranking: the ``QueryOptions`` result controls
(``min_score``, ``include_embeddings``, ``include_text``), checked before a search and
applied to its hits after it, and results by source (``group_by``), so the engine's
search stays about ranking only.

**Groups.** ``group_by="source"`` turns the hits of one source into one result
(:func:`group_hits`): the engine is asked for ``max(32, 4 x top_k)`` hits; if they hold
fewer than ``top_k`` groups and the engine had more to give, it is asked again for four
times as many, until ``top_k`` groups fill, the index (or the filter) runs out, or the
score floor cuts the list. A group's chunks are its hits among those read, so a source
near the cut-off may show fewer of its matching chunks than a wider read would."""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ._errors import InvalidArgumentError
from ._types import QueryOptions, QueryResultDocument

if TYPE_CHECKING:
    from .engine.core import IndexCore

__all__ = ["check_result_options", "shape_hits", "group_hits", "GROUP_ORDER", "GROUP_MIN_FETCH", "GROUP_WIDEN"]

#: The order field of groups when ``group_order`` is not given: the chunk contract's.
GROUP_ORDER = "chunk_index"
#: Hits read for a grouped query: at least this many, and ``GROUP_WIDEN`` x ``top_k``.
GROUP_MIN_FETCH = 32
#: How many times more hits each new read asks for, and the first read's share per group.
GROUP_WIDEN = 4


def check_result_options(options: QueryOptions) -> None:
    """Raise :class:`InvalidArgumentError` for a malformed result control."""
    floor = options.min_score
    if floor is not None and (
        isinstance(floor, bool) or not isinstance(floor, numbers.Real) or math.isnan(float(floor))
    ):
        raise InvalidArgumentError(f"min_score must be a number or None, got {floor!r}")
    for name in ("include_embeddings", "include_text"):
        if not isinstance(getattr(options, name), bool):
            raise InvalidArgumentError(f"{name} must be True or False, got {getattr(options, name)!r}")
    for name in ("group_by", "group_order"):
        value = getattr(options, name, None)
        if value is not None and (not isinstance(value, str) or not value):
            raise InvalidArgumentError(f"{name} must be a metadata field name (a non-empty string) or None, got {value!r}")
    if options.group_order is not None and options.group_by is None:
        raise InvalidArgumentError("group_order orders the chunks of a group: set group_by too")
    if options.group_by is not None and getattr(options, "rerank", None) is not None:
        raise InvalidArgumentError("group_by and rerank cannot be combined yet: re-rank chunks, or group them")


def shape_hits(core: IndexCore, hits: list[QueryResultDocument], options: QueryOptions) -> list[QueryResultDocument]:
    """Apply the score floor, then attach or drop what the caller asked for. Hits are
    sorted best first, so the floor cuts a prefix. Groups were shaped chunk by chunk
    (:func:`group_hits`) and pass unchanged."""
    if options.group_by is not None:
        return hits
    if options.min_score is not None:
        floor = float(options.min_score)
        hits = [hit for hit in hits if hit.score >= floor]
    if options.include_embeddings and hits:
        # A hit deleted since the search keeps embedding=None rather than failing the query.
        stored = core.get([hit.id for hit in hits], include_embeddings=True)
        vectors = {doc.id: doc.embedding for doc in stored}
        for hit in hits:
            hit.embedding = vectors.get(hit.id)
    if not options.include_text:
        for hit in hits:
            hit.text = ""
    return hits


# ---------------------------------------------------------------------------- groups
_MISSING = object()


def _field(metadata: dict[str, Any], path: str) -> Any:
    """``metadata[path]``, else the dotted path through nested dicts, else ``_MISSING``."""
    if path in metadata:
        return metadata[path]
    value: Any = metadata
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _group_key(value: Any) -> tuple[str, Any]:
    try:
        hash(value)
        return ("value", (type(value).__name__, value))
    except TypeError:  # a list or dict value: its canonical JSON
        return ("value", ("json", json.dumps(value, sort_keys=True, default=str)))


def _group_id(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def _order_key(hit: QueryResultDocument, order: str) -> tuple[int, Any, float]:
    value = _field(hit.metadata, order)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return (0, value, -hit.score)
    if isinstance(value, str):
        return (1, value, -hit.score)
    return (2, 0, -hit.score)  # no order value: after the others, best first


def _shared_metadata(chunks: list[QueryResultDocument], order: str) -> dict[str, Any]:
    first = chunks[0].metadata
    shared = {
        key: value for key, value in first.items()
        if key != order and all(key in chunk.metadata and chunk.metadata[key] == value for chunk in chunks[1:])
    }
    return shared


def _collapse(chunks: list[QueryResultDocument], group_id: str, options: QueryOptions) -> QueryResultDocument:
    """One result for the hits of one group (``chunks`` best first)."""
    order = options.group_order or GROUP_ORDER
    ordered = sorted(chunks, key=lambda hit: _order_key(hit, order))
    text = "\n\n".join(hit.text for hit in ordered) if options.include_text else ""
    return replace(
        chunks[0], id=group_id, text=text, metadata=_shared_metadata(ordered, order), embedding=None, chunks=ordered
    )


def _group(hits: list[QueryResultDocument], options: QueryOptions) -> list[QueryResultDocument]:
    """Groups in the order of their best hit (hits are sorted best first)."""
    members: dict[tuple[str, Any], list[QueryResultDocument]] = {}
    ids: dict[tuple[str, Any], str] = {}
    for hit in hits:
        value = _field(hit.metadata, options.group_by or "")
        key = ("id", hit.id) if value is _MISSING or value is None else _group_key(value)
        if key not in members:
            members[key] = []
            ids[key] = hit.id if key[0] == "id" else _group_id(value)
        members[key].append(hit)
    return [_collapse(chunks, ids[key], options) for key, chunks in members.items()]


def group_hits(
    core: IndexCore, search: Callable[[int], list[QueryResultDocument]], options: QueryOptions
) -> list[QueryResultDocument]:
    """The best ``options.top_k`` groups of the hits ``search(k)`` returns (the ``k`` best
    hits, sorted), reading more hits until they fill (module docstring). The chunks are
    shaped (score floor, embeddings, text) before they are grouped."""
    if options.top_k == 0:
        return []
    available = len(core)
    chunk_options = replace(options, group_by=None, group_order=None)
    k = min(available, max(GROUP_MIN_FETCH, GROUP_WIDEN * options.top_k))
    while True:
        hits = search(k)
        kept = shape_hits(core, hits, chunk_options)
        groups = _group(kept, options)
        exhausted = len(hits) < k or k >= available or len(kept) < len(hits)  # no more, or the floor cut
        if len(groups) >= options.top_k or exhausted:
            return groups[: options.top_k]
        k = min(available, k * GROUP_WIDEN)
