"""Retrievers: one Lichen index (``LichenRetriever``) or a live session plus long-term
indexes merged into one ranked list (``LichenContextRetriever``)."""

from __future__ import annotations

from typing import Any, Literal, Optional

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from lichen import Client, ContextHit, ContextSearch, InvalidArgumentError, QueryOptions, SessionIndex
from lichen.models.rerank import check_rerank_options
from pydantic import ConfigDict, Field

from ._search import Filter, IndexSearch, Plan, check_embedding, resolve_alpha, split_filter, to_document

__all__ = ["LichenRetriever", "LichenContextRetriever", "SOURCE_METADATA_KEY"]

#: Metadata key where ``LichenContextRetriever`` records where a document came from:
#: ``"session"`` for the short-term session, otherwise the long-term index name.
SOURCE_METADATA_KEY = "lichen_source"


def _keep_current(client: Client, names: list[str], interval: Optional[float]) -> None:
    """Load each index with auto-refresh, or start refreshing the ones loaded already."""
    options = {} if interval is None else {"interval": interval}
    for name in names:
        if name in client.loaded_names:
            client.start_auto_refresh(name, **options)
        else:
            client.load_index_sync(name, auto_refresh=True, **options)


class LichenRetriever(BaseRetriever):
    """Retrieve from one Lichen index: a live session or a loaded long-term index.

    Setup:
        ```bash
        pip install langchain-lichen
        ```

    Key init args:
        index: the `lichen.SessionIndex` to search: a session, or
            `client.loaded_index(name)` for a long-term index.
        k: number of documents to return (default 4); also a per-call keyword.
        filter: a Mongo- or seed-form dict, or a `(Document) -> bool` callable.
        alpha: `None` or 1.0 for vector search (default); below 1 blends in BM25
            keyword ranking (0.0 keywords only).
        embedding: the LangChain `Embeddings` for an index created with
            `model_id="custom"`; leave `None` for indexes using Lichen's built-in model.
        group_by: a metadata field, e.g. `"source"` for files added with `add_docs`
            or `sync_folder`: one Document per source instead of per chunk (the
            parent-document pattern), `k` of them; its `page_content` is the source's
            matching chunks in order, its metadata what they share plus
            `lichen_chunks` (their ids). Needs a dict `filter`.
        rerank: a pulled cross-encoder's id (`lichen models pull
            ms-marco-MiniLM-L-6-v2`): the engine re-scores its best `rerank_candidates`
            (default 20) with it and returns the best `k` by it. Off by default.

    Instantiate:
        ```python
        from lichen import DocumentInfo, SessionIndex
        from langchain_lichen import LichenRetriever

        session = SessionIndex("call-123")
        session.add_docs_sync([
            DocumentInfo(id="t1", text="Customer: I was charged twice this month", metadata={"speaker": "customer"}),
            DocumentInfo(id="t2", text="Agent: let me look at your invoices", metadata={"speaker": "agent"}),
            DocumentInfo(id="t3", text="Customer: my card ends in 4242", metadata={"speaker": "customer"}),
        ])
        retriever = LichenRetriever(index=session, k=2)
        ```

    Usage:
        ```python
        docs = retriever.invoke("double charge")
        docs = retriever.invoke("double charge", k=1, filter={"speaker": "customer"})
        assert docs[0].id == "t1"
        ```

    Async:
        ```python
        docs = await retriever.ainvoke("double charge")
        ```

    Documents carry the Lichen id as `Document.id` and their metadata unchanged.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    index: SessionIndex
    """The Lichen index to search."""
    k: int = 4
    """Number of documents to return."""
    filter: Filter = None
    """Mongo- or seed-form dict, or a callable ``(Document) -> bool`` applied by the adapter."""
    alpha: Optional[float] = None
    """Hybrid weight: ``None``/1.0 vector only, 0.0 keywords only."""
    embedding: Optional[Embeddings] = None
    """Query embeddings for a ``model_id="custom"`` index."""
    group_by: Optional[str] = None
    """A metadata field (``"source"``): one Document per value, ``k`` of them."""
    rerank: Optional[str] = None
    """A cross-encoder's id: re-score the best candidates with it (``QueryOptions.rerank``)."""
    rerank_candidates: Optional[int] = None
    """How many candidates the cross-encoder re-scores (default 20)."""

    def model_post_init(self, __context: Any) -> None:
        IndexSearch(self.index, self.embedding)  # fail now on a model/embedding mismatch
        check_rerank_options(self.rerank, self.rerank_candidates)  # and on a bad re-ranking

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: Optional[int] = None,
        filter: Filter = None,
        alpha: Optional[float] = None,
    ) -> list[Document]:
        search = IndexSearch(self.index, self.embedding)
        return search.run(self._relevant(search, query, k, filter, alpha))

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        k: Optional[int] = None,
        filter: Filter = None,
        alpha: Optional[float] = None,
    ) -> list[Document]:
        search = IndexSearch(self.index, self.embedding)
        return await search.arun(self._relevant(search, query, k, filter, alpha))

    def _relevant(
        self, search: IndexSearch, query: str, k: Optional[int], filter: Filter, alpha: Optional[float]
    ) -> Plan[list[Document]]:
        hits = yield from search.search(
            query,
            self.k if k is None else k,
            filter=self.filter if filter is None else filter,
            alpha=self.alpha if alpha is None else alpha,
            group_by=self.group_by,
            rerank=self.rerank,
            rerank_candidates=self.rerank_candidates,
        )
        return [to_document(hit) for hit in hits]


