"""Index files whose graph was crafted or damaged, with every checksum recomputed so the
format's integrity checks pass, never kill the process that loads them: the graph's whole
structure is proven before usearch maps it, a well-formed but wrong graph is caught by a
self-check and set aside, and a server refuses what its clients could not load.

Each artifact is loaded in a child process (:mod:`graph_probe`): before these checks, the
crafted graphs below killed the loading process with SIGSEGV.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from graph_probe import GraphBytes, ProbeWorker, assert_clean, probe_once
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from server_helpers import Deployment, auth, shared_moto, snapshot_of

from lichen import CorruptDataError, DocumentInfo, SessionIndex
from lichen.engine.core import IndexCore
from lichen.engine.graph import VectorGraph
from lichen.format.artifact import encode_artifact, read_artifact, verify_artifact, write_artifact_file
from lichen.format.graph_edits import GraphEdits
from lichen.format.graph_layout import read_graph_layout
from lichen.format.snapshot import IndexSnapshot
from lichen.stores.http import HttpStore
from lichen.stores.local import LocalStore

DIM = 16
DOCS = 3_000
SHIFT = 10**9


def clustered(count: int, seed: int) -> np.ndarray:
    centres = np.random.default_rng(0).standard_normal((200, DIM)).astype(np.float32)
    rng = np.random.default_rng(seed)
    vectors = centres[rng.integers(0, 200, count)] + 0.4 * rng.standard_normal((count, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def sound() -> IndexSnapshot:
    """A real graph-backed index: its snapshot, graph bytes as usearch wrote them."""
    core = IndexCore(approximate=True)
    core.upsert([DocumentInfo(id=f"d{i}", text=f"passage {i}") for i in range(DOCS)], clustered(DOCS, 1))
    snapshot = core.snapshot("g", "custom")
    assert snapshot.graph is not None
    return snapshot


def with_graph(snapshot: IndexSnapshot, graph: bytes | bytearray, **changes) -> IndexSnapshot:
    return dataclasses.replace(snapshot, graph=bytes(graph), **changes)


def written(tmp_path: Path, snapshot: IndexSnapshot, name: str = "crafted.lix") -> Path:
    """The artifact as a writer would store it: every checksum valid."""
    path = tmp_path / name
    write_artifact_file(snapshot, path)
    return path


# --------------------------------------------------------------------------- the table
# Each damage is done to every node (at level 0), as an attacker would: then no search can
# avoid it, and before these checks every load-and-query died.
def every_node(graph: GraphBytes) -> range:
    return range(graph.size)


def slot_far(graph: GraphBytes) -> None:
    for node in every_node(graph):
        graph.put_u32(graph.slot_at(node, 0), 0x7FFFFFF0)


def slot_one_past(graph: GraphBytes) -> None:
    for node in every_node(graph):
        graph.put_u32(graph.slot_at(node, 0), graph.size)


def count_above_cap(graph: GraphBytes) -> None:
    for node in every_node(graph):
        graph.put_u32(graph.count_at(node), 200)


def count_huge(graph: GraphBytes) -> None:
    for node in every_node(graph):
        graph.put_u32(graph.count_at(node), 0xFFFFFFF0)


def entry_far(graph: GraphBytes) -> None:
    graph.put_u64(graph.header_field("entry"), 10**9)


def upper_link_to_a_lower_node(graph: GraphBytes) -> None:
    # Level-1 neighbours that only exist on level 0: usearch reads their level-1 lists
    # past the end of their nodes.
    low = int(np.flatnonzero(graph.levels == 0)[-1])
    for node in np.flatnonzero(graph.levels >= 1).tolist():
        for index in range(graph.count(node, 1)):
            graph.put_u32(graph.slot_at(node, index, 1), low)


def node_level_disagrees(graph: GraphBytes) -> None:
    # The last node claims levels it has no bytes for: its lists run off the end.
    node = graph.size - 1
    graph.put_i16(int(graph.starts[node]) + 8, 3)


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (slot_far, "neighbour slot beyond"),
        (slot_one_past, "neighbour slot beyond"),
        (count_above_cap, "neighbours where at most"),
        (count_huge, "neighbours where at most"),
        (entry_far, "entry point"),
        (upper_link_to_a_lower_node, "level that node does not reach"),
        (node_level_disagrees, "level disagrees"),
    ],
)
def test_a_crafted_graph_is_refused_by_name_instead_of_killing_the_reader(tmp_path, sound, mutate, problem):
    graph = GraphBytes.parse(bytes(sound.graph))
    mutate(graph)
    path = written(tmp_path, with_graph(sound, graph.data))
    verify_artifact(path)  # every checksum is right: only the graph's content is wrong
    outcome = probe_once(path)
    assert outcome["outcome"] == "refused", outcome
    assert outcome["error"] == "CorruptDataError"
    assert "index 'g'" in outcome["message"] and problem in outcome["message"]


def test_a_graph_over_another_indexs_keys_is_refused(tmp_path, sound):
    # Same vectors, same count, keys shifted: every graph query used to come back empty.
    shifted = VectorGraph.build(np.asarray(sound.matrix), np.asarray(sound.keys) + SHIFT).to_bytes()
    outcome = probe_once(written(tmp_path, with_graph(sound, shifted)))
    assert outcome["outcome"] == "refused" and outcome["error"] == "CorruptDataError", outcome
    assert "keys the index does not" in outcome["message"]


def test_a_well_formed_graph_with_random_links_is_set_aside_and_queries_stay_exact(tmp_path, sound):
    graph = GraphBytes.parse(bytes(sound.graph))
    graph.randomise_links(seed=3)
    read_graph_layout(graph.data, DIM)  # structurally sound: only the self-check can tell
    outcome = probe_once(written(tmp_path, with_graph(sound, graph.data)))
    assert outcome["outcome"] == "answered", outcome
    assert outcome["fallback"] is not None and "self-check" in outcome["fallback"]
    assert outcome["graph"] == outcome["exact"]


def test_a_sound_graph_passes_every_check_and_answers_through_the_graph(tmp_path, sound):
    path = written(tmp_path, sound)
    outcome = probe_once(path)
    assert outcome["outcome"] == "answered" and outcome["fallback"] is None, outcome
    # In this process too: nothing set aside, the graph in use.
    core = IndexCore.from_snapshot(read_artifact(path, lazy=True), approximate=True)
    assert core.graph_fallback is None and core.has_graph


def test_the_self_check_draws_other_rows_each_time(sound):
    # A graph crafted to answer well only for rows known in advance must not pass: the
    # rows are drawn anew, at random, on every load.
    core = IndexCore.from_snapshot(sound, approximate=True)
    drawn: list[tuple[int, ...]] = []
    original = core._pool_rows

    def spy(positions):
        drawn.append(tuple(np.asarray(positions).tolist()))
        return original(positions)

    core._pool_rows = spy  # type: ignore[method-assign]
    graph = VectorGraph.from_buffer(sound.graph, DIM, keys=sound.keys)
    samples = set()
    for _ in range(3):
        drawn.clear()
        assert core._self_check(graph, GraphEdits.none()) is None
        samples.add(drawn[0])
    assert len(samples) == 3 and all(len(sample) == 24 for sample in samples)


def test_the_embedded_store_refuses_a_crafted_graph_under_lichen_home(tmp_path, sound):
    # The same bytes reached through Client().load_index, in a child process: a stored
    # index's file under LICHEN_HOME replaced by one whose graph was crafted.
    home = Path(os.environ["LICHEN_HOME"])
    LocalStore(home).write(sound)
    (stored,) = home.rglob("*.lix")
    graph = GraphBytes.parse(bytes(sound.graph))
    slot_far(graph)
    write_artifact_file(with_graph(sound, graph.data), stored)
    script = (
        "import lichen, numpy\n"
        "try:\n"
        "    index = lichen.Client().load_index_sync('g')\n"
        "    index.approximate = True\n"
        "    index.query_sync('x', lichen.QueryOptions(embedding=numpy.ones(16).tolist()))\n"
        "    print('answered')\n"
        "except lichen.LichenError as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert done.stdout.startswith("CorruptDataError") and "neighbour slot beyond" in done.stdout, done.stdout


# --------------------------------------------------------------------------- edits manifests
def test_graph_edits_that_cannot_be_applied_are_refused_at_load(tmp_path, sound):
    keys = np.asarray(sound.keys, dtype=np.uint64)
    cases = {
        "remove every key": {"graph_removals": keys.copy()},
        "insert a key the graph holds": {"graph_insertions": keys[:1].copy()},
        "insert a key the index lacks": {"graph_insertions": np.array([keys[-1] + 5], dtype=np.uint64)},
    }
    for label, fields in cases.items():
        outcome = probe_once(written(tmp_path, with_graph(sound, bytes(sound.graph), **fields), f"{len(label)}.lix"))
        assert outcome["outcome"] == "refused" and outcome["error"] == "CorruptDataError", (label, outcome)


# --------------------------------------------------------------------------- the server
@pytest.fixture(scope="module", params=["fs", "s3"])
def deployment(request, tmp_path_factory):
    moto = shared_moto() if request.param == "s3" else None
    deployed = Deployment(request.param, tmp_path_factory.mktemp(request.param), moto)
    yield deployed
    deployed.stop()


def server_cases(snapshot: IndexSnapshot) -> dict[str, IndexSnapshot]:
    keys = np.asarray(snapshot.keys, dtype=np.uint64)
    cases = {}
    for mutate in (slot_far, count_above_cap, entry_far, upper_link_to_a_lower_node):
        graph = GraphBytes.parse(bytes(snapshot.graph))
        mutate(graph)
        cases[mutate.__name__] = with_graph(snapshot, graph.data)
    shifted = VectorGraph.build(np.asarray(snapshot.matrix), keys + SHIFT).to_bytes()
    cases["shifted keys"] = with_graph(snapshot, shifted)
    cases["edits remove every key"] = with_graph(snapshot, bytes(snapshot.graph), graph_removals=keys.copy())
    cases["edits insert a held key"] = with_graph(snapshot, bytes(snapshot.graph), graph_insertions=keys[:1].copy())
    return cases


def test_a_server_refuses_graphs_its_clients_could_not_load_and_keeps_the_current_version(deployment):
    project = deployment.server.create_project()
    store = HttpStore(deployment.server.url, project.project_id, project.project_key, cache=False)
    plain = snapshot_of("g", 300, dim=DIM)
    good = IndexCore.from_snapshot(plain, approximate=True).snapshot("g", plain.model_id)
    assert store.write(good, expected_version=0).version == 1
    for label, crafted in server_cases(good).items():
        body = encode_artifact(crafted).to_bytes()
        for method, route in (("PUT", "artifact"), ("POST", "docs")):
            response = httpx.request(
                method, f"{deployment.server.url}/v1/indexes/g/{route}", headers=auth(project), content=body
            )
            assert response.status_code == 422, (label, method, response.status_code, response.text)
            assert "graph" in response.json()["error"]["message"], (label, response.text)
    assert store.get_info("g").version == 1
    loaded = IndexCore.from_snapshot(store.read("g"), approximate=True)
    assert loaded.has_graph and loaded.graph_fallback is None and len(loaded) == 300


# --------------------------------------------------------------------------- never a signal
FUZZ_EXAMPLES = int(os.environ.get("LICHEN_GRAPH_FUZZ_EXAMPLES", "300"))

_u32 = st.one_of(
    st.sampled_from([0, 1, 63, 64, 65, 200, 0x7FFFFFF0, 0xFFFFFFF0, 0xFFFFFFFF]), st.integers(0, 2**32 - 1)
)


@st.composite
def graph_mutations(draw, size: int):
    """One edit to a graph's bytes: a field write (in range or not), byte flips, a cut or
    a tail. About half keep the structure sound, so that usearch gets to walk them."""
    kind = draw(st.sampled_from([
        "slot", "slot_in_range", "count", "count_within", "header", "level", "node_level", "flip",
        "vector_flip", "cut", "tail", "key",
    ]))
    node = draw(st.integers(0, size - 1))
    return kind, node, draw(_u32), draw(st.integers(0, 2**16)), draw(st.integers(0, 255))


def apply_mutation(graph: GraphBytes, mutation) -> bytes:
    """Apply ``mutation`` to ``graph`` in place; return the graph's bytes (cut or
    extended ones are a new length: apply nothing after them)."""
    kind, node, value, position, byte = mutation
    level = int(graph.levels[node]) if value % 2 else 0
    cap = graph.base if level == 0 else graph.connectivity
    if kind == "slot":
        graph.put_u32(graph.slot_at(node, value % 7, level), value if value % 3 else graph.size + value % 5)
    elif kind == "slot_in_range":
        graph.put_u32(graph.slot_at(node, position % max(1, graph.count(node)), 0), value % graph.size)
    elif kind == "count":
        graph.put_u32(graph.count_at(node, level), value)
    elif kind == "count_within":
        graph.put_u32(graph.count_at(node, level), value % (cap + 1))
    elif kind == "header":
        field = ("size", "connectivity", "base", "max_level", "entry")[position % 5]
        graph.put_u64(graph.header_field(field), value if position % 2 else value << 32)
    elif kind == "level":
        graph.put_i16(graph.levels_at + 2 * node, (value % 70) - 3)
    elif kind == "node_level":
        graph.put_i16(int(graph.starts[node]) + 8, (value % 70) - 3)
    elif kind == "key":
        graph.put_u64(int(graph.starts[node]), value if position % 3 else 2**64 - 1)
    elif kind in ("flip", "vector_flip"):
        span = 8 + graph.size * 16 if kind == "vector_flip" else len(graph.data)
        for offset in range(1 + byte % 8):
            at = (position * 7919 + offset * 104729 + value) % span
            graph.data[at] ^= 1 + (byte + offset) % 255
    elif kind == "cut":
        return bytes(graph.data[: (value % len(graph.data))])
    elif kind == "tail":
        return bytes(graph.data) + bytes([byte]) * (1 + position % 300)
    return bytes(graph.data)


@st.composite
def edit_lists(draw, keys: np.ndarray):
    """Pending edits: consistent ones (documents re-inserted after their removal, as a
    server writes for replaced documents) or any keys at all."""
    some = st.lists(st.sampled_from(keys.tolist()), max_size=40)
    if draw(st.booleans()):
        replaced = np.unique(np.asarray(draw(some), dtype=np.uint64))
        return replaced, replaced
    pick = st.lists(st.one_of(st.sampled_from(keys.tolist()), st.integers(0, int(keys[-1]) + 50)), max_size=40)
    return np.unique(np.asarray(draw(pick), dtype=np.uint64)), np.unique(np.asarray(draw(pick), dtype=np.uint64))


@pytest.fixture(scope="module")
def small() -> IndexSnapshot:
    core = IndexCore(approximate=True)
    core.upsert([DocumentInfo(id=f"s{i}", text=f"passage {i}") for i in range(400)], clustered(400, 2))
    return core.snapshot("g", "custom")


@pytest.fixture(scope="module")
def worker():
    with ProbeWorker(timeout=60) as probe:
        yield probe


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_no_mutation_of_a_graph_or_its_edits_kills_the_reader(tmp_path_factory, small, worker, data):
    graph = GraphBytes.parse(bytes(small.graph))
    keys = np.asarray(small.keys, dtype=np.uint64)
    raw = bytes(graph.data)
    for mutation in data.draw(st.lists(graph_mutations(graph.size), max_size=3), label="mutations"):
        raw = apply_mutation(graph, mutation)
        if len(raw) != len(graph.data):
            break  # cut short or extended: no field is where the parser put it any more
    fields = {}
    if data.draw(st.booleans(), label="edits"):
        removals, insertions = data.draw(edit_lists(keys), label="edit lists")
        fields = {"graph_removals": removals if len(removals) else None,
                  "graph_insertions": insertions if len(insertions) else None}
    if data.draw(st.booleans(), label="other keys"):
        fields["keys"] = keys + np.uint64(data.draw(st.sampled_from([1, 2, SHIFT]), label="shift"))
    path = tmp_path_factory.mktemp("fuzz") / "g.lix"
    write_artifact_file(with_graph(small, raw, **fields), path)
    outcome = worker.probe(path)
    if outcome["outcome"] == "answered":
        event("answered, graph set aside" if outcome["fallback"] else "answered through the graph")
    elif outcome["outcome"] == "refused":
        event("refused: " + " ".join(outcome["message"].split(": ")[-1].split()[:3]))
    assert_clean(outcome)
    if outcome["outcome"] == "answered" and outcome["fallback"] is not None:
        assert outcome["graph"] == outcome["exact"]  # set aside: the scan answers
    path.unlink()


def test_a_native_error_from_the_graph_library_is_a_corrupt_data_error_with_the_index_name(sound):
    graph = VectorGraph.from_buffer(sound.graph, DIM, keys=sound.keys, label="index 'g'")
    with pytest.raises(CorruptDataError, match="index 'g': graph could not take new documents"):
        graph.add(np.asarray(sound.keys[:1]), np.asarray(sound.matrix[:1]))  # a key it holds: usearch refuses


def test_a_graph_set_aside_is_reported_in_the_index_info_with_a_warning(tmp_path, sound):
    graph = GraphBytes.parse(bytes(sound.graph))
    graph.randomise_links(seed=5)
    path = written(tmp_path, with_graph(sound, graph.data))
    with pytest.warns(RuntimeWarning, match="self-check"):
        index = SessionIndex.open(path)
    info = index.info()
    assert info.doc_count == DOCS and info.graph_fallback is not None and "self-check" in info.graph_fallback
    assert SessionIndex.open(written(tmp_path, sound, "sound.lix")).info().graph_fallback is None
