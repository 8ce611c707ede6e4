"""Lazy loading (format 3): a loaded index decodes documents row by row and reads graph
candidates' rows from the file, yet behaves exactly like one decoded whole; bad offsets
are refused; format-2 artifacts still load.

Vectors are seeded synthetic ones: these tests are about storage, not the model.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from server_helpers import with_offsets_changed

import lichen.engine.core as engine_module
import lichen.format.artifact as artifact_module
from lichen import Client, CorruptDataError, DocumentInfo, QueryOptions, SessionIndex
from lichen.engine.core import IndexCore
from lichen.format.artifact import FORMAT_VERSION, encode_artifact, read_artifact, read_manifest
from lichen.format.columns import EncodedColumn
from lichen.format.snapshot import IndexSnapshot

FIXTURES = Path(__file__).parent / "fixtures"
DIM = 16


def unit_vectors(count: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((count, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def make_snapshot(count: int = 40, name: str = "lazy") -> IndexSnapshot:
    return IndexSnapshot(
        name=name, model_id="custom", dimension=DIM,
        ids=[f"doc-{i}" if i % 5 else f"dóc \"{i}\", [x]" for i in range(count)],
        texts=[f"text {i}, with \"quotes\", commas and ünïcode 🌿" for i in range(count)],
        metadata=[{"n": i, "tags": ["a", "b,c"][: i % 3], "nested": {"k": i % 4}} if i % 7 else {} for i in range(count)],
        matrix=unit_vectors(count, seed=count),
    )


def hits(result) -> list[tuple[str, float]]:
    return [(hit.id, hit.score) for hit in result]


@pytest.fixture(autouse=True)
def read_rows_with_pread(monkeypatch):
    """Treat every artifact as big: rows and documents are read from the file."""
    monkeypatch.setattr(artifact_module, "PREAD_ABOVE_BYTES", 0)


@pytest.fixture
def artifact_path(tmp_path) -> Path:
    path = tmp_path / "lazy.lix"
    path.write_bytes(encode_artifact(make_snapshot()).to_bytes())
    return path


def test_lazy_columns_read_like_the_decoded_lists(artifact_path):
    eager = read_artifact(artifact_path)
    for source in (artifact_path, artifact_path.read_bytes()):
        lazy = read_artifact(source, lazy=True)
        for name in ("ids", "texts", "metadata"):
            column, expected = getattr(lazy, name), getattr(eager, name)
            assert isinstance(column, EncodedColumn) and isinstance(expected, list)
            assert len(column) == len(expected)
            assert [column[i] for i in range(len(column))] == expected
            assert column[-1] == expected[-1] and column[3:9:2] == expected[3:9:2]
            assert list(column) == expected and column == expected
            with pytest.raises(IndexError):
                column[len(expected)]
    assert read_artifact(artifact_path, lazy=True).file_matrix is not None
    assert read_artifact(artifact_path.read_bytes(), lazy=True).file_matrix is None  # no file to read from


def test_a_small_artifact_is_read_through_its_mapping(artifact_path, monkeypatch):
    monkeypatch.setattr(artifact_module, "PREAD_ABOVE_BYTES", artifact_path.stat().st_size)
    snapshot = read_artifact(artifact_path, lazy=True)
    assert snapshot.file_matrix is None and isinstance(snapshot.texts, EncodedColumn)
    assert list(snapshot.texts) == read_artifact(artifact_path).texts
    monkeypatch.setattr(artifact_module, "PREAD_ABOVE_BYTES", artifact_path.stat().st_size - 1)
    assert read_artifact(artifact_path, lazy=True).file_matrix is not None


def test_file_matrix_rows_equal_the_matrix(artifact_path):
    snapshot = read_artifact(artifact_path, lazy=True)
    rows = np.array([7, 0, 39, 7, 12])
    assert np.array_equal(snapshot.file_matrix.rows(rows), np.asarray(snapshot.matrix)[rows])
    with pytest.raises(IndexError):
        snapshot.file_matrix.rows(np.array([40]))


def test_a_lazily_loaded_core_answers_and_writes_like_a_decoded_one(artifact_path, monkeypatch):
    monkeypatch.setattr(engine_module, "APPROXIMATE_THRESHOLD", 10)  # the graph path, reading rows by pread
    lazy = IndexCore.from_snapshot(read_artifact(artifact_path, lazy=True))
    eager = IndexCore.from_snapshot(read_artifact(artifact_path))
    assert lazy._vectors.file is not None
    queries = unit_vectors(8, seed=99)
    for query in queries:
        for options in ({}, {"filter": {"n": {"$gte": 10}}}, {"alpha": 0.5}, {"filter": {"$document": {"$contains": "1"}}}):
            assert hits(lazy.search(query, "text 12 commas", top_k=5, **options)) == hits(
                eager.search(query, "text 12 commas", top_k=5, **options)
            )
    assert lazy.get(["doc-3", 'dóc "5", [x]'], include_embeddings=True) == eager.get(["doc-3", 'dóc "5", [x]'], include_embeddings=True)
    assert lazy.get(limit=7, offset=30) == eager.get(limit=7, offset=30)

    new = [DocumentInfo(id="doc-1", text="replaced"), DocumentInfo(id="fresh", text="new", metadata={"n": -1})]
    vectors = unit_vectors(2, seed=5)
    for core in (lazy, eager):
        assert core.upsert(new, vectors) == (1, 1)
        assert core.delete(["doc-2", "missing"]) == 1
    assert lazy._vectors.file is not None  # writes go beside the mapped rows: nothing is copied
    assert lazy.get() == eager.get()
    for query in queries:
        assert hits(lazy.search(query, "", top_k=5)) == hits(eager.search(query, "", top_k=5))


def test_a_loaded_index_reads_only_the_rows_it_re_ranks(tmp_path, monkeypatch):
    # Row reads are a loaded index's dearest query step: of the graph's candidates only
    # the best RERANK_FLOOR (or 4 x top_k, if more) are read and scored in float32.
    monkeypatch.setattr(engine_module, "APPROXIMATE_THRESHOLD", 10)
    path = tmp_path / "big.lix"
    snapshot = make_snapshot(300)
    path.write_bytes(encode_artifact(snapshot).to_bytes())
    core = IndexCore.from_snapshot(read_artifact(path, lazy=True))
    read_counts: list[int] = []
    read_rows = core._vectors.file.rows
    monkeypatch.setattr(core._vectors.file, "rows", lambda rows: read_counts.append(len(rows)) or read_rows(rows))
    query = unit_vectors(1, seed=7)[0]
    for top_k, expected in ((5, engine_module.RERANK_FLOOR), (30, 30 * engine_module.CANDIDATE_FACTOR)):
        read_counts.clear()
        found = core.search(query, "", top_k=top_k)
        assert read_counts == [expected] and len(found) == top_k
        for hit in found:  # scores stay exact cosines
            assert hit.score == pytest.approx(float(snapshot.matrix[snapshot.ids.index(hit.id)] @ query), abs=1e-6)


def mapped_kib(path: Path) -> int:
    """Resident KiB of this process's mappings of ``path`` (from /proc/self/smaps)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if re.match(r"[0-9a-f]+-[0-9a-f]+ ", line):  # a mapping's header line
            inside = line.rstrip().endswith(str(path))
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1])
    return total


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="reads Linux's /proc/self/smaps")
def test_a_loaded_graph_copied_to_apply_edits_leaves_no_mapped_pages_behind(tmp_path, monkeypatch):
    # Applying a server's graph edits copies the viewed graph into memory while the
    # matrix stays mapped; the graph pages usearch walked on load must not stay resident
    # next to the copy (at 1M documents: 640 MB twice).
    from lichen.server.service import merge_upsert

    monkeypatch.setattr(engine_module, "APPROXIMATE_THRESHOLD", 10)
    stored = IndexCore.from_snapshot(make_snapshot(3000)).snapshot("graph", "custom")
    added = IndexCore(approximate=False)
    added.upsert([DocumentInfo(id="new", text="t")], unit_vectors(1, seed=9))
    merged, _, _ = merge_upsert(stored, added.snapshot("graph", "custom"))
    path = tmp_path / "graph.lix"
    path.write_bytes(encode_artifact(merged).to_bytes())
    graph_kib = read_manifest(path).sections["graph"].length // 1024
    core = IndexCore.from_snapshot(read_artifact(path, lazy=True))
    before = mapped_kib(path)
    assert before >= graph_kib  # usearch walked the mapped graph on load
    core.prepare_graph()
    assert core.has_graph and mapped_kib(path) <= before - graph_kib * 0.9
    assert core.search(unit_vectors(1, seed=9)[0], "", top_k=1)[0].id == "new"