class LichenContextRetriever(BaseRetriever):
    """Short-term plus long-term context in one retriever: the live session and loaded
    Lichen indexes, searched with one query and merged into one ranked list.

    Built for the live-call pattern: the turns of a conversation go into a session as they
    happen, reference material (FAQs, past calls) sits in long-term indexes, and every
    question to the model should see the best of both. Each call queries every source,
    fuses the ranked lists (reciprocal-rank fusion by default, or weighted scores),
    removes duplicate ids (the best-ranked occurrence wins) and records each document's
    origin in `metadata["lichen_source"]`: `"session"` or the long-term index name. The
    merge is Lichen's own (`lichen.ContextSearch`), the same for every framework adapter.

    Setup:
        ```bash
        pip install langchain-lichen
        ```

    Key init args:
        session: the short-term `lichen.SessionIndex` (optional).
        client: the `lichen.Client` that loaded the long-term indexes.
        indexes: names of long-term indexes, each loaded with `client.load_index(name)`
            before the first query (an unloaded one raises `lichen.IndexNotLoadedError`).
        k: number of merged documents to return (default 4); also a per-call keyword.
        source_k: documents taken from each source before merging (default `k`);
            `per_source_k={"support-faqs": 2}` overrides it per source.
        method: `"rrf"` (reciprocal-rank fusion, default) or `"score"` (weighted
            scores; sources must score alike, e.g. same model, vector search).
        weights: per-source weights, e.g. `{"session": 2.0}`.
        filter: Mongo- or seed-form dict applied in every source; also per call.
        alpha: hybrid weight for every source (`None`: vector only); also per call.
        embedding: LangChain `Embeddings` for sources created with `model_id="custom"`
            (or `LichenEmbeddings()` for built-in sources): the query is embedded once
            and the vector sent to every source. A foreign `Embeddings` against an index
            that uses Lichen's model raises `lichen.InvalidArgumentError`.
        rerank: a pulled cross-encoder's id: each source re-scores its best
            `rerank_candidates` (default 20) with it before the merge. Off by default.
        source_metadata_key: metadata key for the source tag (default `"lichen_source"`;
            it overwrites a key of that name already in a document's metadata).
        auto_refresh: keep the long-term indexes current while the retriever serves
            (default `False`): each is loaded now with `client.load_index(name,
            auto_refresh=True)`, or, if loaded already, refreshed from now on; pushes and
            writes by other processes reach the next query without a reload.
        refresh_interval: seconds between looks where the store cannot be waited on
            (default: the client's, 5 s).

    Instantiate:
        ```python
        from lichen import Client, DocumentInfo
        from langchain_lichen import LichenContextRetriever

        client = Client()  # embedded local store
        client.create_index_sync("support-faqs", [
            DocumentInfo(id="faq-1", text="Duplicate charges are refunded within 5 business days."),
            DocumentInfo(id="faq-2", text="You can reset your password from the login page."),
            DocumentInfo(id="faq-3", text="Invoices are emailed on the first day of each month."),
        ])
        client.load_index_sync("support-faqs")

        session = client.session_sync("call-123")
        session.add_docs_sync([
            DocumentInfo(id="turn-1", text="Customer: I was charged twice for my subscription."),
            DocumentInfo(id="turn-2", text="Agent: I can see two payments on the 3rd."),
        ])

        retriever = LichenContextRetriever(session=session, client=client, indexes=["support-faqs"], k=4)
        ```

    Usage:
        ```python
        docs = retriever.invoke("refund for a double charge")
        for doc in docs:
            print(doc.metadata["lichen_source"], doc.id, doc.page_content)
        docs = retriever.invoke("refund for a double charge", k=2)
        ```

    Async, and sync inside a running event loop:
        ```python
        docs = await retriever.ainvoke("refund for a double charge")
        docs = retriever.invoke("refund for a double charge")  # no asyncio.run inside: fine in a notebook cell
        ```

    Use within a chain:
        ```python
        from langchain_core.language_models import FakeListChatModel
        from langchain_core.output_parsers import StrOutputParser
        from langchain_core.prompts import ChatPromptTemplate
        from langchain_core.runnables import RunnablePassthrough

        prompt = ChatPromptTemplate.from_template(
            "Answer using the call so far and our FAQs.\\n\\nContext:\\n{context}\\n\\nQuestion: {question}"
        )
        llm = FakeListChatModel(responses=["Your refund arrives within 5 business days."])  # or any chat model

        def format_docs(docs):
            return "\\n".join(f"[{doc.metadata['lichen_source']}] {doc.page_content}" for doc in docs)

        chain = {"context": retriever | format_docs, "question": RunnablePassthrough()} | prompt | llm | StrOutputParser()
        answer = chain.invoke("When will I get my money back?")
        ```
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    session: Optional[SessionIndex] = None
    """Short-term index (the live session)."""
    client: Optional[Client] = None
    """Client holding the loaded long-term indexes."""
    indexes: list[str] = Field(default_factory=list)
    """Long-term index names, loaded with ``client.load_index(name)``."""
    k: int = 4
    """Number of merged documents to return."""
    source_k: Optional[int] = None
    """Documents fetched from each source before merging (default: ``k``)."""
    per_source_k: dict[str, int] = Field(default_factory=dict)
    """Per-source override of ``source_k`` (``"session"`` or an index name)."""
    method: Literal["rrf", "score"] = "rrf"
    """Merge by reciprocal rank (``"rrf"``) or by weighted score (``"score"``)."""
    weights: dict[str, float] = Field(default_factory=dict)
    """Per-source weight in the merge (default 1.0)."""
    filter: Optional[dict[str, Any]] = None
    """Mongo- or seed-form metadata filter applied in every source."""
    alpha: Optional[float] = None
    """Hybrid weight in every source: ``None``/1.0 vector only, 0.0 keywords only."""
    embedding: Optional[Embeddings] = None
    """Query embeddings for sources created with ``model_id="custom"``."""
    rerank: Optional[str] = None
    """A cross-encoder's id: every source re-scores its best candidates with it before the
    merge (``QueryOptions.rerank``; the merge then compares cross-encoder relevances)."""
    rerank_candidates: Optional[int] = None
    """How many candidates each source's cross-encoder pass re-scores (default 20)."""
    source_metadata_key: str = SOURCE_METADATA_KEY
    """Metadata key that receives each document's source."""
    auto_refresh: bool = False
    """Keep the long-term indexes current in the background (``Client.load_index(name, auto_refresh=True)``)."""
    refresh_interval: Optional[float] = None
    """Seconds between looks where the store cannot be waited on (``None``: the client's default)."""

    def model_post_init(self, __context: Any) -> None:
        self._context_search()  # fail now on a missing client or no source at all
        check_rerank_options(self.rerank, self.rerank_candidates)  # and on a bad re-ranking
        if self.auto_refresh and self.client is not None:
            _keep_current(self.client, self.indexes, self.refresh_interval)

    def _context_search(self) -> ContextSearch:
        return ContextSearch(
            self.session,
            self.client,
            self.indexes,
            k=self.k,
            source_k=self.source_k,
            per_source_k=self.per_source_k,
            method=self.method,
            weights=self.weights,
            options=QueryOptions(
                filter=self.filter, alpha=resolve_alpha(self.alpha), rerank=self.rerank,
                rerank_candidates=self.rerank_candidates,
            ),
        )

    @staticmethod
    def _overrides(filter: Filter, alpha: Optional[float]) -> dict[str, Any]:
        overrides: dict[str, Any] = {}
        if filter is not None:
            engine_filter, predicate = split_filter(filter)
            if predicate is not None:
                raise InvalidArgumentError(
                    "LichenContextRetriever takes dict filters (Mongo or seed form); callable filters "
                    "work with LichenVectorStore and LichenRetriever"
                )
            overrides["filter"] = engine_filter
        if alpha is not None:
            overrides["alpha"] = alpha
        return overrides

    def _check_embedding(self) -> bool:
        """Whether queries are embedded by the retriever's own ``embedding``. Such an
        embedding must not query an index built with Lichen's own model (the vectors would
        not be comparable): checked per query, since long-term indexes may be loaded after
        the retriever is built."""
        if self.embedding is None:
            return False
        sources = [self.session] if self.session is not None else []
        if self.client is not None:
            sources += [self.client.loaded_index(name) for name in self.indexes]
        for index in sources:
            check_embedding(index, self.embedding)
        return True

    def _to_documents(self, hits: list[ContextHit]) -> list[Document]:
        return [
            Document(
                id=hit.doc.id,
                page_content=hit.doc.text,
                metadata={**hit.doc.metadata, self.source_metadata_key: hit.source},
            )
            for hit in hits
        ]

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: Optional[int] = None,
        filter: Optional[dict[str, Any]] = None,
        alpha: Optional[float] = None,
    ) -> list[Document]:
        overrides = self._overrides(filter, alpha)
        if self._check_embedding():
            overrides["embedding"] = self.embedding.embed_query(query)  # type: ignore[union-attr]
        return self._to_documents(self._context_search().search(query, self.k if k is None else k, **overrides))

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        k: Optional[int] = None,
        filter: Optional[dict[str, Any]] = None,
        alpha: Optional[float] = None,
    ) -> list[Document]:
        overrides = self._overrides(filter, alpha)
        if self._check_embedding():
            overrides["embedding"] = await self.embedding.aembed_query(query)  # type: ignore[union-attr]
        hits = await self._context_search().asearch(query, self.k if k is None else k, **overrides)
        return self._to_documents(hits)
