"""``LichenToolSpec``: a LlamaIndex tool spec over one Lichen index.

The three tools translate an agent's call into one Lichen call each (``query``,
``add_docs``, ``delete_docs``) and Lichen's answer into plain values an LLM reads well.
The methods' docstrings are written for the model: LlamaIndex turns each signature and
its ``Args:`` section into the tool's description and JSON schema.
"""

from __future__ import annotations

import hashlib
from typing import Any

from lichen import DocumentInfo, QueryOptions, SearchResult, SessionIndex
from llama_index.core.tools.tool_spec.base import SPEC_FUNCTION_TYPE, BaseToolSpec

__all__ = ["LichenToolSpec"]


class LichenToolSpec(BaseToolSpec):
    """Agent tools over a Lichen index: ``query`` it, ``add`` passages, ``delete`` them.

    ```python
    from lichen import Client
    from llama_index.tools.lichen import LichenToolSpec

    spec = LichenToolSpec(Client().session_sync("agent-notes"))
    tools = spec.to_tool_list()          # FunctionTools: query, add, delete (each sync and async)
    # FunctionAgent(tools=tools, llm=...), ReActAgent(tools=tools, llm=...)
    ```

    The index is a session (written in real time; ``spec.index.push_index_sync()``
    persists it) or a long-term index loaded with ``client.load_index_sync(name)``, in
    which case only ``query`` is offered. Passages are embedded by the index's model.

    :param index: the Lichen session or loaded index the tools work on.
    :param top_k: passages ``query`` returns when the agent does not say.
    :param filter: a metadata filter every ``query`` applies, together with the agent's.
    :param min_score: ``query`` drops passages whose cosine similarity is below it.
    """

    spec_functions: list[SPEC_FUNCTION_TYPE] = [("query", "aquery"), ("add", "aadd"), ("delete", "adelete")]

    def __init__(
        self,
        index: SessionIndex,
        *,
        top_k: int = 5,
        filter: dict[str, Any] | None = None,
        min_score: float | None = None,
    ) -> None:
        self.index = index
        self.top_k = top_k
        self.filter = filter
        self.min_score = min_score
        if index.read_only:  # a loaded long-term index: writing tools would only fail
            self.spec_functions = [("query", "aquery")]

    # ------------------------------------------------------------------ the tools (read by the LLM)
    def query(self, query: str, top_k: int | None = None, filter: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Search the knowledge base for passages relevant to a question, best match first.

        Each passage has its id, text, score (cosine similarity, higher is closer) and metadata.

        Args:
            query (str): What to look for, in plain words; passages are matched by meaning.
            top_k (int | None): How many passages to return; leave it out for the default.
            filter (dict | None): Optional metadata filter, e.g. {"topic": "billing"} or {"year": {"$gte": 2024}}.
        """
        return _passages(self.index.query_sync(query, self._options(top_k, filter)))

    async def aquery(
        self, query: str, top_k: int | None = None, filter: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Asynchronous :meth:`query` (embedding and search on a worker thread)."""
        return _passages(await self.index.query(query, self._options(top_k, filter)))

    def add(self, texts: list[str], metadata: dict[str, Any] | None = None) -> list[str]:
        """Store passages in the knowledge base so that later searches find them.

        Returns the id of each passage, in order. Storing the same text again replaces it.

        Args:
            texts (list[str]): The passages to store, one string each.
            metadata (dict | None): Optional metadata given to every passage, e.g. {"source": "user"}.
        """
        documents, ids = _documents(texts, metadata)
        self.index.add_docs_sync(documents)
        return ids

    async def aadd(self, texts: list[str], metadata: dict[str, Any] | None = None) -> list[str]:
        """Asynchronous :meth:`add`."""
        documents, ids = _documents(texts, metadata)
        await self.index.add_docs(documents)
        return ids

    def delete(self, ids: list[str]) -> int:
        """Delete passages from the knowledge base by id (ids come from query or add).

        Returns how many passages were deleted; unknown ids are ignored.

        Args:
            ids (list[str]): The ids of the passages to delete.
        """
        return self.index.delete_docs_sync(ids)

    async def adelete(self, ids: list[str]) -> int:
        """Asynchronous :meth:`delete`."""
        return await self.index.delete_docs(ids)

    # ------------------------------------------------------------------ translation
    def _options(self, top_k: int | None, filter: dict[str, Any] | None) -> QueryOptions:
        filters = [f for f in (self.filter, filter) if f]
        combined = None if not filters else filters[0] if len(filters) == 1 else {"$and": filters}
        return QueryOptions(
            top_k=self.top_k if top_k is None else top_k, filter=combined, alpha=1.0, min_score=self.min_score
        )


def _passages(result: SearchResult) -> list[dict[str, Any]]:
    return [{"id": d.id, "text": d.text, "score": d.score, "metadata": d.metadata} for d in result.docs]


def _documents(texts: list[str], metadata: dict[str, Any] | None) -> tuple[list[DocumentInfo], list[str]]:
    """One document per distinct text, and the id of every input text in order.

    The id is the first 16 hex digits of the text's SHA-256: an agent that stores a note
    twice keeps one, and an id is short enough for a model to copy back into ``delete``
    (64 bits: a collision is not a concern at any index size Lichen holds)."""
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise ValueError("texts must be a list of strings")
    ids = [hashlib.sha256(text.encode()).hexdigest()[:16] for text in texts]
    distinct = dict(zip(ids, texts))
    documents = [DocumentInfo(id=i, text=t, metadata=dict(metadata) if metadata else None) for i, t in distinct.items()]
    return documents, ids
