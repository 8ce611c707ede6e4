"""``LichenKnowledgeStorage``: CrewAI's knowledge storage kept in a Lichen index.

CrewAI's ``Knowledge`` chunks its sources and hands the chunks to a storage backend
(``save``), then asks it for the chunks closest to a query (``search``). This backend
translates those calls for a Lichen ``SessionIndex`` and follows CrewAI's own storage
where it defines behaviour: a chunk's id is the SHA-256 of its text (saving the same
chunk again is an upsert), the query is the query strings joined by spaces, and a
result's ``score`` is ``(1 + cosine) / 2``, the [0, 1] scale of CrewAI's default store,
so ``score_threshold`` (0.6 by default) means what it means there.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Callable
from typing import Any

from crewai.knowledge.storage.base_knowledge_storage import BaseKnowledgeStorage
from crewai.rag.types import SearchResult
from lichen import Client, DocumentInfo, PushIndexResult, QueryOptions, QueryResultDocument, SessionIndex
from pydantic import Field

__all__ = ["LichenKnowledgeStorage", "lichen_knowledge_storage_factory", "knowledge_index_name"]


class LichenKnowledgeStorage(BaseKnowledgeStorage):
    """Keeps a CrewAI ``Knowledge`` in a Lichen index, embedded in process by Lichen's
    model (no embedding API, no API key).

    ```python
    from crewai.knowledge.knowledge import Knowledge
    from crewai.knowledge.source.string_knowledge_source import StringKnowledgeSource
    from crewai_lichen import LichenKnowledgeStorage

    storage = LichenKnowledgeStorage.open("knowledge_support")
    knowledge = Knowledge("support", sources=[StringKnowledgeSource(content="...")], storage=storage)
    knowledge.add_sources()
    knowledge.query(["refund policy"])        # -> [{"id", "content", "metadata", "score"}, ...]
    storage.push()                            # persist under "knowledge_support"
    ```

    Writes live in memory until :meth:`push`; a storage opened on a loaded long-term
    index (``LichenKnowledgeStorage(session=client.load_index_sync(name))``) is searched
    and never written.
    """

    session: SessionIndex = Field(exclude=True, description="The Lichen index holding the knowledge.")

    @classmethod
    def open(
        cls, index_name: str, *, client: Client | None = None, model_id: str | None = None
    ) -> LichenKnowledgeStorage:
        """Open the session ``index_name`` (resuming what was pushed under that name, if
        anything) through ``client`` (default ``Client()``: the embedded store under
        ``LICHEN_HOME``, or the server named by ``LICHEN_URL``)."""
        client = client if client is not None else Client()
        return cls(session=client.session_sync(index_name, model_id))

    # ------------------------------------------------------------------ CrewAI's interface
    def search(
        self,
        query: list[str],
        limit: int = 5,
        metadata_filter: dict[str, Any] | None = None,
        score_threshold: float = 0.6,
    ) -> list[SearchResult]:
        """The ``limit`` chunks closest to the joined query, best first, scoring at least
        ``score_threshold``. ``metadata_filter`` is a Mongo-style filter (Chroma's
        ``where`` form is one), evaluated by Lichen."""
        options = _options(limit, metadata_filter, score_threshold)
        return [_search_result(hit) for hit in self.session.query_sync(_query_text(query), options).docs]

    async def asearch(
        self,
        query: list[str],
        limit: int = 5,
        metadata_filter: dict[str, Any] | None = None,
        score_threshold: float = 0.6,
    ) -> list[SearchResult]:
        options = _options(limit, metadata_filter, score_threshold)
        return [_search_result(hit) for hit in (await self.session.query(_query_text(query), options)).docs]

    def save(self, documents: list[str]) -> None:
        """Upsert chunks, each under the SHA-256 of its text; Lichen embeds them."""
        if documents:
            self.session.add_docs_sync(_records(documents))

    async def asave(self, documents: list[str]) -> None:
        if documents:
            await self.session.add_docs(_records(documents))

    def reset(self) -> None:
        """Delete every chunk (in memory; :meth:`push` then stores the empty index)."""
        self.session.clear_sync()

    async def areset(self) -> None:
        await self.session.clear()

    # ------------------------------------------------------------------ persistence
    def push(self, *, overwrite: bool = False) -> PushIndexResult:
        """Store the index under its name: ``LichenKnowledgeStorage.open(name)`` resumes
        it in any process, without re-embedding."""
        return self.session.push_index_sync(overwrite=overwrite)

    async def apush(self, *, overwrite: bool = False) -> PushIndexResult:
        return await self.session.push_index(overwrite=overwrite)


def knowledge_index_name(collection_name: str | None) -> str:
    """The Lichen index for a CrewAI knowledge collection: ``knowledge_<collection>`` as
    CrewAI names its own collections (an agent's is its role, a crew's is ``crew``), with
    the path separators Lichen refuses in a name replaced by ``_``."""
    name = f"knowledge_{collection_name}" if collection_name else "knowledge"
    return re.sub(r"[/\\]", "_", name)


def lichen_knowledge_storage_factory(
    client: Client | None = None, *, model_id: str | None = None
) -> Callable[[Any, str | None], LichenKnowledgeStorage]:
    """A factory for ``crewai.knowledge.storage.factory.set_knowledge_storage_factory``,
    so the ``Knowledge`` that agents and crews build from ``knowledge_sources`` is kept
    in Lichen: one session per collection, named by :func:`knowledge_index_name`.

    Lichen embeds with the index's model, so an ``embedder=`` configured on an agent or a
    crew is not used for knowledge; the factory warns when it is given one."""
    client = client if client is not None else Client()

    def build(embedder: Any, collection_name: str | None) -> LichenKnowledgeStorage:
        if embedder is not None:
            warnings.warn(
                f"knowledge collection {collection_name!r} is kept in Lichen and embedded by Lichen's model; "
                "the embedder configured for it is not used",
                stacklevel=2,
            )
        return LichenKnowledgeStorage.open(knowledge_index_name(collection_name), client=client, model_id=model_id)

    return build


def _query_text(query: list[str]) -> str:
    if isinstance(query, str) or not query or not all(isinstance(q, str) for q in query):
        raise ValueError(f"query must be a non-empty list of strings, got {query!r}")
    return " ".join(query)


def _options(limit: int, metadata_filter: dict[str, Any] | None, score_threshold: float | None) -> QueryOptions:
    # CrewAI's score is (1 + cosine) / 2 and a falsy threshold means "no threshold".
    min_cosine = 2.0 * score_threshold - 1.0 if score_threshold else None
    return QueryOptions(top_k=limit, filter=metadata_filter or None, alpha=1.0, min_score=min_cosine)


def _records(documents: list[str]) -> list[DocumentInfo]:
    # One record per distinct chunk: the id is the text's hash, so repeats are one record.
    return [
        DocumentInfo(id=hashlib.sha256(text.encode()).hexdigest(), text=text) for text in dict.fromkeys(documents)
    ]


def _search_result(hit: QueryResultDocument) -> SearchResult:
    return SearchResult(id=hit.id, content=hit.text, metadata=dict(hit.metadata), score=(1.0 + hit.score) / 2.0)
