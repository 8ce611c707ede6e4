"""``LichenParams``: what the processor retrieves per turn, how it renders it, what it
indexes and when it pushes. The per-turn rules are Lichen's own
(:class:`lichen.turn_context.TurnContextOptions`, shared with livekit-plugins-lichen);
this adds what a Pipecat pipeline decides."""

from __future__ import annotations

from lichen.turn_context import DEFAULT_CONTEXT_TEMPLATE, DEFAULT_PASSAGE_TEMPLATE, TemplateFields, TurnContextOptions

__all__ = ["LichenParams", "DEFAULT_CONTEXT_TEMPLATE", "DEFAULT_PASSAGE_TEMPLATE", "TemplateFields"]


class LichenParams(TurnContextOptions):
    """Options of :class:`~pipecat_lichen.LichenContextProcessor`.

    Retrieval: each user turn queries the call's session and the long-term ``indexes``
    (loaded in the client beforehand) and keeps the best ``top_k`` passages over all of
    them (``per_source_k`` caps what one source contributes: ``{"session": 2, "faqs":
    1}``). ``alpha``, ``filter`` and ``min_score`` are Lichen's ``QueryOptions`` and apply
    to every source. Passages are merged by ``score`` (cosine similarities from one model
    compare directly) or by reciprocal rank (``merge="rrf"``: sources embedded by
    different models, or hybrid queries).

    Rendering: the passages go into one system message placed just before the user's
    turn, ``context_template`` with ``{passages}`` replaced by one line per passage
    (``passage_template``: ``{source}`` is ``session`` or the index name, then ``{id}``,
    ``{score}``, ``{text}``, ``{metadata[field]}``, empty when a passage lacks it),
    session passages first, each source best first. The next turn replaces it.

    Indexing: each user and assistant message becomes a session document,
    ``turn_template`` (``{speaker}``, ``{text}``) with ``speakers`` naming the roles,
    id ``turn-<n>`` and metadata ``{"speaker": ..., "turn": n}``, embedded from the
    message text alone. ``prepare_interim`` needs the transcript listener after the STT
    service (:meth:`LichenContextProcessor.transcript_listener`).
    """

    push_on_end: bool = True
    """Push the session when the call ends (``EndFrame`` or ``CancelFrame``)."""
