"""SessionIndex behaviour: upsert, delete, get, query, custom embeddings, bad input."""

from __future__ import annotations

import asyncio
import math
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest

from lichen import (
    DocumentInfo,
    InvalidArgumentError,
    LimitExceededError,
    NotFoundError,
    QueryOptions,
    SessionIndex,
    StorageError,
)
from lichen._validation import as_vectors

TURNS = [
    DocumentInfo(id="turn-1", text="Customer reported a duplicate charge on their March invoice.", metadata={"speaker": "customer", "ts": 1}),
    DocumentInfo(id="turn-2", text="Agent confirmed the refund would arrive in 3-5 business days.", metadata={"speaker": "agent", "ts": 2}),
    DocumentInfo(id="turn-3", text="The customer also asked how to change the delivery address.", metadata={"speaker": "customer", "ts": 3}),
]


def state(session: SessionIndex):
    """Everything observable about a session, to prove a failed call changed nothing."""
    docs = session.get_docs_sync(include_embeddings=True)
    return [(d.id, d.text, d.metadata, d.embedding) for d in docs]


@pytest.fixture
def session() -> SessionIndex:
    s = SessionIndex("test")
    s.add_docs_sync(TURNS)
    return s


def custom_doc(doc_id: str, vector, **kwargs) -> DocumentInfo:
    return DocumentInfo(id=doc_id, text=kwargs.pop("text", doc_id), embedding=vector, **kwargs)


async def test_add_returns_added_and_updated_counts():
    s = SessionIndex("counts")
    assert await s.add_docs(TURNS[:2]) == (2, 0)
    assert await s.add_docs([TURNS[1], TURNS[2]]) == (1, 1)
    assert s.doc_count == 3


def test_upsert_replaces_text_metadata_and_vector(session):
    before = session.get_docs_sync(["turn-1"], include_embeddings=True)[0]
    session.add_docs_sync([DocumentInfo(id="turn-1", text="Totally different: the weather is sunny.", metadata={"v": 2})])
    after = session.get_docs_sync(["turn-1"], include_embeddings=True)[0]
    assert after.text.startswith("Totally different") and after.metadata == {"v": 2}
    assert not np.allclose(before.embedding, after.embedding)
    top = session.query_sync("sunny weather", QueryOptions(top_k=1, alpha=1.0)).docs[0]
    assert top.id == "turn-1"


def test_query_ranks_by_meaning_and_scores_are_cosines(session):
    result = session.query_sync("refund timeline", QueryOptions(top_k=3, alpha=1.0))
    assert [d.id for d in result.docs][0] == "turn-2"
    scores = [d.score for d in result.docs]
    assert scores == sorted(scores, reverse=True)
    # Queries run through the model's query encoder (int8 for the built-in model), stored
    # documents through the float model: the score is the cosine of those two vectors.
    expected = session.core.matrix @ session.embed_query("refund timeline")
    assert math.isclose(result.docs[0].score, float(expected.max()), rel_tol=1e-5)
    assert result.index_name == "test" and result.time_taken_ms >= 0


def test_top_k_larger_than_index_and_zero(session):
    assert len(session.query_sync("anything", QueryOptions(top_k=50)).docs) == 3
    assert session.query_sync("anything", QueryOptions(top_k=0)).docs == []


def test_filters_restrict_results(session):
    result = session.query_sync("refund", QueryOptions(top_k=5, filter={"speaker": "customer"}))
    assert {d.id for d in result.docs} == {"turn-1", "turn-3"}  # loose filter: one matvec, then mask
    sparse = session.query_sync("refund", QueryOptions(top_k=5, filter={"speaker": "agent"}))
    assert [d.id for d in sparse.docs] == ["turn-2"]  # selective filter: gathered rows only
    unfiltered = {d.id: d.score for d in session.query_sync("refund", QueryOptions(top_k=5)).docs}
    assert all(math.isclose(d.score, unfiltered[d.id], rel_tol=1e-6) for d in result.docs + sparse.docs)
    seed_form = {"field": "ts", "condition": {"$gte": 2}}
    assert {d.id for d in session.get_docs_sync(filter=seed_form)} == {"turn-2", "turn-3"}
    assert session.query_sync("refund", QueryOptions(filter={"speaker": "nobody"})).docs == []


def test_delete_and_get(session):
    assert session.delete_docs_sync(["turn-1", "missing"]) == 1
    assert [d.id for d in session.get_docs_sync()] == ["turn-2", "turn-3"]
    assert [d.id for d in session.get_docs_sync(["turn-3", "turn-1", "turn-2"])] == ["turn-3", "turn-2"]
    assert all(d.id != "turn-1" for d in session.query_sync("duplicate charge", QueryOptions(top_k=5)).docs)


