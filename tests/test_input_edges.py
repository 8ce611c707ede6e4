"""Library input at the edges (issue 21, item 9): vectors whose squared norm under- or
overflows, invalid Unicode, options given as a dict. Each is either handled exactly or
refused with ``InvalidArgumentError`` before anything changes."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from lichen import DocumentInfo, InvalidArgumentError, QueryOptions, SessionIndex
from lichen.engine.core import IndexCore

DIM = 8
#: An ordinary direction; the tests scale it until the squares of its elements underflow
#: to 0 or overflow to infinity (small multiples: every scaled element stays exact).
DIRECTION = np.array([1.0, -2.0, 0.0, 3.0, 0.5, 0.0, -1.0, 4.0])
UNIT = DIRECTION / np.linalg.norm(DIRECTION)


def custom_session(*docs: DocumentInfo) -> SessionIndex:
    session = SessionIndex("edges", model_id="custom")
    session.add_docs_sync([DocumentInfo(id="anchor", text="anchor", embedding=np.eye(DIM)[0]), *docs])
    return session


def state(session: SessionIndex):
    return [(d.id, d.text, d.metadata, d.embedding) for d in session.get_docs_sync(include_embeddings=True)]


def as_given(scale: float, kind: str):
    """``DIRECTION * scale`` as a caller might hand it over."""
    values = DIRECTION * scale
    if kind == "list":
        return values.tolist()
    if kind == "float32":
        return values.astype(np.float32)
    return values  # float64 array


# ---------------------------------------------------------------------------- vectors
SCALES = {
    "list": [1e-30, 1e-200, 1e-320, 1e37, 1e38, 1e200],
    "float64": [1e-30, 1e-300, 1e38, 1e300],
    "float32": [1e-30, 2.0**-140, 1e19, 1e37],  # 2**-140: every element an exact subnormal float32
}
CASES = [(kind, scale) for kind, scales in SCALES.items() for scale in scales]


@pytest.mark.parametrize(("kind", "scale"), CASES)
def test_a_document_vector_too_small_or_large_to_square_is_stored_as_its_unit_vector(kind, scale):
    session = custom_session(DocumentInfo(id="edge", text="edge", embedding=as_given(scale, kind)))
    stored = np.array(session.get_docs_sync(["edge"], include_embeddings=True)[0].embedding)
    np.testing.assert_allclose(stored, UNIT, rtol=1e-6, atol=1e-7)
    hit = session.query_sync("", QueryOptions(top_k=1, embedding=UNIT.tolist())).docs[0]
    assert hit.id == "edge" and math.isclose(hit.score, 1.0, rel_tol=1e-6)


@pytest.mark.parametrize(("kind", "scale"), CASES)
def test_a_query_vector_too_small_or_large_to_square_finds_its_document(kind, scale):
    session = custom_session(DocumentInfo(id="edge", text="edge", embedding=UNIT.tolist()))
    hits = session.query_sync("", QueryOptions(top_k=2, embedding=as_given(scale, kind))).docs
    assert hits[0].id == "edge" and math.isclose(hits[0].score, 1.0, rel_tol=1e-6)
    assert math.isclose(hits[1].score, UNIT[0], rel_tol=1e-5)  # the anchor, e_0


def test_the_engine_normalises_each_row_of_a_batch_by_its_own_scale():
    # IndexCore takes whole batches (the session hands it the embedder's matrix): rows
    # needing the rescue sit between ordinary ones and each keeps its own direction.
    scales = [1.0, 1e-30, 1e37, 0.25, 1e-25]
    matrix = np.stack([DIRECTION * s for s in scales]).astype(np.float32)
    core = IndexCore(DIM)
    core.upsert([DocumentInfo(id=str(i), text="t") for i in range(len(scales))], matrix)
    np.testing.assert_allclose(core.matrix, np.tile(UNIT, (len(scales), 1)), rtol=1e-6, atol=1e-7)


def test_a_squared_norm_that_overflows_raises_no_floating_point_warning():
    # Under ``-W error`` numpy's "overflow encountered" RuntimeWarning would be an error.
    session = custom_session(DocumentInfo(id="edge", text="edge", embedding=UNIT.tolist()))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        session.add_docs_sync([DocumentInfo(id="huge", text="huge", embedding=(DIRECTION * 1e37).astype(np.float32))])
        hits = session.query_sync("", QueryOptions(top_k=1, embedding=(DIRECTION * 1e37).astype(np.float32))).docs
        IndexCore(DIM).upsert(
            [DocumentInfo(id="a", text="t"), DocumentInfo(id="b", text="t")],
            np.stack([DIRECTION, DIRECTION * 1e37]).astype(np.float32),
        )
    assert math.isclose(hits[0].score, 1.0, rel_tol=1e-6)


# ---------------------------------------------------------------------------- Unicode
LONE = "\udc80"  # what errors="surrogateescape" makes of the byte 0x80


def doc(doc_id="good", text="café 😀", metadata=None) -> DocumentInfo:
    return DocumentInfo(id=doc_id, text=text, metadata=metadata, embedding=UNIT.tolist())


@pytest.mark.parametrize(
    ("bad", "named"),
    [
        (doc(doc_id="id" + LONE), r"docs\[1\]\.id 'id\\udc80'"),
        (doc(text="caf" + LONE + "é"), "document 'good' text"),
        (doc(text="é" * 300_000 + LONE), "document 'good' text"),  # long enough for the size check
        (doc(metadata={"k" + LONE: 1}), r"metadata key 'k\\udc80'"),
        (doc(metadata={"user": {"n" + LONE: 1}}), r"metadata key 'user.n\\udc80'"),
        (doc(metadata={"speaker": "ag" + LONE}), "metadata 'speaker' value"),
        (doc(metadata={"tags": ["ok", "\ud83d"]}), "metadata 'tags' value"),  # half an emoji
        (doc(metadata={"user": {"name": LONE}}), "metadata 'user.name' value"),
    ],
    ids=["id", "text", "long-text", "metadata-key", "nested-key", "value", "list-item", "nested-value"],
)
def test_a_lone_surrogate_is_refused_by_add_docs_naming_where_and_nothing_changes(bad, named, tmp_path):
    session = custom_session()
    before = state(session)
    with pytest.raises(InvalidArgumentError, match=f"{named} is not valid Unicode: it holds the lone surrogate"):
        session.add_docs_sync([doc("first"), bad])
    assert state(session) == before
    # Valid non-ASCII text of every width is accepted, and what is accepted can be stored.
    session.add_docs_sync([doc("ünï-😀", "日本語のテキスト 😀", {"clé": "välue 😀", "tags": ["ß", "中"]})])
    session.save(tmp_path / "edges.lix")


@pytest.mark.parametrize("alpha", [1.0, 0.5, 0.0])
def test_a_lone_surrogate_in_a_query_text_is_refused(alpha):
    session = custom_session(doc())
    with pytest.raises(InvalidArgumentError, match="query text is not valid Unicode"):
        session.query_sync("caf" + LONE, QueryOptions(alpha=alpha, embedding=UNIT.tolist()))
    assert session.query_sync("café", QueryOptions(alpha=alpha, embedding=UNIT.tolist())).docs[0].id == "good"


# ---------------------------------------------------------------------------- options
def two_doc_session() -> SessionIndex:
    return custom_session(
        DocumentInfo(id="red", text="red apples", metadata={"colour": "red"}, embedding=UNIT.tolist()),
        DocumentInfo(id="blue", text="blue sky", metadata={"colour": "blue"}, embedding=(UNIT + 0.1).tolist()),
    )


async def test_query_options_may_be_a_dict_of_their_fields():
    session = two_doc_session()
    fields = {"top_k": 1, "filter": {"colour": "blue"}, "embedding": UNIT.tolist(), "include_text": False}
    expected = session.query_sync("", QueryOptions(**fields)).docs
    assert [(d.id, d.text) for d in expected] == [("blue", "")]
    assert session.query_sync("", fields).docs == expected
    assert (await session.query("", fields)).docs == expected
    assert session.query_sync("", {"embedding": UNIT.tolist()}).docs[0].id == "red"  # the rest defaulted


def test_a_query_through_the_client_takes_a_dict(tmp_path):
    from lichen import Client

    client = Client(home=tmp_path)
    client.create_index_sync("kb", [DocumentInfo(id="a", text="a", embedding=UNIT.tolist())], model_id="custom")
    client.load_index_sync("kb")
    assert [d.id for d in client.query_sync("kb", "", {"top_k": 1, "embedding": UNIT.tolist()}).docs] == ["a"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"k": 3}, r"unknown query options 'k' \(did you mean 'top_k'\?\); QueryOptions takes top_k, filter, alpha"),
        ({"top_k": 1, "fliter": {}, 7: 1}, r"unknown query options 'fliter' \(did you mean 'filter'\?\), 7;"),
        ({"similarity_top_k": 2}, r"'similarity_top_k' \(did you mean 'top_k'\?\)"),
        ([("top_k", 1)], "options must be a QueryOptions or a dict, got list"),
        ([], "options must be a QueryOptions or a dict, got list"),
        ("top_k=1", "options must be a QueryOptions or a dict, got str"),
    ],
    ids=["k", "typo-and-int-key", "llamaindex-name", "pairs", "empty-list", "string"],
)
def test_options_neither_a_query_options_nor_a_dict_of_its_fields_are_refused(options, message):
    session = two_doc_session()
    with pytest.raises(InvalidArgumentError, match=message):
        session.query_sync("", options)


# ---------------------------------------------------------------------------- zero vectors
@pytest.mark.parametrize(
    "zero",
    [[0.0] * DIM, np.zeros(DIM, np.float32), np.zeros(DIM), [-0.0] * DIM],
    ids=["list", "float32", "float64", "negative-zeros"],
)
@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_an_all_zero_query_vector_is_refused(zero, alpha):
    # It has no direction: every cosine would be 0 and the ranking meaningless.
    session = custom_session(DocumentInfo(id="edge", text="edge", embedding=UNIT.tolist()))
    with pytest.raises(InvalidArgumentError, match="QueryOptions.embedding is all zeros"):
        session.query_sync("edge", QueryOptions(alpha=alpha, embedding=zero))


@pytest.mark.parametrize(
    "zero",
    [[0.0] * DIM, np.zeros(DIM, np.float32), np.zeros(DIM), [-0.0] * DIM],
    ids=["list", "float32", "float64", "negative-zeros"],
)
def test_an_all_zero_document_vector_is_refused_naming_the_document_and_nothing_changes(zero):
    session = custom_session(DocumentInfo(id="edge", text="edge", embedding=UNIT.tolist()))
    before = state(session)
    for batch in (
        [DocumentInfo(id="new", text="t", embedding=UNIT.tolist()), DocumentInfo(id="zero", text="t", embedding=zero)],
        [DocumentInfo(id="edge", text="replaced", embedding=zero)],  # an update keeps the old vector
    ):
        with pytest.raises(InvalidArgumentError, match=f"document '{batch[-1].id}' embedding is all zeros"):
            session.add_docs_sync(batch)
        assert state(session) == before


def test_the_engine_refuses_a_batch_with_an_all_zero_row_naming_its_position():
    core = IndexCore(DIM)
    matrix = np.stack([DIRECTION, DIRECTION * 1e-30, np.zeros(DIM), DIRECTION]).astype(np.float32)
    with pytest.raises(InvalidArgumentError, match="vector 2 is all zeros"):
        core.upsert([DocumentInfo(id=str(i), text="t") for i in range(4)], matrix)
    assert len(core) == 0


def test_several_indexes_and_the_context_merge_take_options_as_a_dict():
    from lichen import Client, ContextSearch, SessionIndex

    client = Client()
    for name in ("a", "b"):
        client.create_index_sync(name, [DocumentInfo(id=f"{name}1", text="refunds arrive in five days")])
        client.load_index_sync(name)
    merged = client.query_many_sync(["a", "b"], "refund", {"top_k": 1})
    assert len(merged.docs) == 1
    with pytest.raises(InvalidArgumentError, match="'k'"):
        client.query_many_sync(["a", "b"], "refund", {"k": 1})
    session = SessionIndex("s")
    session.add_docs_sync([DocumentInfo(id="t1", text="the refund was confirmed")])
    search = ContextSearch(session, client, ["a"], k=2, options={"min_score": 0.0})
    assert search.options.min_score == 0.0
