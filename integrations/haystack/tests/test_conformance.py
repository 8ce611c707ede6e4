"""Haystack's own document-store suites (``haystack.testing.document_store`` and
``document_store_async``), run against ``LichenDocumentStore``.

Two things are adapted to Lichen, both stated where they are done:

* ``filterable_docs``: Haystack's fixture gives documents random 768-d vectors; a store
  on the built-in 384-d model refuses those (a wrong dimension is an error in Lichen), so
  the same documents get random 384-d vectors instead. Every other field is Haystack's.
* ``assert_documents_are_equal``: Lichen stores vectors L2-normalised (scores are cosine
  similarities), and embeds documents written without a vector. So a returned
  ``embedding`` must be the written vector's unit vector, or, for a document written
  without one, the built-in model's vector of its text; every other field, and the
  order, must be exactly Haystack's expectation.

Not run, because they test aggregations Lichen has no call for (an adapter computing
them would be a query engine of its own): ``CountUniqueMetadataByFilterTest``,
``GetMetadataFieldsInfoTest``, ``GetMetadataFieldMinMaxTest``,
``GetMetadataFieldUniqueValuesTest`` and their async twins.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from haystack import Document
from haystack.document_stores.errors import DuplicateDocumentError
from haystack.testing.document_store import (
    CountDocumentsByFilterTest,
    DocumentStoreBaseExtendedTests,
    create_filterable_docs,
)
from haystack.testing.document_store_async import (
    CountDocumentsAsyncTest,
    CountDocumentsByFilterAsyncTest,
    DeleteAllAsyncTest,
    DeleteByFilterAsyncTest,
    DeleteDocumentsAsyncTest,
    FilterDocumentsAsyncTest,
    UpdateByFilterAsyncTest,
    WriteDocumentsAsyncTest,
)
from haystack_integrations.document_stores.lichen import LichenDocumentStore
from lichen import get_embedder

DIMENSION = 384


def lichen_vector(text: str) -> np.ndarray:
    """The built-in model's vector of ``text``: what the store computes for a document
    written without one."""
    return get_embedder("lichen-minilm").embed([text])[0]


class LichenStoreFixtures:
    @pytest.fixture
    def document_store(self, client) -> LichenDocumentStore:
        return LichenDocumentStore("conformance", client=client)

    @pytest.fixture
    def filterable_docs(self) -> list[Document]:
        """Haystack's filterable documents with 384-d vectors in place of 768-d ones;
        documents that shared a vector still share one."""
        rng = np.random.default_rng(0)
        replacements: dict[tuple[float, ...], list[float]] = {}
        return [
            doc
            if doc.embedding is None
            else dataclasses.replace(
                doc, embedding=replacements.setdefault(tuple(doc.embedding), rng.random(DIMENSION).tolist())
            )
            for doc in create_filterable_docs()
        ]

    @staticmethod
    def assert_documents_are_equal(received: list[Document], expected: list[Document]) -> None:
        assert [d.id for d in received] == [d.id for d in expected]
        for got, want in zip(received, expected):
            if want.embedding is not None:
                vector = np.asarray(want.embedding, dtype=np.float64)
                want_vector = vector / np.linalg.norm(vector)
            else:
                want_vector = lichen_vector(want.content)
            assert got.embedding is not None and len(got.embedding) == DIMENSION
            np.testing.assert_allclose(got.embedding, want_vector, atol=1e-5)
            assert dataclasses.replace(got, embedding=None) == dataclasses.replace(want, embedding=None)


class TestDocumentStore(LichenStoreFixtures, DocumentStoreBaseExtendedTests, CountDocumentsByFilterTest):
    def test_write_documents(self, document_store: LichenDocumentStore):
        """The default policy (``NONE``) is ``FAIL``, as in Haystack's in-memory store."""
        doc = Document(content="test doc")
        assert document_store.write_documents([doc]) == 1
        with pytest.raises(DuplicateDocumentError):
            document_store.write_documents([doc])
        self.assert_documents_are_equal(document_store.filter_documents(), [doc])


class TestDocumentStoreAsync(
    LichenStoreFixtures,
    CountDocumentsAsyncTest,
    WriteDocumentsAsyncTest,
    DeleteDocumentsAsyncTest,
    FilterDocumentsAsyncTest,
    DeleteAllAsyncTest,
    DeleteByFilterAsyncTest,
    UpdateByFilterAsyncTest,
    CountDocumentsByFilterAsyncTest,
):
    async def test_write_documents_async(self, document_store: LichenDocumentStore):
        doc = Document(content="test doc")
        assert await document_store.write_documents_async([doc]) == 1
        with pytest.raises(DuplicateDocumentError):
            await document_store.write_documents_async([doc])
        self.assert_documents_are_equal(await document_store.filter_documents_async(), [doc])
