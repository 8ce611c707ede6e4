"""Keyword half of hybrid search: the analyzer, BM25 against a plain-Python reference
(also across append/replace/keep sequences), and rank fusion."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lichen._errors import InvalidArgumentError
from lichen.engine import keyword as keyword_module
from lichen.engine.fusion import DEFAULT_ALPHA, DEFAULT_FUSION, FUSION_METHODS, fuse_rankings
from lichen.engine.keyword import BM25_B, BM25_K1, KeywordIndex, analyze

# -- analyzer -----------------------------------------------------------------------------


def test_stemming_and_case() -> None:
    assert analyze("running") == ["run"]
    assert analyze("Running RUNS runner") == ["run", "run", "runner"]
    assert analyze("Cats") == analyze("cat") == ["cat"]


def test_accent_folding_composed_and_decomposed() -> None:
    assert analyze("Zürich café naïve") == ["zurich", "cafe", "naiv"]
    # Decomposed input (base letter + combining mark) folds to the same terms.
    assert analyze("Zu\u0308rich cafe\u0301 nai\u0308ve") == ["zurich", "cafe", "naiv"]
    assert analyze("ÉCOLE") == analyze("ecole")


def test_stop_words_dropped() -> None:
    assert analyze("the and of a to is") == []
    assert analyze("What is the capital of France?") == ["capit", "franc"]
    assert analyze("") == []
    assert analyze("   ...!?") == []


def test_tokenization_keeps_digits_and_splits_punctuation() -> None:
    assert analyze("born in 1709, died 1736") == ["born", "1709", "die", "1736"]
    assert analyze("foo_bar foo-bar e-mail") == ["foo", "bar", "foo", "bar", "e", "mail"]
    assert analyze("ﬁnance") == analyze("finance")  # NFKD expands the ligature
    assert analyze("東京 tower") == ["東京", "tower"]  # non-Latin letters are word characters


# -- BM25 against a reference ---------------------------------------------------------------


# The documented parameters, written here rather than imported, so a change to the
# implementation's defaults shows up as a mismatch instead of moving the reference too.
REFERENCE_K1 = 1.2
REFERENCE_B = 0.75


def reference_bm25(texts: list[str], query: str, *, k1: float = REFERENCE_K1, b: float = REFERENCE_B) -> np.ndarray:
    """Textbook BM25, one document at a time."""
    docs = [Counter(analyze(t)) for t in texts]
    lengths = [sum(d.values()) for d in docs]
    n = len(docs)
    out = np.zeros(n)
    if n == 0:
        return out
    avgdl = sum(lengths) / n
    for term in analyze(query):
        df = sum(1 for d in docs if term in d)
        if df == 0:
            continue
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        for i, d in enumerate(docs):
            tf = d.get(term, 0)
            if tf:
                norm = k1 * (1 - b + b * lengths[i] / avgdl)
                out[i] += idf * tf * (k1 + 1) / (tf + norm)
    return out


def assert_matches_reference(index: KeywordIndex, texts: list[str], queries: list[str]) -> None:
    assert len(index) == len(texts)
    for q in queries:
        got = index.scores(q)
        assert got.dtype == np.float32 and got.shape == (len(texts),)
        np.testing.assert_allclose(got, reference_bm25(texts, q), rtol=1e-5, atol=1e-6)


WORDS = [
    "cat", "cats", "dog", "running", "runs", "the", "a", "of", "café", "cafe", "zürich",
    "paris", "river", "bank", "money", "1709", "quantum", "field", "fields", "apple",
]  # fmt: skip
texts_st = st.lists(st.sampled_from(WORDS), min_size=0, max_size=12).map(" ".join)
queries = ["cat", "running dogs", "the cafe in zürich", "bank money money", "nothing", "fields of apple 1709", ""]


def test_bm25_basic_example() -> None:
    texts = ["the cat sat", "dogs are running", "a running cat"]
    index = KeywordIndex(texts)
    assert_matches_reference(index, texts, queries + ["running cats"])
    scores = index.scores("running cats")
    assert scores[2] > scores[0] > 0 and scores[1] > 0


def test_defaults_are_the_documented_parameters() -> None:
    assert (BM25_K1, BM25_B) == (1.2, 0.75)
    index = KeywordIndex()
    assert (index.k1, index.b) == (1.2, 0.75)
    assert "``k1 = 1.2``, ``b = 0.75``" in keyword_module.__doc__


def test_bm25_hand_computed_scores() -> None:
    # N = 3 rows of 1, 2 and 3 terms: avgdl = 2. "cat" and "dog" are in 2 rows each:
    # idf = ln(1 + 1.5 / 2.5) = ln(1.6); "bird" in 1 row: idf = ln(1 + 2.5 / 1.5) = ln(8 / 3).
    # Length norms k1 * (1 - b + b * |d| / avgdl): 1.2 * 0.625 = 0.75 (|d| = 1),
    # 1.2 (|d| = 2), 1.2 * 1.375 = 1.65 (|d| = 3).
    index = KeywordIndex(["cat", "cat dog", "dog dog bird"])
    cat = index.scores("cat")
    assert cat.tolist() == pytest.approx([math.log(1.6) * 2.2 / 1.75, math.log(1.6), 0.0], rel=1e-6)
    assert cat.tolist() == pytest.approx([0.5908617, 0.4700036, 0.0], rel=1e-6)
    dog_bird = index.scores("dog bird")
    want = [0.0, math.log(1.6), math.log(1.6) * 2 * 2.2 / (2 + 1.65) + math.log(8 / 3) * 2.2 / (1 + 1.65)]
    assert dog_bird.tolist() == pytest.approx(want, rel=1e-6)
    assert dog_bird.tolist() == pytest.approx([0.0, 0.4700036, 1.3808531], rel=1e-6)


def test_bm25_custom_parameters_match_reference() -> None:
    texts = ["the cat sat", "dogs are running", "a running cat", "cat cat cat dog river bank"]
    index = KeywordIndex(texts, k1=2.0, b=0.3)
    for q in queries:
        np.testing.assert_allclose(index.scores(q), reference_bm25(texts, q, k1=2.0, b=0.3), rtol=1e-5, atol=1e-6)


def test_empty_index_and_unknown_terms() -> None:
    index = KeywordIndex()
    assert len(index) == 0
    assert index.scores("anything").shape == (0,)
    index.append(["", "the of and"])  # rows with no terms at all
    assert len(index) == 2
    assert index.scores("cat").tolist() == [0.0, 0.0]
    index.append(["cat"])
    assert_matches_reference(index, ["", "the of and", "cat"], queries)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_bm25_matches_reference_through_row_operations(data: st.DataObject) -> None:
    index = KeywordIndex()
    texts: list[str] = []
    for _ in range(data.draw(st.integers(1, 12), label="steps")):
        op = data.draw(st.sampled_from(["append", "append", "replace", "keep"]) if texts else st.just("append"))
        if op == "append":
            new = data.draw(st.lists(texts_st, min_size=0, max_size=6), label="append")
            index.append(new)
            texts.extend(new)
        elif op == "replace":
            positions = data.draw(st.lists(st.integers(0, len(texts) - 1), min_size=1, max_size=4), label="positions")
            new = data.draw(st.lists(texts_st, min_size=len(positions), max_size=len(positions)), label="replace")
            index.replace(positions, new)
            for p, t in zip(positions, new):  # a repeated position takes its last text
                texts[p] = t
        else:
            mask = np.array(data.draw(st.lists(st.booleans(), min_size=len(texts), max_size=len(texts)), label="mask"))
            index.keep(mask)
            texts = [t for t, m in zip(texts, mask) if m]
        assert_matches_reference(index, texts, queries)


def test_many_small_operations_merge_segments_correctly() -> None:
    rng = np.random.default_rng(7)

    def text() -> str:
        return " ".join(rng.choice(WORDS, size=rng.integers(0, 10)))

    index = KeywordIndex()
    texts: list[str] = []
    for step in range(300):
        if step % 3 == 2 and texts:
            pos = rng.integers(0, len(texts), size=2).tolist()
            new = [text(), text()]
            index.replace(pos, new)
            for p, t in zip(pos, new):
                texts[p] = t
        else:
            new = [text() for _ in range(rng.integers(1, 4))]
            index.append(new)
            texts.extend(new)
        if step % 50 == 49:
            mask = rng.random(len(texts)) < 0.9
            index.keep(mask)
            texts = [t for t, m in zip(texts, mask) if m]
    assert_matches_reference(index, texts, queries)
    assert len(index._segments) < 12  # geometric merging keeps the segment count logarithmic


def test_bulk_append_equals_incremental_appends() -> None:
    rng = np.random.default_rng(3)
    texts = [" ".join(rng.choice(WORDS, size=8)) for _ in range(200)]
    bulk = KeywordIndex(texts)
    incremental = KeywordIndex()
    for t in texts:
        incremental.append([t])
    for q in queries:
        np.testing.assert_allclose(bulk.scores(q), incremental.scores(q), rtol=1e-6)


def test_keep_everything_and_nothing() -> None:
    index = KeywordIndex(["cat dog", "dog"])
    index.keep(np.array([True, True]))
    assert_matches_reference(index, ["cat dog", "dog"], queries)
    index.keep(np.array([False, False]))
    assert len(index) == 0 and index.scores("dog").shape == (0,)
    index.append(["dog river"])
    assert_matches_reference(index, ["dog river"], queries)


def test_row_operation_errors() -> None:
    index = KeywordIndex(["a cat", "a dog"])
    with pytest.raises(InvalidArgumentError):
        index.replace([0, 1], ["x"])
    with pytest.raises(InvalidArgumentError):
        index.replace([2], ["x"])
    with pytest.raises(InvalidArgumentError):
        index.replace([-1], ["x"])
    with pytest.raises(InvalidArgumentError):
        index.keep(np.array([True]))
    with pytest.raises(InvalidArgumentError):
        index.keep(np.array([1, 0]))
    with pytest.raises(InvalidArgumentError):
        index.append([None])  # type: ignore[list-item]
    assert_matches_reference(index, ["a cat", "a dog"], queries)  # untouched by the failures


# -- fusion -------------------------------------------------------------------------------


def reference_fusion(
    vec: np.ndarray, kw: np.ndarray, candidates: np.ndarray, alpha: float, top_k: int, method: str, rrf_k: int = 30
) -> tuple[list[int], np.ndarray]:
    """Full sorts over the candidates, the documented definitions."""
    cand = sorted(set(candidates.tolist()))
    fused: dict[int, float] = {}
    if method == "rrf":
        window = max(100, 10 * top_k)
        by_vec = sorted(cand, key=lambda r: (-vec[r], r))[:window]
        by_kw = sorted((r for r in cand if kw[r] > 0), key=lambda r: (-kw[r], r))[:window]
        for rank, r in enumerate(by_vec, 1):
            fused[r] = fused.get(r, 0.0) + alpha / (rrf_k + rank)
        for rank, r in enumerate(by_kw, 1):
            fused[r] = fused.get(r, 0.0) + (1 - alpha) / (rrf_k + rank)
    else:

        def minmax(x: np.ndarray) -> dict[int, float]:
            vals = [float(x[r]) for r in cand]
            lo, hi = (min(vals), max(vals)) if vals else (0.0, 0.0)
            return {r: (float(x[r]) - lo) / (hi - lo) if hi > lo else (1.0 if hi > 0 else 0.0) for r in cand}

        nv, nk = minmax(vec), minmax(kw)
        fused = {r: alpha * nv[r] + (1 - alpha) * nk[r] for r in cand}
    order = sorted(fused, key=lambda r: (-fused[r], -vec[r], r))[:top_k]
    return order, np.array([fused[r] for r in order])


score_arrays = st.integers(1, 300).flatmap(
    lambda n: st.tuples(
        st.lists(st.sampled_from([-0.5, 0.0, 0.1, 0.25, 0.5, 0.9]) | st.floats(-1, 1, width=32), min_size=n, max_size=n),
        st.lists(st.just(0.0) | st.sampled_from([1.0, 2.5]) | st.floats(0, 20, width=32), min_size=n, max_size=n),
    )
)


@settings(max_examples=150, deadline=None)
@given(
    arrays=score_arrays,
    alpha=st.sampled_from([0.0, 0.3, 0.5, 0.7, 1.0]),
    top_k=st.integers(1, 40),
    method=st.sampled_from(FUSION_METHODS),
    data=st.data(),
)
def test_fusion_matches_reference(arrays, alpha, top_k, method, data) -> None:  # type: ignore[no-untyped-def]
    vec = np.array(arrays[0], np.float32)
    kw = np.array(arrays[1], np.float32)
    n = vec.shape[0]
    candidates = np.array(data.draw(st.lists(st.integers(0, n - 1), unique=True, max_size=n), label="candidates"), np.int64)
    rows, scores = fuse_rankings(vec, kw, candidates, alpha, top_k, method)
    want_rows, want_scores = reference_fusion(vec.astype(np.float64), kw.astype(np.float64), candidates, alpha, top_k, method)
    assert rows.tolist() == want_rows
    np.testing.assert_allclose(scores, want_scores, rtol=1e-9, atol=1e-12)
    assert set(rows.tolist()) <= set(candidates.tolist())
    assert np.all(np.diff(scores) <= 0)


def test_normalized_fusion_breaks_an_exact_tie_by_vector_score() -> None:
    # Best by vector (0.4746...) vs best by keyword, alpha 0.5: both fuse to exactly 0.5,
    # so the higher vector score wins. Scaling by a rounded reciprocal once made the
    # vector side 0.49999999999999994 and let the keyword row win (found by hypothesis).
    vec = np.full(40, -0.5, np.float32)
    kw = np.zeros(40, np.float32)
    vec[34], vec[5], kw[5] = 0.4746140241622925, 0.0, 1.0
    rows, scores = fuse_rankings(vec, kw, np.array([34, 5]), 0.5, 2, "normalized")
    assert rows.tolist() == [34, 5] and scores.tolist() == [0.5, 0.5]


def test_fusion_window_path_on_large_arrays() -> None:
    """Above the window size the pools are selected with argpartition; same answers."""
    rng = np.random.default_rng(11)
    n = 5_000
    vec = rng.standard_normal(n).astype(np.float32)
    vec[::50] = 0.5  # ties across the window boundary
    kw = np.where(rng.random(n) < 0.3, rng.integers(1, 6, n), 0).astype(np.float32)  # heavy ties
    candidates = np.flatnonzero(rng.random(n) < 0.6)
    for method in FUSION_METHODS:
        for alpha in (0.0, 0.6, 1.0):
            for top_k in (1, 10, 37):
                rows, scores = fuse_rankings(vec, kw, candidates, alpha, top_k, method)
                want_rows, want_scores = reference_fusion(vec.astype(np.float64), kw.astype(np.float64), candidates, alpha, top_k, method)
                assert rows.tolist() == want_rows, (method, alpha, top_k)
                np.testing.assert_allclose(scores, want_scores, rtol=1e-9)


@pytest.mark.parametrize("method", FUSION_METHODS)
def test_alpha_one_is_vector_order_and_alpha_zero_is_keyword_order(method: str) -> None:
    rng = np.random.default_rng(5)
    n = 2_000
    vec = rng.random(n).astype(np.float32)
    kw = np.where(rng.random(n) < 0.1, rng.random(n) * 10, 0).astype(np.float32)
    candidates = np.arange(n)
    rows, _ = fuse_rankings(vec, kw, candidates, 1.0, 20, method)
    assert rows.tolist() == np.argsort(-vec, kind="stable")[:20].tolist()
    rows, _ = fuse_rankings(vec, kw, candidates, 0.0, 20, method)
    assert rows.tolist() == np.argsort(-kw, kind="stable")[:20].tolist()
    matches = int((kw > 0).sum())
    rows, _ = fuse_rankings(vec, kw, candidates, 0.0, matches + 5, method)
    # Keyword matches first in keyword order, then the rest by vector score.
    assert rows[:matches].tolist() == np.argsort(-kw, kind="stable")[:matches].tolist()
    rest = rows[matches:]
    assert np.all(kw[rest] == 0) and np.all(np.diff(vec[rest]) <= 0)


def test_fusion_respects_candidates_and_edge_cases() -> None:
    vec = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    kw = np.array([0.0, 3.0, 0.0, 5.0], np.float32)
    rows, scores = fuse_rankings(vec, kw, np.array([3, 1, 2]), 0.3, 10, "rrf")
    # Unsorted candidates; row 0 is not one. Row 3: 1st by keyword, 3rd by vector.
    assert rows.tolist() == [3, 1, 2]
    assert scores.tolist() == pytest.approx([0.3 / 33 + 0.7 / 31, 0.3 / 31 + 0.7 / 32, 0.3 / 32])
    rows, _ = fuse_rankings(vec, kw, np.array([3, 1]), 0.5, 10, "rrf")
    assert rows.tolist() == [1, 3]  # equal fused scores: the higher vector score first
    assert fuse_rankings(vec, kw, np.array([], np.int64), 0.5, 5)[0].shape == (0,)
    assert fuse_rankings(vec, kw, np.arange(4), 0.5, 0)[0].shape == (0,)
    rows, _ = fuse_rankings(vec, None, np.arange(4), 0.5, 2)  # no keyword scores at all
    assert rows.tolist() == [0, 1]
    rows, scores = fuse_rankings(vec, np.zeros(4, np.float32), np.arange(4), 0.3, 4, "normalized")
    assert rows.tolist() == [0, 1, 2, 3] and scores[0] == pytest.approx(0.3) and scores[-1] == 0.0
    with pytest.raises(InvalidArgumentError):
        fuse_rankings(vec, kw, np.arange(4), 1.5, 3)
    with pytest.raises(InvalidArgumentError):
        fuse_rankings(vec, kw, np.arange(4), 0.5, 3, method="borda")


def test_fusion_ties_are_deterministic() -> None:
    vec = np.array([0.5, 0.5, 0.7, 0.5], np.float32)
    kw = np.zeros(4, np.float32)
    rows, _ = fuse_rankings(vec, kw, np.array([3, 0, 1, 2]), 0.0, 4, "rrf")
    assert rows.tolist() == [2, 0, 1, 3]  # all fused 0: higher vector score, then lower row


def test_defaults_are_valid() -> None:
    assert 0.0 <= DEFAULT_ALPHA <= 1.0
    assert DEFAULT_FUSION in FUSION_METHODS


def test_keyword_scores_feed_fusion() -> None:
    texts = ["paris is the capital of france", "a river bank", "money in the bank", "quantum field theory"]
    index = KeywordIndex(texts)
    vec = np.array([0.1, 0.2, 0.3, 0.4], np.float32)
    rows, _ = fuse_rankings(vec, index.scores("bank money"), np.arange(4), 0.0, 2)
    assert rows.tolist() == [2, 1]
