"""Pipecat integration for Lichen: per-turn context from a call's session and long-term
indexes, injected just before the LLM, with the query embedded while the user speaks."""

from lichen.interim import FILLER_WORDS, InterimQueries, TurnQuery, match_prepared

from .params import LichenParams
from .processor import LichenContextProcessor, LichenTranscriptListener, LichenTurn

__all__ = [
    "FILLER_WORDS",
    "InterimQueries",
    "LichenContextProcessor",
    "LichenParams",
    "LichenTranscriptListener",
    "LichenTurn",
    "TurnQuery",
    "match_prepared",
]
