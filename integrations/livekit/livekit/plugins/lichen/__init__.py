"""Lichen plugin for LiveKit Agents: per-turn context from a call's Lichen session and
long-term indexes (``on_user_turn_completed``), a search tool for the LLM, and the query
embedded from interim transcripts while the user speaks. Offline: Lichen embeds with the
model it ships."""

from lichen.interim import FILLER_WORDS, InterimQueries, TurnQuery, match_prepared
from livekit.agents import Plugin

from .context import LichenContext, LichenTurn
from .log import logger
from .options import LichenOptions
from .version import __version__

__all__ = [
    "FILLER_WORDS",
    "InterimQueries",
    "LichenContext",
    "LichenOptions",
    "LichenTurn",
    "TurnQuery",
    "match_prepared",
    "__version__",
]


class LichenPlugin(Plugin):
    def __init__(self) -> None:
        super().__init__(__name__, __version__, __package__, logger)


Plugin.register_plugin(LichenPlugin())
