"""Results by source (QueryOptions.group_by): one result per source with its best score,
its matching chunks in order and the metadata they share; top_k counts groups (more hits
are read until they fill); with filters, hybrid scores, score floors, sessions and loaded
indexes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from lichen import Client, DocumentInfo, InvalidArgumentError, QueryOptions, SessionIndex

DIM = 8
QUERY = [1.0] + [0.0] * (DIM - 1)


def vector(cosine: float, axis: int = 1) -> list[float]:
    """A unit vector whose cosine with QUERY is ``cosine``."""
    out = [0.0] * DIM
    out[0], out[axis] = cosine, math.sqrt(1.0 - cosine * cosine)
    return out


def chunk(source: str, index: int, cosine: float, text: str | None = None, **extra) -> DocumentInfo:
    meta = {"source": source, "chunk_index": index, "chunk_count": 99, "team": "docs", **extra}
    return DocumentInfo(id=f"{source}#chunk-{index:04d}", text=text or f"{source} part {index}", metadata=meta,
                        embedding=vector(cosine))


def custom_index(docs) -> SessionIndex:
    index = SessionIndex("grouped", model_id="custom", dimension=DIM)
    index.add_docs_sync(docs)
    return index


def grouped(index, top_k=3, **options):
    return index.query_sync("q", QueryOptions(top_k=top_k, embedding=QUERY, group_by="source", **options)).docs


def test_one_result_per_source_with_its_best_score_and_its_chunks_in_order():
    index = custom_index([
        chunk("a.md", 0, 0.50), chunk("a.md", 1, 0.90), chunk("a.md", 2, 0.70, locator_start=7),
        chunk("b.md", 0, 0.80), chunk("b.md", 1, 0.10),
        chunk("c.md", 0, 0.60),
    ])
    results = grouped(index, top_k=2)
    assert [(r.id, round(r.score, 4)) for r in results] == [("a.md", 0.9), ("b.md", 0.8)]
    a = results[0]
    assert [c.id for c in a.chunks] == ["a.md#chunk-0000", "a.md#chunk-0001", "a.md#chunk-0002"]  # by chunk_index
    assert [round(c.score, 2) for c in a.chunks] == [0.5, 0.9, 0.7]
    assert a.text == "a.md part 0\n\na.md part 1\n\na.md part 2"
    assert a.metadata == {"source": "a.md", "chunk_count": 99, "team": "docs"}  # shared; no chunk_index
    assert a.chunks[2].metadata["locator_start"] == 7 and a.index_name == a.chunks[0].index_name == "grouped"
    ungrouped = index.query_sync("q", QueryOptions(top_k=1, embedding=QUERY)).docs[0]
    assert ungrouped.id == "a.md#chunk-0001" and a.vector_score == ungrouped.vector_score == a.score
    assert index.query_sync("q", QueryOptions(top_k=2, embedding=QUERY)).docs[0].chunks is None  # not grouped


def test_top_k_counts_groups_and_more_hits_are_read_to_fill_them():
    docs = [chunk("big.md", i, 0.95 - i * 0.001) for i in range(60)]
    docs += [chunk("small.md", 0, 0.5), chunk("tiny.md", 0, 0.4), chunk("last.md", 0, 0.3)]
    index = custom_index(docs)
    asked = []
    search = index.core.search

    def spy(*args, top_k, **kwargs):
        asked.append(top_k)
        return search(*args, top_k=top_k, **kwargs)

    index.core.search = spy
    results = grouped(index, top_k=3)
    assert [r.id for r in results] == ["big.md", "small.md", "tiny.md"]
    assert len(results[0].chunks) == 60 and asked == [32, 63]  # 32 hits held one group: read again, wider
    asked.clear()
    assert [r.id for r in grouped(index, top_k=1)] == ["big.md"] and asked == [32]


def test_filters_hybrid_and_the_score_floor_apply_to_chunks():
    index = custom_index([
        chunk("a.md", 0, 0.9, "refund policy details", lang="en"), chunk("a.md", 1, 0.3, "refund timeline", lang="de"),
        chunk("b.md", 0, 0.8, "shipping", lang="de"), chunk("b.md", 1, 0.7, "refund by card", lang="de"),
    ])
    only_de = grouped(index, filter={"lang": "de"})
    assert [(r.id, [c.id for c in r.chunks]) for r in only_de] == [
        ("b.md", ["b.md#chunk-0000", "b.md#chunk-0001"]), ("a.md", ["a.md#chunk-0001"]),
    ]
    assert only_de[1].metadata["lang"] == "de" and round(only_de[1].score, 4) == 0.3
    floor = grouped(index, min_score=0.75)
    assert [(r.id, len(r.chunks)) for r in floor] == [("a.md", 1), ("b.md", 1)]
    hybrid = index.query_sync("refund", QueryOptions(top_k=5, embedding=QUERY, alpha=0.5, group_by="source")).docs
    flat = index.query_sync("refund", QueryOptions(top_k=10, embedding=QUERY, alpha=0.5)).docs
    best = {}
    for hit in flat:
        best.setdefault(hit.metadata["source"], hit.score)
    assert [(r.id, r.score) for r in hybrid] == sorted(best.items(), key=lambda item: -item[1])
    assert all(r.keyword_score is not None or any(c.keyword_score is not None for c in r.chunks) for r in hybrid)


def test_hits_without_the_field_stand_alone_and_nested_fields_group():
    index = custom_index([
        chunk("a.md", 0, 0.9), chunk("a.md", 1, 0.8),
        DocumentInfo(id="loose", text="no source", metadata={"kind": "note"}, embedding=vector(0.85)),
        DocumentInfo(id="n1", text="nested one", metadata={"doc": {"title": "T"}, "chunk_index": 1}, embedding=vector(0.2)),
        DocumentInfo(id="n2", text="nested two", metadata={"doc": {"title": "T"}, "chunk_index": 0}, embedding=vector(0.1)),
    ])
    results = grouped(index, top_k=5)
    assert [(r.id, len(r.chunks)) for r in results] == [("a.md", 2), ("loose", 1), ("n1", 1), ("n2", 1)]
    assert results[1].metadata == {"kind": "note"} and results[1].text == "no source"
    nested = index.query_sync("q", QueryOptions(top_k=5, embedding=QUERY, group_by="doc.title")).docs
    assert nested[-1].id == "T" and [c.id for c in nested[-1].chunks] == ["n2", "n1"]


def test_text_and_embeddings_controls_reach_the_chunks():
    index = custom_index([chunk("a.md", 0, 0.9), chunk("a.md", 1, 0.8)])
    bare = grouped(index, include_text=False, include_embeddings=True)[0]
    assert bare.text == "" and [c.text for c in bare.chunks] == ["", ""] and bare.embedding is None
    assert np.allclose(bare.chunks[0].embedding, vector(0.9), atol=1e-6)


def test_bad_group_options_are_refused():
    index = custom_index([chunk("a.md", 0, 0.9)])
    for options, message in (
        (dict(group_by=3), "group_by must be a metadata field name"),
        (dict(group_by=""), "group_by must be"),
        (dict(group_order="chunk_index"), "set group_by too"),
        (dict(group_by="source", rerank="some-model"), "group_by and rerank"),
    ):
        with pytest.raises(InvalidArgumentError, match=message):
            index.query_sync("q", QueryOptions(embedding=QUERY, **options))


async def test_files_synced_then_grouped_in_a_session_and_a_loaded_index(tmp_path):
    folder = tmp_path / "help"
    folder.mkdir()
    (folder / "refunds.md").write_text(
        "# Refunds\n\nRefunds go back to the card.\n\n## Timing\n\nRefunds take five business days.\n\n"
        "## Exceptions\n\nGift cards are refunded as store credit.\n"
    )
    (folder / "shipping.md").write_text("# Shipping\n\nParcels ship within two days.\n")
    (folder / "returns.md").write_text("# Returns\n\nReturn items within 30 days for a refund.\n")
    client = Client()
    session = await client.session("grouped-help")
    await session.sync_folder(folder)
    options = QueryOptions(top_k=2, group_by="source")
    results = (await session.query("how long does a refund take", options)).docs
    assert [r.id for r in results] == ["help/refunds.md", "help/returns.md"]
    assert [c.metadata["chunk_index"] for c in results[0].chunks] == [0, 1, 2]
    assert results[0].metadata["chunk_count"] == 3 and "chunk_index" not in results[0].metadata
    await session.push_index()
    await client.load_index("grouped-help")
    loaded = (await client.query("grouped-help", "how long does a refund take", options)).docs
    assert [(r.id, r.score, [c.id for c in r.chunks]) for r in loaded] == [
        (r.id, r.score, [c.id for c in r.chunks]) for r in results
    ]
    filtered = client.query_sync("grouped-help", "refund", QueryOptions(top_k=3, group_by="source",
                                                                       filter={"heading": {"$exists": True}}))
    assert all(c.metadata.get("heading") for r in filtered.docs for c in r.chunks)