def test_a_loaded_index_pushed_again_round_trips(tmp_path):
    client = Client()
    vectors = unit_vectors(30, seed=3)
    docs = [DocumentInfo(id=f"d{i}", text=f"t{i}", metadata={"i": i}, embedding=v.tolist()) for i, v in enumerate(vectors)]
    client.create_index_sync("first", docs, model_id="custom")
    loaded = client.load_index_sync("first")
    assert isinstance(loaded.core._texts.base, EncodedColumn)
    loaded.save(tmp_path / "copy.lix")
    copy = SessionIndex.open(tmp_path / "copy.lix")
    assert copy.get_docs_sync() == client.load_index_sync("first").get_docs_sync()
    assert copy.get_docs_sync(["d4"])[0].metadata == {"i": 4}


def shift_inside_a_string(offsets: np.ndarray) -> None:
    offsets[1, 3] = offsets[1, 2] + len('"text 2,')  # texts: element 3 "starts" inside element 2


def swap_two_elements(offsets: np.ndarray) -> None:
    offsets[0, 1], offsets[0, 2] = offsets[0, 2], offsets[0, 1]


def truncate_the_last(offsets: np.ndarray) -> None:
    offsets[2, -1] -= 1


@pytest.mark.parametrize("change, problem", [
    (swap_two_elements, "ids section offsets are not ascending"),
    (truncate_the_last, "metadata section does not delimit a JSON array"),
])
def test_offsets_that_do_not_delimit_the_elements_are_refused_by_every_reader(change, problem):
    data = with_offsets_changed(encode_artifact(make_snapshot()).to_bytes(), change)
    for lazy in (False, True):
        with pytest.raises(CorruptDataError, match=problem):
            read_artifact(data, lazy=lazy)


