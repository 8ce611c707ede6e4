"""``LichenParams``: what the processor retrieves per turn, how it renders it, what it
indexes and when it pushes. The per-turn rules are Lichen's own
(:class:`lichen.turn_context.TurnContextOptions`, shared with livekit-plugins-lichen);
this adds what a Pipecat pipeline decides."""

from __future__ import annotations

from lichen.turn_context import DEFAULT_CONTEXT_TEMPLATE, DEFAULT_PASSAGE_TEMPLATE, TemplateFields, TurnContextOptions

__all__ = ["LichenParams", "DEFAULT_CONTEXT_TEMPLATE", "DEFAULT_PASSAGE_TEMPLATE", "TemplateFields"]


class LichenParams(TurnContextOptions):
    """Options of :class:`~pipecat_lichen.LichenContextProcessor`: the per-turn rules of
    :class:`~lichen.turn_context.TurnContextOptions` (sources and how many, merge, filter,
    templates, speakers, interim preparation), and when to push.

    The rendered passages go into one system message placed just before the user's turn;
    the next turn replaces it. ``prepare_interim`` needs the transcript listener after the
    STT service (:meth:`LichenContextProcessor.transcript_listener`).
    """

    push_on_end: bool = True
    """Push the session when the call ends (``EndFrame`` or ``CancelFrame``)."""
