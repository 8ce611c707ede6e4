"""What a conversation adapter does on every turn, framework-free: which sources it
searches and how many passages it keeps, how the passages read to the LLM, and how a
turn becomes a session document.

pipecat-lichen's ``LichenParams`` and livekit-plugins-lichen's ``LichenOptions`` are
:class:`TurnContextOptions` plus what their frameworks need (when to push, which chat
role carries the context), so a call behaves alike in both and the rules live once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ._types import DocumentInfo, QueryOptions
from .interim import FILLER_WORDS
from .merge import SESSION_SOURCE, ContextHit, ContextSearch

if TYPE_CHECKING:
    from ._client import Client
    from ._session import SessionIndex

__all__ = ["DEFAULT_CONTEXT_TEMPLATE", "DEFAULT_PASSAGE_TEMPLATE", "TemplateFields", "TurnContextOptions"]

DEFAULT_CONTEXT_TEMPLATE = "Context for this turn (earlier in this call, then reference passages):\n{passages}"
DEFAULT_PASSAGE_TEMPLATE = "[{source} {id} {score:.2f}] {text}"


class TemplateFields(dict):
    """A passage's metadata as templates see it: ``{metadata[topic]}`` is empty for a
    passage without that field (session turns and long-term passages differ)."""

    def __missing__(self, key: str) -> str:
        return ""


class TurnContextOptions(BaseModel):
    """Retrieval: each user turn queries the call's session and the long-term ``indexes``
    (loaded in the client beforehand) and keeps the best ``top_k`` passages over all of
    them (``per_source_k`` caps what one source contributes: ``{"session": 2, "faqs":
    1}``). ``alpha``, ``filter`` and ``min_score`` are Lichen's ``QueryOptions`` and apply
    to every source. Passages are merged by ``score`` (cosine similarities from one model
    compare directly) or by reciprocal rank (``merge="rrf"``: sources embedded by
    different models, or hybrid queries).

    Rendering: ``context_template`` with ``{passages}`` replaced by one line per passage
    (``passage_template``: ``{source}`` is ``session`` or the index name, then ``{id}``,
    ``{score}``, ``{text}``, ``{metadata[field]}``, empty when a passage lacks it),
    session passages first, each source best first.

    Indexing: each user and assistant message becomes a session document,
    ``turn_template`` (``{speaker}``, ``{text}``) with ``speakers`` naming the roles, id
    ``turn-<n>`` and metadata ``{"speaker": ..., "turn": n}``, embedded from the message
    text alone.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    indexes: tuple[str, ...] = ()
    """Long-term indexes to query beside the session, loaded with ``client.load_index``."""
    top_k: int = Field(default=3, ge=0, le=100)
    per_source_k: dict[str, int] = Field(default_factory=dict)
    alpha: float | None = Field(default=None, ge=0.0, le=1.0)
    filter: dict[str, Any] | None = None
    min_score: float | None = None
    merge: Literal["score", "rrf"] = "score"
    context_template: str = DEFAULT_CONTEXT_TEMPLATE
    passage_template: str = DEFAULT_PASSAGE_TEMPLATE
    speakers: dict[str, str] = Field(default_factory=lambda: {"user": "user", "assistant": "assistant"})
    turn_template: str = "{speaker}: {text}"
    index_turns: bool = True
    """Index each user and assistant message into the session."""
    prepare_interim: bool = True
    """Embed interim transcripts as they arrive (``session.prepare``)."""
    filler_words: frozenset[str] = FILLER_WORDS
    """Words ignored when a final transcript is matched with a prepared one."""

    @field_validator("indexes", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError("indexes is a list of index names, not one string")
        return value

    @field_validator("per_source_k")
    @classmethod
    def _per_source(cls, value: dict[str, int]) -> dict[str, int]:
        for source, k in value.items():
            if k < 0:
                raise ValueError(f"per_source_k[{source!r}] must be 0 or more, got {k}")
        return value

    @field_validator("context_template")
    @classmethod
    def _context_template(cls, value: str) -> str:
        if "{passages}" not in value:
            raise ValueError("context_template must contain {passages}")
        return value

    @field_validator("passage_template")
    @classmethod
    def _passage_template(cls, value: str) -> str:
        try:
            value.format(source="session", id="turn-1", score=0.5, text="text", metadata=TemplateFields())
        except KeyError as missing:
            raise ValueError(
                f"passage_template names {missing}: use {{source}} {{id}} {{score}} {{text}} {{metadata}}"
            ) from None
        except (IndexError, ValueError) as error:
            raise ValueError(f"passage_template is not a format string: {error}") from None
        return value

    @field_validator("speakers")
    @classmethod
    def _speakers(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError("speakers must name at least one role")
        return value

    def context_search(self, session: SessionIndex, client: Client | None, *, owner: str) -> ContextSearch:
        """The search each turn makes; ``owner`` names the adapter's class in the error
        a missing client gets (long-term indexes live in the client that loaded them)."""
        if self.indexes and client is None:
            raise ValueError(f"long-term indexes need the client that loaded them: {owner}(session, client, ...)")
        return ContextSearch(
            session,
            client,
            list(self.indexes),
            k=self.top_k,
            per_source_k=self.per_source_k,
            method=self.merge,
            options=QueryOptions(alpha=self.alpha, filter=self.filter, min_score=self.min_score),
        )

    def render(self, hits: Sequence[ContextHit]) -> str:
        """The passages as the LLM reads them: session first, each source best first."""
        order = {SESSION_SOURCE: 0, **{name: i + 1 for i, name in enumerate(self.indexes)}}
        grouped = sorted(hits, key=lambda hit: order.get(hit.source, len(order)))  # stable
        lines = [
            self.passage_template.format(
                source=hit.source, id=hit.doc.id, score=hit.doc.score, text=hit.doc.text,
                metadata=TemplateFields(hit.doc.metadata),
            )
            for hit in grouped
        ]
        return self.context_template.format(passages="\n".join(lines))

    def turn_document(self, role: str, text: str, number: int, vector: Any) -> DocumentInfo:
        """Message ``number`` of the call (1-based) as the session stores it."""
        speaker = self.speakers[role]
        return DocumentInfo(
            id=f"turn-{number}",
            text=self.turn_template.format(speaker=speaker, text=text),
            metadata={"speaker": speaker, "turn": number},
            embedding=vector,
        )