def test_offsets_splitting_an_element_are_refused_by_the_verifying_reader_and_on_decode():
    snapshot = make_snapshot()
    assert snapshot.texts[2].startswith("text 2, with")
    data = with_offsets_changed(encode_artifact(snapshot).to_bytes(), shift_inside_a_string)
    with pytest.raises(CorruptDataError, match="texts section offsets do not match its elements"):
        read_artifact(data, strict=True)  # what a server runs on every upload
    assert read_artifact(data).texts[1] == snapshot.texts[1]  # a plain read checks the layout only
    lazy = read_artifact(data, lazy=True, verify=False)
    with pytest.raises(CorruptDataError, match="texts section element 2 is not valid JSON"):
        lazy.texts[2]


def test_a_format_2_artifact_still_loads_lazily_and_keeps_its_graph():
    # Written by the format-2 writer (commit 7e121e5): 120 docs with seed-2 vectors, doc-7
    # deleted, approximate=True so the graph was stored.
    vectors = np.random.default_rng(2).standard_normal((120, 16)).astype(np.float32)
    assert FORMAT_VERSION == 4 and read_manifest(FIXTURES / "format2.lix").format_version == 2
    for lazy in (False, True):
        snapshot = read_artifact(FIXTURES / "format2.lix", lazy=lazy)
        assert isinstance(snapshot.ids, list) and snapshot.file_matrix is None  # no offsets: decoded whole
        session = SessionIndex.from_snapshot(snapshot)
        session.approximate = True
        assert session.doc_count == 119 and session.core.has_graph
        for i in (0, 8, 119):
            top = session.query_sync("", QueryOptions(top_k=1, embedding=vectors[i].tolist())).docs[0]
            assert top.id == f"doc-{i}" and top.metadata["nested"] == {"k": i % 4}
        session.add_docs_sync([DocumentInfo(id="doc-7", text="back", embedding=vectors[7].tolist())])
        assert session.query_sync("", QueryOptions(top_k=1, embedding=vectors[7].tolist())).docs[0].text == "back"


def test_reading_many_rows_decodes_the_columns_whole(artifact_path, monkeypatch):
    monkeypatch.setattr(engine_module, "DECODE_WHOLE_ROWS", 5)
    lazy = IndexCore.from_snapshot(read_artifact(artifact_path, lazy=True))
    assert lazy.get(limit=3) == IndexCore.from_snapshot(read_artifact(artifact_path)).get(limit=3)
    assert isinstance(lazy._texts.base, EncodedColumn)  # three rows: decoded one by one
    everything = lazy.get()
    assert isinstance(lazy._texts.base, list) and everything == IndexCore.from_snapshot(read_artifact(artifact_path)).get()


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts open descriptors in /proc")
def test_loading_and_dropping_indexes_leaks_no_file_descriptors(artifact_path):
    def open_descriptors() -> int:
        return len(list(Path("/proc/self/fd").iterdir()))

    IndexCore.from_snapshot(read_artifact(artifact_path, lazy=True))
    before = open_descriptors()
    for _ in range(50):
        core = IndexCore.from_snapshot(read_artifact(artifact_path, lazy=True))
        core.search(unit_vectors(1, seed=1)[0], "", top_k=3)
        del core
    assert open_descriptors() <= before + 1


def test_a_lazily_read_snapshot_encodes_to_the_same_bytes(artifact_path):
    assert encode_artifact(read_artifact(artifact_path, lazy=True)).to_bytes() == artifact_path.read_bytes()


def test_a_lazily_read_snapshots_columns_become_lists_on_request(tmp_path):
    # Lazy columns are sequences, not lists: orjson refuses them, to_list() and
    # column_lists() give the lists an eager read holds.
    import orjson

    from lichen.format.artifact import read_artifact_file, write_artifact_file

    eager = IndexSnapshot(
        name="c", model_id="custom", dimension=2, ids=["a", "b"], texts=["x", "y"],
        metadata=[{"k": 1}, {}], matrix=np.eye(2, dtype=np.float32),
    )
    write_artifact_file(eager, tmp_path / "c.lix")
    lazy = read_artifact_file(tmp_path / "c.lix", lazy=True)
    with pytest.raises(TypeError):
        orjson.dumps(lazy.ids)
    assert lazy.ids.to_list() == ["a", "b"] and orjson.dumps(lazy.texts.to_list()) == b'["x","y"]'
    assert lazy.column_lists() == (["a", "b"], ["x", "y"], [{"k": 1}, {}])
    assert eager.column_lists()[0] is eager.ids