def test_empty_session_queries_return_nothing():
    assert SessionIndex("empty").query_sync("hello").docs == []


def test_hybrid_scores_are_sorted_and_carry_components(session):
    result = session.query_sync("delivery address", QueryOptions(top_k=3, alpha=0.5))
    scores = [d.score for d in result.docs]
    assert scores == sorted(scores, reverse=True)
    assert result.docs[0].id == "turn-3"
    assert all(d.vector_score is not None and d.keyword_score is not None for d in result.docs)
    keyword_only = session.query_sync("delivery address", QueryOptions(top_k=3, alpha=0.0))
    assert keyword_only.docs[0].id == "turn-3"


def test_pure_keyword_search_returns_only_documents_sharing_a_term(session):
    hits = session.query_sync("invoice", QueryOptions(top_k=3, alpha=0.0)).docs
    assert [h.id for h in hits] == ["turn-1"] and hits[0].keyword_score > 0
    assert session.query_sync("xylophone", QueryOptions(top_k=3, alpha=0.0)).docs == []


def test_hybrid_index_follows_updates_and_deletes(session):
    session.query_sync("invoice", QueryOptions(alpha=0.0))  # builds the keyword index
    session.add_docs_sync([DocumentInfo(id="turn-4", text="zebra crossing near the warehouse")])
    assert session.query_sync("zebra", QueryOptions(top_k=1, alpha=0.0)).docs[0].id == "turn-4"
    session.delete_docs_sync(["turn-4"])
    assert all(d.id != "turn-4" for d in session.query_sync("zebra", QueryOptions(top_k=5, alpha=0.0)).docs)


def test_metadata_round_trips_with_types():
    s = SessionIndex("types")
    metadata = {"n": 1, "f": 1.5, "b": True, "s": "x", "none": None, "tags": ["a", "b"], "mixed": [1, "a", False]}
    s.add_docs_sync([DocumentInfo(id="a", text="t", metadata=metadata)])
    got = s.get_docs_sync()[0].metadata
    assert got == metadata and type(got["n"]) is int and type(got["b"]) is bool
    got["tags"].append("mutated")
    assert s.get_docs_sync()[0].metadata["tags"] == ["a", "b"]


def test_custom_embeddings_are_used_and_normalised():
    s = SessionIndex("custom", model_id="custom")
    s.add_docs_sync([custom_doc("x", [1.0, 0.0, 0.0]), custom_doc("y", [0.0, 3.0, 0.0])])
    assert s.dimension == 3
    hits = s.query_sync("ignored", QueryOptions(top_k=2, embedding=[0.0, 1.0, 0.0])).docs
    assert [h.id for h in hits] == ["y", "x"] and math.isclose(hits[0].score, 1.0, rel_tol=1e-6)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ([custom_doc("z", [1.0, 2.0])], "dimension 2 does not match the index dimension 3"),
        ([custom_doc("z", [1.0, float("nan"), 0.0])], "NaN or infinity"),
        ([custom_doc("z", [1.0, float("inf"), 0.0])], "NaN or infinity"),
        ([custom_doc("z", [1.0, 0.0, 0.0]), custom_doc("z", [0.0, 1.0, 0.0])], "duplicate ids in one batch"),
        ([DocumentInfo(id=5, text="t", embedding=[1.0, 0.0, 0.0])], "id must be a non-empty string"),
        ([DocumentInfo(id="", text="t", embedding=[1.0, 0.0, 0.0])], "id must be a non-empty string"),
        ([DocumentInfo(id="q", text="no vector")], "has no embedding"),
        ([custom_doc("z", [1.0, 0.0, 0.0], metadata={"bad": {"nested": {1, 2}}})], "values must be str, int"),
        ([custom_doc("ok", [1.0, 0.0, 0.0]), custom_doc("z", [1.0, 2.0])], "dimension 2"),
    ],
)
def test_bad_custom_batches_raise_and_change_nothing(bad, message):
    s = SessionIndex("custom", model_id="custom")
    s.add_docs_sync([custom_doc("x", [1.0, 0.0, 0.0], metadata={"k": 1})])
    before = state(s)
    with pytest.raises(InvalidArgumentError, match=message):
        s.add_docs_sync(bad)
    assert state(s) == before


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_a_float32_query_vector_with_nan_or_infinity_is_refused(bad):
    # float32 arrays take as_vectors' one-dot-product path: it must refuse what the
    # general path refuses.
    s = SessionIndex("custom", model_id="custom")
    s.add_docs_sync([custom_doc("x", [1.0, 0.0, 0.0])])
    with pytest.raises(InvalidArgumentError, match="NaN or infinity"):
        s.query_sync("ignored", QueryOptions(embedding=np.array([1.0, bad, 0.0], dtype=np.float32)))


