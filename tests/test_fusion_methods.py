"""Score fusion by z-scores, and every fusion method chosen per query (issue 28, item 4).

``tests/test_keyword.py`` checks rrf and min-max against their definitions; this checks
the z-score fusion the same way, and that ``QueryOptions(fusion=...)`` reaches the engine.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lichen import DocumentInfo, InvalidArgumentError, QueryOptions, SessionIndex
from lichen.engine.fusion import DEFAULT_FUSION, FUSION_CHOICES, fuse_rankings


def reference_zscore(vec: np.ndarray, kw: np.ndarray, candidates: np.ndarray, alpha: float, top_k: int):
    cand = sorted(set(candidates.tolist()))

    def standardise(x: np.ndarray) -> dict[int, float]:
        vals = np.array([float(x[r]) for r in cand])
        mean, std = (vals.mean(), vals.std()) if vals.size else (0.0, 0.0)
        return {r: (float(x[r]) - mean) / std if std > 0 else 0.0 for r in cand}

    zv, zk = standardise(vec), standardise(kw)
    fused = {r: alpha * zv[r] + (1 - alpha) * zk[r] for r in cand}
    order = sorted(fused, key=lambda r: (-fused[r], -vec[r], r))[:top_k]
    return order, np.array([fused[r] for r in order])


@settings(max_examples=100, deadline=None)
@given(
    n=st.integers(1, 200),
    alpha=st.sampled_from([0.0, 0.3, 0.7, 1.0]),
    top_k=st.integers(1, 30),
    seed=st.integers(0, 2**16),
)
def test_zscore_fusion_matches_its_definition(n: int, alpha: float, top_k: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    # Coarse values, so ties (and rankings whose scores are all equal) are common.
    vec = rng.choice([-0.5, 0.0, 0.25, 0.5, 0.9], n).astype(np.float32) + rng.random(n).astype(np.float32) * (seed % 2)
    kw = np.where(rng.random(n) < 0.4, rng.choice([1.0, 2.5, 7.0], n), 0.0).astype(np.float32)
    candidates = np.flatnonzero(rng.random(n) < 0.8)
    rows, scores = fuse_rankings(vec, kw, candidates, alpha, top_k, "zscore")
    want_rows, want_scores = reference_zscore(vec.astype(np.float64), kw.astype(np.float64), candidates, alpha, top_k)
    assert rows.tolist() == want_rows
    np.testing.assert_allclose(scores, want_scores, rtol=1e-9, atol=1e-12)


def _session() -> SessionIndex:
    """Unit vectors at these angles and these texts: at alpha 0.5 the three fusions order
    the six documents three different ways for the query "refund"."""
    session = SessionIndex("fusion", model_id="custom", dimension=2)
    rows = [
        ("a", "status refund shipping", 0.9),
        ("b", "policy password status", -0.53),
        ("c", "password refund", 0.89),
        ("d", "refund shipping", -0.82),
        ("e", "status", -0.41),
        ("f", "refund password password policy", -0.25),
    ]
    session.add_docs_sync([DocumentInfo(id=i, text=t, embedding=[np.cos(a), np.sin(a)]) for i, t, a in rows])
    return session


@pytest.mark.parametrize("fusion", FUSION_CHOICES)
def test_query_options_fusion_reaches_the_engine(fusion: str) -> None:
    session = _session()
    query = [1.0, 0.1]
    got = session.query_sync("refund", QueryOptions(top_k=5, alpha=0.5, fusion=fusion, embedding=query))
    vectors = session.core.get(None, None, include_embeddings=True)
    ids = [doc.id for doc in vectors]
    matrix = np.array([doc.embedding for doc in vectors], np.float32)
    unit = np.asarray(query, np.float32) / np.linalg.norm(query)
    keyword = session.core._keywords.scores("refund")  # built by the hybrid query above
    rows, scores = fuse_rankings(matrix @ unit, keyword, np.arange(len(ids)), 0.5, 5, fusion)
    assert len(rows) == 5
    assert [doc.id for doc in got.docs] == [ids[r] for r in rows]
    assert [doc.score for doc in got.docs] == pytest.approx(scores.tolist(), abs=1e-6)


def test_fusion_default_and_refusals() -> None:
    session = _session()
    options = {"top_k": 5, "alpha": 0.5, "embedding": [1.0, 0.1]}
    default = session.query_sync("refund", QueryOptions(**options))
    rrf = session.query_sync("refund", QueryOptions(**options, fusion="rrf"))
    assert DEFAULT_FUSION == "rrf" and [d.id for d in default.docs] == [d.id for d in rrf.docs]
    orders = {f: [d.id for d in session.query_sync("refund", QueryOptions(**options, fusion=f)).docs] for f in FUSION_CHOICES}
    assert orders == {
        "rrf": ["f", "c", "d", "a", "e"], "normalized": ["f", "c", "a", "d", "e"], "zscore": ["f", "c", "a", "e", "d"],
    }
    with pytest.raises(InvalidArgumentError, match="fusion"):
        session.query_sync("refund", QueryOptions(top_k=2, embedding=[1.0, 0.0], fusion="borda"))
    # Pure vector search ignores the fusion: same hits, cosine scores.
    pure = session.query_sync("refund", QueryOptions(top_k=2, embedding=[1.0, 0.0], fusion="zscore"))
    assert [d.id for d in pure.docs] == ["f", "e"] and pure.docs[0].score == pytest.approx(np.cos(-0.25))
