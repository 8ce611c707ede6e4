"""``LichenOptions``: what LichenContext retrieves per turn, how it renders it for the
LLM, what it indexes and when it pushes. The per-turn rules are Lichen's own
(:class:`lichen.turn_context.TurnContextOptions`, shared with pipecat-lichen); this adds
what a LiveKit agent decides."""

from __future__ import annotations

from typing import Literal

from lichen.turn_context import DEFAULT_CONTEXT_TEMPLATE, DEFAULT_PASSAGE_TEMPLATE, TemplateFields, TurnContextOptions

__all__ = ["LichenOptions", "DEFAULT_CONTEXT_TEMPLATE", "DEFAULT_PASSAGE_TEMPLATE", "TemplateFields"]


class LichenOptions(TurnContextOptions):
    """Options of :class:`~livekit.plugins.lichen.LichenContext`.

    Retrieval: each user turn queries the call's session and the long-term ``indexes``
    (loaded in the client beforehand) and keeps the best ``top_k`` passages over all of
    them (``per_source_k`` caps what one source contributes: ``{"session": 2, "faqs":
    1}``). ``alpha``, ``filter`` and ``min_score`` are Lichen's ``QueryOptions`` and apply
    to every source. Passages are merged by ``score`` (cosine similarities from one model
    compare directly) or by reciprocal rank (``merge="rrf"``: sources embedded by
    different models, or hybrid queries).

    Rendering: the passages go into the turn's chat context as one ``context_role``
    message, ``context_template`` with ``{passages}`` replaced by one line per passage
    (``passage_template``: ``{source}`` is ``session`` or the index name, then ``{id}``,
    ``{score}``, ``{text}``, ``{metadata[field]}``, empty when a passage lacks it), session
    passages first, each source best first. LiveKit keeps such a message for that turn's
    reply only: the next turn has its own.

    Indexing: each user and assistant message becomes a session document,
    ``turn_template`` (``{speaker}``, ``{text}``) with ``speakers`` naming the roles, id
    ``turn-<n>`` and metadata ``{"speaker": ..., "turn": n}``, embedded from the message
    text alone.
    """

    context_role: Literal["system", "developer", "assistant", "user"] = "system"
    """The chat role of the context message added to a turn."""
    push_on_close: bool = True
    """Push the session when the AgentSession closes."""
