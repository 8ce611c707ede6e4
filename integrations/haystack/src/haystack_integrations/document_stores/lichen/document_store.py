"""``LichenDocumentStore``: Haystack's ``DocumentStore`` over one Lichen index.

The store holds a Lichen ``SessionIndex`` (a session, resumable and pushable, or a
long-term index loaded read-only) and translates each call: Haystack documents and
filters in, Haystack documents out. Matching, ranking and embedding are Lichen's.
Every method has an ``*_async`` twin that awaits the session's async face instead of
blocking; both run the same translation.
"""

from __future__ import annotations

from typing import Any

from haystack import Document, default_from_dict, default_to_dict
from haystack.document_stores.types import DuplicatePolicy
from haystack.errors import FilterError
from lichen import Client, DocumentInfo, PushIndexResult, QueryOptions, SearchResult, SessionIndex

from .documents import check_documents, documents_to_write, to_haystack_document, to_lichen_document
from .filters import lichen_filter_errors, to_lichen_filter

__all__ = ["LichenDocumentStore"]


class LichenDocumentStore:
    """A Haystack document store kept in a Lichen index, in your process.

    ```python
    from haystack import Document
    from haystack_integrations.document_stores.lichen import LichenDocumentStore

    store = LichenDocumentStore("handbook")        # resumes "handbook" if it was pushed before
    store.write_documents([Document(content="Refunds take 5 business days.", meta={"topic": "billing"})])
    store.filter_documents({"field": "meta.topic", "operator": "==", "value": "billing"})
    store.push()                                   # persist; LichenDocumentStore("handbook") resumes it
    ```

    Documents written without an embedding are embedded by the index's model (the
    built-in ``lichen-minilm`` unless the index says otherwise), so no document embedder
    is needed in the indexing pipeline; documents that carry an embedding keep it
    (stored L2-normalised). With ``model_id="custom"`` every document must carry one.

    :param index_name: the Lichen index: resumed if it was pushed before, else started empty.
    :param model_id: the index's model; ``None`` adopts the stored index's, or the default.
    :param return_embedding: whether ``filter_documents`` returns each document's vector.
    :param read_only: open the stored index as long-term context (``client.load_index``):
        filter and retrieve, never write.
    :param client: where indexes are stored and pushed; default ``Client()`` (the embedded
        store under ``LICHEN_HOME``, or the server named by ``LICHEN_URL``).
    :param session: an already open ``SessionIndex`` to wrap instead (its name, model and
        read-only flag are what ``to_dict`` records).
    """

    def __init__(
        self,
        index_name: str = "haystack",
        *,
        model_id: str | None = None,
        return_embedding: bool = True,
        read_only: bool = False,
        client: Client | None = None,
        session: SessionIndex | None = None,
    ) -> None:
        if session is None:
            client = client if client is not None else Client()
            session = client.load_index_sync(index_name) if read_only else client.session_sync(index_name, model_id)
        self._session = session
        self.return_embedding = return_embedding

    @property
    def session(self) -> SessionIndex:
        """The Lichen index underneath, for what Haystack has no name for (``save``, ``info``)."""
        return self._session

    @property
    def index_name(self) -> str:
        return self._session.name

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """The index by name, not its documents: ``from_dict`` reopens what was pushed."""
        return default_to_dict(
            self,
            index_name=self._session.name,
            model_id=self._session.model_id,
            return_embedding=self.return_embedding,
            read_only=self._session.read_only,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LichenDocumentStore:
        return default_from_dict(cls, data)

    # ------------------------------------------------------------------ counting and reading
    def count_documents(self) -> int:
        return self._session.doc_count

    async def count_documents_async(self) -> int:
        return self._session.doc_count

    def filter_documents(self, filters: dict[str, Any] | None = None) -> list[Document]:
        """Documents matching a Haystack filter (see :mod:`.filters`), in insertion order."""
        lichen_filter = to_lichen_filter(filters)
        with lichen_filter_errors():
            found = self._session.get_docs_sync(filter=lichen_filter, include_embeddings=self.return_embedding)
        return [to_haystack_document(doc) for doc in found]

    async def filter_documents_async(self, filters: dict[str, Any] | None = None) -> list[Document]:
        lichen_filter = to_lichen_filter(filters)
        with lichen_filter_errors():
            found = await self._session.get_docs(filter=lichen_filter, include_embeddings=self.return_embedding)
        return [to_haystack_document(doc) for doc in found]

    def count_documents_by_filter(self, filters: dict[str, Any]) -> int:
        lichen_filter = to_lichen_filter(filters)
        with lichen_filter_errors():
            return len(self._session.get_docs_sync(filter=lichen_filter))

    async def count_documents_by_filter_async(self, filters: dict[str, Any]) -> int:
        lichen_filter = to_lichen_filter(filters)
        with lichen_filter_errors():
            return len(await self._session.get_docs(filter=lichen_filter))

    # ------------------------------------------------------------------ writing
    def write_documents(self, documents: list[Document], policy: DuplicatePolicy = DuplicatePolicy.NONE) -> int:
        """Upsert into the index with Haystack's duplicate policies; ``NONE`` means ``FAIL``
        (as Haystack's in-memory store). Returns how many documents were written. A batch
        refused for any reason (a duplicate under ``FAIL``, a wrong embedding size, an
        unsupported metadata value) writes nothing."""
        check_documents(documents)
        policy = DuplicatePolicy.FAIL if policy == DuplicatePolicy.NONE else policy
        existing = set() if policy == DuplicatePolicy.OVERWRITE else self._stored_ids(documents)
        to_write = documents_to_write(documents, policy, existing)
        if to_write:
            self._session.add_docs_sync([to_lichen_document(doc) for doc in to_write])
        return len(documents) if policy == DuplicatePolicy.OVERWRITE else len(to_write)

    async def write_documents_async(
        self, documents: list[Document], policy: DuplicatePolicy = DuplicatePolicy.NONE
    ) -> int:
        check_documents(documents)
        policy = DuplicatePolicy.FAIL if policy == DuplicatePolicy.NONE else policy
        existing = set() if policy == DuplicatePolicy.OVERWRITE else await self._astored_ids(documents)
        to_write = documents_to_write(documents, policy, existing)
        if to_write:
            await self._session.add_docs([to_lichen_document(doc) for doc in to_write])
        return len(documents) if policy == DuplicatePolicy.OVERWRITE else len(to_write)

    def _stored_ids(self, documents: list[Document]) -> set[str]:
        return {doc.id for doc in self._session.get_docs_sync(ids=list({d.id: None for d in documents}))}

    async def _astored_ids(self, documents: list[Document]) -> set[str]:
        return {doc.id for doc in await self._session.get_docs(ids=list({d.id: None for d in documents}))}

    def update_by_filter(self, filters: dict[str, Any], meta: dict[str, Any]) -> int:
        """Merge ``meta`` into the metadata of every matching document (text and vector
        unchanged, nothing re-embedded); returns how many were updated."""
        lichen_filter = to_lichen_filter(filters)
        with lichen_filter_errors():
            found = self._session.get_docs_sync(filter=lichen_filter, include_embeddings=True)
        if found:
            self._session.add_docs_sync(_with_meta(found, meta))
        return len(found)

    async def update_by_filter_async(self, filters: dict[str, Any], meta: dict[str, Any]) -> int:
        lichen_filter = to_lichen_filter(filters)
        with lichen_filter_errors():
            found = await self._session.get_docs(filter=lichen_filter, include_embeddings=True)
        if found:
            await self._session.add_docs(_with_meta(found, meta))
        return len(found)

    # ------------------------------------------------------------------ deleting
    def delete_documents(self, document_ids: list[str]) -> None:
        """Delete by id; ids that are not stored are ignored."""
        self._session.delete_docs_sync(list(document_ids))

    async def delete_documents_async(self, document_ids: list[str]) -> None:
        await self._session.delete_docs(list(document_ids))

    def delete_all_documents(self) -> None:
        self._session.clear_sync()

    async def delete_all_documents_async(self) -> None:
        await self._session.clear()

    def delete_by_filter(self, filters: dict[str, Any]) -> int:
        """Delete the documents matching ``filters``; returns how many. A filter that
        matches everything is refused: ``delete_all_documents()`` empties on purpose."""
        lichen_filter = _required(to_lichen_filter(filters))
        with lichen_filter_errors():
            return self._session.delete_docs_sync(filter=lichen_filter)

    async def delete_by_filter_async(self, filters: dict[str, Any]) -> int:
        lichen_filter = _required(to_lichen_filter(filters))
        with lichen_filter_errors():
            return await self._session.delete_docs(filter=lichen_filter)

    # ------------------------------------------------------------------ retrieval (the retrievers' back end)
    def embedding_retrieval(
        self,
        query_embedding: list[float],
        filters: dict[str, Any] | None = None,
        top_k: int = 10,
        return_embedding: bool = False,
    ) -> list[Document]:
        """The ``top_k`` documents closest to ``query_embedding`` by cosine similarity
        (each ``score``), best first."""
        options = _vector_options(query_embedding, filters, top_k, return_embedding)
        return _scored(self._session.query_sync("", options), keyword=False)

    async def embedding_retrieval_async(
        self,
        query_embedding: list[float],
        filters: dict[str, Any] | None = None,
        top_k: int = 10,
        return_embedding: bool = False,
    ) -> list[Document]:
        options = _vector_options(query_embedding, filters, top_k, return_embedding)
        return _scored(await self._session.query("", options), keyword=False)

    def bm25_retrieval(
        self, query: str, filters: dict[str, Any] | None = None, top_k: int = 10, return_embedding: bool = False
    ) -> list[Document]:
        """The ``top_k`` documents that best match ``query``'s words by BM25 (each
        ``score``), best first; documents sharing no word with the query are not returned."""
        options = _keyword_options(filters, top_k, return_embedding)
        return _scored(self._session.query_sync(query, options), keyword=True)

    async def bm25_retrieval_async(
        self, query: str, filters: dict[str, Any] | None = None, top_k: int = 10, return_embedding: bool = False
    ) -> list[Document]:
        options = _keyword_options(filters, top_k, return_embedding)
        return _scored(await self._session.query(query, options), keyword=True)

    # ------------------------------------------------------------------ persistence
    def push(self, *, overwrite: bool = False) -> PushIndexResult:
        """Store the index under its name (Lichen's ``push_index``): a new
        ``LichenDocumentStore(index_name)`` resumes it, in any process."""
        return self._session.push_index_sync(overwrite=overwrite)

    async def push_async(self, *, overwrite: bool = False) -> PushIndexResult:
        return await self._session.push_index(overwrite=overwrite)


def _with_meta(found: list[DocumentInfo], meta: dict[str, Any]) -> list[DocumentInfo]:
    return [
        DocumentInfo(id=doc.id, text=doc.text, metadata={**(doc.metadata or {}), **meta}, embedding=doc.embedding)
        for doc in found
    ]


def _required(lichen_filter: dict[str, Any] | None) -> dict[str, Any]:
    if lichen_filter is None:
        raise FilterError("delete_by_filter needs a filter; delete_all_documents() empties the store on purpose")
    return lichen_filter


def _vector_options(
    query_embedding: list[float], filters: dict[str, Any] | None, top_k: int, return_embedding: bool
) -> QueryOptions:
    return QueryOptions(
        top_k=top_k,
        filter=to_lichen_filter(filters),
        embedding=query_embedding,
        alpha=1.0,
        include_embeddings=return_embedding,
    )


def _keyword_options(filters: dict[str, Any] | None, top_k: int, return_embedding: bool) -> QueryOptions:
    return QueryOptions(top_k=top_k, filter=to_lichen_filter(filters), alpha=0.0, include_embeddings=return_embedding)


def _scored(result: SearchResult, *, keyword: bool) -> list[Document]:
    # A pure keyword query's ``score`` is its rank-fusion score; Haystack's BM25
    # retrievers report the BM25 score itself, which Lichen keeps in ``keyword_score``.
    return [to_haystack_document(hit, score=hit.keyword_score if keyword else hit.score) for hit in result.docs]
