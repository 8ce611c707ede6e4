"""``LichenSearchTool``: a CrewAI tool that searches a Lichen session or loaded index."""

from __future__ import annotations

import json
from typing import Any

from crewai.tools import BaseTool
from crewai.types.callback import SerializableCallable
from lichen import QueryOptions, SearchResult, SessionIndex
from pydantic import BaseModel, Field

__all__ = ["LichenSearchTool", "LichenSearchInput"]


class LichenSearchInput(BaseModel):
    """Arguments of the Lichen search tool."""

    query: str = Field(..., description="What to look for, in plain words: passages are matched by meaning.")
    top_k: int | None = Field(
        default=None, ge=1, le=50, description="How many passages to return; omit for the tool's default."
    )
    filter: dict[str, Any] | None = Field(
        default=None,
        description=(
            'Optional metadata filter, e.g. {"topic": "billing"} or {"year": {"$gte": 2024}} '
            "(operators $eq $ne $gt $gte $lt $lte $in $nin $and $or)."
        ),
    )


def _never_cache(_arguments: Any = None, _result: Any = None) -> bool:
    # CrewAI caches tool results by their arguments; a session changes while agents run
    # (a live call's turns are added as they happen), so the same query must search again.
    return False


class LichenSearchTool(BaseTool):
    """Lets a CrewAI agent search a Lichen index: a session written in real time, or a
    long-term index loaded with ``client.load_index_sync(name)``.

    ```python
    from crewai import Agent
    from crewai_lichen import LichenSearchTool
    from lichen import Client

    tool = LichenSearchTool(index=Client().load_index_sync("handbook"), top_k=3)
    agent = Agent(role="Support", goal="Answer from the handbook", backstory="...", tools=[tool])
    ```

    The agent passes a ``query`` and optionally ``top_k`` and a metadata ``filter``
    (:class:`LichenSearchInput`); the tool answers with a JSON list of passages
    (``id``, ``text``, ``score``: the cosine similarity, ``metadata``), best first.
    ``filter`` set on the tool always applies, together with the agent's. Results are
    never cached: the index may change between two identical calls.
    """

    name: str = "lichen_search"
    description: str = (
        "Search the knowledge base for passages relevant to a question. "
        "Returns a JSON list of passages with their id, text, relevance score and metadata, best first."
    )
    args_schema: type[BaseModel] = LichenSearchInput
    cache_function: SerializableCallable = _never_cache
    index: SessionIndex = Field(exclude=True, description="The Lichen session or loaded index to search.")
    top_k: int = Field(default=5, ge=1, description="Passages returned when the agent does not say.")
    filter: dict[str, Any] | None = Field(default=None, description="A metadata filter applied to every search.")
    min_score: float | None = Field(default=None, description="Drop passages whose cosine similarity is below it.")

    def _run(self, query: str, top_k: int | None = None, filter: dict[str, Any] | None = None) -> str:
        return _passages(self.index.query_sync(query, self._options(top_k, filter)))

    async def _arun(self, query: str, top_k: int | None = None, filter: dict[str, Any] | None = None) -> str:
        return _passages(await self.index.query(query, self._options(top_k, filter)))

    def _options(self, top_k: int | None, filter: dict[str, Any] | None) -> QueryOptions:
        filters = [f for f in (self.filter, filter) if f]
        combined = None if not filters else filters[0] if len(filters) == 1 else {"$and": filters}
        return QueryOptions(
            top_k=self.top_k if top_k is None else top_k, filter=combined, alpha=1.0, min_score=self.min_score
        )


def _passages(result: SearchResult) -> str:
    return json.dumps(
        [{"id": d.id, "text": d.text, "score": round(d.score, 4), "metadata": d.metadata} for d in result.docs],
        ensure_ascii=False,
    )