@pytest.mark.parametrize("scale", [1.0, 1e-3, 1e12, 1e-14, 1e-30, 1e37])
def test_a_float32_query_vector_is_normalised_like_any_other_input(scale):
    vector = (np.random.default_rng(3).standard_normal(8) * scale).astype(np.float32)
    fast, general = as_vectors(vector, 8, "query"), as_vectors(vector.tolist(), 8, "query")
    np.testing.assert_allclose(fast, general, rtol=1e-6, atol=1e-7)
    assert fast.dtype == np.float32 and fast.shape == (1, 8)
    assert math.isclose(float(np.linalg.norm(fast)), 1.0, rel_tol=1e-6)


def test_an_all_zero_vector_is_refused_on_both_paths():
    for vector in (np.zeros(8, np.float32), [0.0] * 8):
        with pytest.raises(InvalidArgumentError, match="query is all zeros"):
            as_vectors(vector, 8, "query")


def test_search_hits_own_their_metadata():
    # Flat metadata is copied in one step, nested metadata value by value: either way a
    # caller editing a hit cannot reach the stored document.
    s = SessionIndex("custom", model_id="custom")
    s.add_docs_sync([
        custom_doc("flat", [1.0, 0.0, 0.0], metadata={"k": 1, "s": "a"}),
        custom_doc("nested", [0.9, 0.1, 0.0], metadata={"k": 2, "tags": ["a"], "inner": {"x": [1]}}),
    ])
    for hit in s.query_sync("ignored", QueryOptions(top_k=2, embedding=[1.0, 0.0, 0.0])).docs:
        hit.metadata["k"] = 99
        hit.metadata.get("tags", []).append("b")
        hit.metadata.get("inner", {}).get("x", []).append(2)
    stored = {doc.id: doc.metadata for doc in s.get_docs_sync(["flat", "nested"])}
    assert stored == {"flat": {"k": 1, "s": "a"}, "nested": {"k": 2, "tags": ["a"], "inner": {"x": [1]}}}


def test_oversized_document_is_refused_and_index_unchanged(session):
    before = state(session)
    with pytest.raises(LimitExceededError, match="split it into chunks"):
        session.add_docs_sync([DocumentInfo(id="big", text="x" * (1 << 20 + 1))])
    assert state(session) == before


def test_bad_query_arguments_are_clear(session):
    with pytest.raises(InvalidArgumentError, match="unknown operator"):
        session.query_sync("x", QueryOptions(filter={"ts": {"$foo": 1}}))
    with pytest.raises(InvalidArgumentError, match="dimension 3 does not match"):
        session.query_sync("x", QueryOptions(embedding=[1.0, 2.0, 3.0]))
    with pytest.raises(InvalidArgumentError, match="alpha"):
        session.query_sync("x", QueryOptions(alpha=1.5))
    with pytest.raises(InvalidArgumentError, match="top_k"):
        session.query_sync("x", QueryOptions(top_k=-1))
    custom = SessionIndex("c", model_id="custom")
    with pytest.raises(InvalidArgumentError, match="must pass QueryOptions"):
        custom.query_sync("x")


def test_errors_are_value_errors_for_seed_compatibility():
    assert issubclass(InvalidArgumentError, ValueError)


def test_save_and_open_round_trip(tmp_path, session):
    path = tmp_path / "s.lix"
    session.save(path)
    reopened = SessionIndex.open(path)
    assert state(reopened) == state(session)
    assert reopened.query_sync("refund timeline").docs[0].id == "turn-2"


