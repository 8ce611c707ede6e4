"""What a query hands back beyond the ranking: the ``QueryOptions`` result controls
(``min_score``, ``include_embeddings``, ``include_text``), checked before a search and
applied to its hits after it, so the engine's search stays about ranking only."""

from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING

from ._errors import InvalidArgumentError
from ._types import QueryOptions, QueryResultDocument

if TYPE_CHECKING:
    from .engine.core import IndexCore

__all__ = ["check_result_options", "shape_hits"]


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


def shape_hits(core: IndexCore, hits: list[QueryResultDocument], options: QueryOptions) -> list[QueryResultDocument]:
    """Apply the score floor, then attach or drop what the caller asked for. Hits are
    sorted best first, so the floor cuts a prefix."""
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
