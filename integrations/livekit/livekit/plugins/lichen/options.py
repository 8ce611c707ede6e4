"""``LichenOptions``: what LichenContext retrieves per turn, how it renders it for the
LLM, what it indexes and when it pushes. The per-turn rules are Lichen's own
(:class:`lichen.turn_context.TurnContextOptions`, shared with pipecat-lichen); this adds
what a LiveKit agent decides."""

from __future__ import annotations

from typing import Literal

from lichen.turn_context import DEFAULT_CONTEXT_TEMPLATE, DEFAULT_PASSAGE_TEMPLATE, TemplateFields, TurnContextOptions

__all__ = ["LichenOptions", "DEFAULT_CONTEXT_TEMPLATE", "DEFAULT_PASSAGE_TEMPLATE", "TemplateFields"]


class LichenOptions(TurnContextOptions):
    """Options of :class:`~livekit.plugins.lichen.LichenContext`: the per-turn rules of
    :class:`~lichen.turn_context.TurnContextOptions` (sources and how many, merge, filter,
    templates, speakers, interim preparation), the chat role of the context, and when to
    push.

    The rendered passages go into the turn's chat context as one ``context_role``
    message; LiveKit keeps such a message for that turn's reply only, so the next turn has
    its own. ``prepare_interim`` embeds the ``user_input_transcribed`` events' interim
    transcripts.
    """

    context_role: Literal["system", "developer", "assistant", "user"] = "system"
    """The chat role of the context message added to a turn."""
    push_on_close: bool = True
    """Push the session when the AgentSession closes."""