def test_concurrent_writers_and_readers_keep_the_index_consistent():
    s = SessionIndex("threads", model_id="custom")
    rng = np.random.default_rng(0)
    errors: list[BaseException] = []

    def writer(worker: int) -> None:
        try:
            for i in range(50):
                s.add_docs_sync([custom_doc(f"{worker}-{i}", rng.normal(size=8).tolist())])
                if i % 5 == 0:
                    s.delete_docs_sync([f"{worker}-{i - 1}"])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def reader() -> None:
        try:
            for _ in range(100):
                hits = s.query_sync("x", QueryOptions(top_k=3, embedding=np.ones(8).tolist())).docs
                assert len(hits) <= 3 and len({hit.id for hit in hits}) == len(hits)
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(3)] + [threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    ids = [d.id for d in s.get_docs_sync()]
    assert len(ids) == len(set(ids)) == s.doc_count
    assert s.core.matrix.shape == (s.doc_count, 8)


async def test_async_faces_do_not_block_each_other():
    s = SessionIndex("async")
    docs = [DocumentInfo(id=f"d{i}", text=f"document number {i} about topic {i % 7}") for i in range(40)]
    added, _ = await s.add_docs(docs)
    results = await asyncio.gather(*(s.query(f"topic {i}") for i in range(5)))
    assert added == 40 and all(len(r.docs) == 5 for r in results)


def test_resumed_read_only_matrix_is_copied_on_first_write(tmp_path):
    """A loaded index adopts its stored matrix without copying (it may be memory-mapped
    and read-only); the first upsert, delete or add must copy, never write through."""
    from lichen.format import IndexSnapshot

    vectors = np.eye(4, dtype=np.float32)
    vectors.flags.writeable = False
    snapshot = IndexSnapshot(
        name="ro", model_id="custom", dimension=4, ids=["a", "b", "c", "d"], texts=list("abcd"),
        metadata=[{"n": i} for i in range(4)], matrix=vectors,
    )
    for change in (
        lambda s: s.add_docs_sync([custom_doc("a", [0.0, 1.0, 0.0, 0.0])]),  # update in place
        lambda s: s.delete_docs_sync(["b"]),
        lambda s: s.add_docs_sync([custom_doc("e", [1.0, 1.0, 0.0, 0.0])]),
    ):
        session = SessionIndex.from_snapshot(snapshot)
        change(session)
        assert np.array_equal(vectors, np.eye(4, dtype=np.float32))
    session = SessionIndex.from_snapshot(snapshot)
    assert [d.id for d in session.get_docs_sync(filter={"n": {"$gte": 2}})] == ["c", "d"]
    session.add_docs_sync([custom_doc("a", [0.0, 0.0, 0.0, 1.0], metadata={"n": 9})])
    assert [d.id for d in session.get_docs_sync(filter={"n": {"$gte": 2}})] == ["a", "c", "d"]
    hits = session.query_sync("", QueryOptions(top_k=2, embedding=[0.0, 0.0, 0.0, 1.0])).docs
    assert [h.id for h in hits] == ["a", "d"]  # equal scores: insertion order breaks the tie


def test_integers_beyond_64_bits_are_refused_before_they_can_block_a_push(session):
    before = state(session)
    for bad in ({"n": 2**64}, {"n": -(2**63) - 1}, {"ns": [1, 2**70]}):
        with pytest.raises(InvalidArgumentError, match="does not fit in 64 bits"):
            session.add_docs_sync([DocumentInfo(id="big", text="t", metadata=bad)])
    assert state(session) == before
    session.add_docs_sync([DocumentInfo(id="edge", text="t", metadata={"lo": -(2**63), "hi": 2**64 - 1})])
    session.save(Path(tempfile.mkdtemp()) / "edge.lix")


def test_file_errors_are_lichen_errors(tmp_path, session):
    with pytest.raises(NotFoundError, match="no index file"):
        SessionIndex.open(tmp_path / "missing.lix")
    with pytest.raises(StorageError, match="cannot save index"):
        session.save(tmp_path / "no-such-dir" / "x.lix")


async def test_async_faces_run_off_the_event_loop_thread(session, monkeypatch):
    loop_thread = threading.get_ident()
    seen: list[int] = []
    core = session.core
    for name in ("upsert", "delete", "get", "search"):
        original = getattr(core, name)

        def spy(*args, _original=original, **kwargs):
            seen.append(threading.get_ident())
            return _original(*args, **kwargs)

        monkeypatch.setattr(core, name, spy)
    await session.add_docs([DocumentInfo(id="turn-9", text="one more turn")])
    await session.query("turn")
    await session.get_docs(filter={"speaker": "agent"})
    await session.delete_docs(["turn-9"])
    assert len(seen) == 4 and loop_thread not in seen


def test_apply_changes_deletes_then_upserts_in_one_step():
    from lichen.engine import IndexCore

    rng = np.random.default_rng(4)
    core = IndexCore()
    docs = [DocumentInfo(id=f"d{i}", text=f"t{i}") for i in range(5)]
    core.upsert(docs, rng.standard_normal((5, 8)).astype(np.float32))
    replacement = [DocumentInfo(id="d1", text="new one"), DocumentInfo(id="d9", text="nine")]
    core.apply_changes(["d0", "d2", "missing"], replacement, rng.standard_normal((2, 8)).astype(np.float32))
    assert [doc.id for doc in core.get()] == ["d1", "d3", "d4", "d9"]
    assert core.get(["d1"])[0].text == "new one"
    with pytest.raises(InvalidArgumentError):
        core.apply_changes(["d3"], [DocumentInfo(id="x", text="x")], np.full((1, 8), np.nan, dtype=np.float32))
    assert [doc.id for doc in core.get()] == ["d1", "d3", "d4", "d9"]  # bad vectors: nothing deleted either
