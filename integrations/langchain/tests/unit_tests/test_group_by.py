"""LichenRetriever(group_by=...): one Document per source (LangChain's parent-document
pattern), k of them, with the source's matching chunks in order."""

from __future__ import annotations

import pytest
from langchain_lichen import LichenRetriever
from lichen import InvalidArgumentError, SessionIndex


def test_one_document_per_source(tmp_path):
    folder = tmp_path / "help"
    folder.mkdir()
    (folder / "refunds.md").write_text(
        "# Refunds\n\nRefunds go back to the card.\n\n## Timing\n\nRefunds take five business days.\n"
    )
    (folder / "shipping.md").write_text("# Shipping\n\nParcels ship within two days.\n")
    (folder / "returns.md").write_text("# Returns\n\nReturn items within 30 days for a refund.\n")
    index = SessionIndex("help")
    index.sync_folder_sync(folder)
    retriever = LichenRetriever(index=index, k=2, group_by="source")
    docs = retriever.invoke("how long does a refund take")
    assert [doc.id for doc in docs] == ["help/refunds.md", "help/returns.md"]
    assert docs[0].metadata["lichen_chunks"] == ["help/refunds.md#chunk-0000", "help/refunds.md#chunk-0001"]
    assert docs[0].page_content.index("go back to the card") < docs[0].page_content.index("five business days")
    assert docs[0].metadata["source"] == "help/refunds.md" and "chunk_index" not in docs[0].metadata
    chunks = LichenRetriever(index=index, k=2).invoke("how long does a refund take")
    assert len(chunks) == 2 and all("#chunk-" in doc.id and "lichen_chunks" not in doc.metadata for doc in chunks)
    with pytest.raises(InvalidArgumentError, match="group_by needs a dict filter"):
        retriever.invoke("refund", filter=lambda doc: True)
