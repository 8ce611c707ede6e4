"""What both retrievers share: their configuration, its serialisation, and how one run
picks its filters and ``top_k``."""

from __future__ import annotations

from typing import Any

from haystack import default_from_dict, default_to_dict
from haystack.document_stores.types import FilterPolicy, apply_filter_policy
from haystack_integrations.document_stores.lichen import LichenDocumentStore


def check_store(document_store: Any) -> LichenDocumentStore:
    if not isinstance(document_store, LichenDocumentStore):
        raise TypeError(f"document_store must be a LichenDocumentStore, got {type(document_store).__name__}")
    return document_store


def check_top_k(top_k: int, *, minimum: int = 1) -> int:
    """A component's ``top_k`` must be positive; a run's may be 0 (no documents), as in
    Haystack's own retrievers."""
    if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < minimum:
        raise ValueError(f"top_k must be an integer of at least {minimum}, got {top_k!r}")
    return top_k


def run_arguments(
    policy: FilterPolicy,
    init_filters: dict[str, Any] | None,
    init_top_k: int,
    filters: dict[str, Any] | None,
    top_k: int | None,
) -> tuple[dict[str, Any] | None, int]:
    """The filters (``REPLACE``: run-time ones win; ``MERGE``: both apply) and ``top_k``
    (run time, else the component's) for one run."""
    return apply_filter_policy(policy, init_filters, filters), check_top_k(
        init_top_k if top_k is None else top_k, minimum=0
    )


class RetrieverBase:
    """Configuration shared by :class:`LichenEmbeddingRetriever` and :class:`LichenBM25Retriever`."""

    def __init__(
        self,
        document_store: LichenDocumentStore,
        filters: dict[str, Any] | None = None,
        top_k: int = 10,
        filter_policy: FilterPolicy | str = FilterPolicy.REPLACE,
        return_embedding: bool = False,
    ) -> None:
        self.document_store = check_store(document_store)
        self.filters = filters
        self.top_k = check_top_k(top_k)
        self.filter_policy = FilterPolicy.from_str(filter_policy) if isinstance(filter_policy, str) else filter_policy
        self.return_embedding = return_embedding

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(
            self,
            document_store=self.document_store,
            filters=self.filters,
            top_k=self.top_k,
            filter_policy=self.filter_policy.value,
            return_embedding=self.return_embedding,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        return default_from_dict(cls, data)

    def _run_arguments(self, filters: dict[str, Any] | None, top_k: int | None) -> tuple[dict[str, Any] | None, int]:
        return run_arguments(self.filter_policy, self.filters, self.top_k, filters, top_k)
