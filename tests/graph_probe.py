"""Load untrusted index files in a child process and report how it ended.

A graph that usearch cannot walk kills the process that maps it (SIGSEGV), so a test that
loaded one in-process would die with the suite instead of failing. Here each artifact is
loaded, queried, written to and queried again by a separate Python process, which prints
one JSON line per artifact: ``answered`` (with the graph's and the exact scan's results),
``refused`` (a :class:`lichen.LichenError`, with its type and message) or ``foreign`` (any
other exception: a bug too). The parent sees ``killed`` when the child dies by a signal and
``hung`` when it does not answer in time.

The graph section is located here with a parser of its own, written from usearch's
serialisation and independent of :mod:`lichen.format.graph_layout`, so that these tests do not
trust the code they test to find the fields they damage.

Run as a script, this module is the child: it reads artifact paths, one a line, on stdin.
"""

from __future__ import annotations

import json
import os
import selectors
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

QUERY_COUNT = 6
TOP_K = 5


@dataclass
class GraphBytes:
    """A serialised usearch dense index, its fields located for editing."""

    data: bytearray
    size: int
    connectivity: int
    base: int
    header_at: int
    levels_at: int
    starts: np.ndarray
    levels: np.ndarray

    @classmethod
    def parse(cls, raw: bytes) -> GraphBytes:
        rows, row_bytes = struct.unpack_from("<II", raw, 0)
        header_at = 8 + rows * row_bytes + 64
        size, connectivity, base, _max_level, _entry = struct.unpack_from("<5Q", raw, header_at)
        levels_at = header_at + 40
        levels = np.frombuffer(raw, dtype="<i2", count=size, offset=levels_at).astype(np.int64)
        node_bytes = 10 + 4 * (1 + base) + 4 * (1 + connectivity) * levels
        starts = levels_at + 2 * size + np.concatenate([[0], np.cumsum(node_bytes)[:-1]])
        return cls(bytearray(raw), size, connectivity, base, header_at, levels_at, starts, levels)

    # ---- where things are
    def header_field(self, name: str) -> int:
        return self.header_at + 8 * ("size", "connectivity", "base", "max_level", "entry").index(name)

    def count_at(self, node: int, level: int = 0) -> int:
        at = int(self.starts[node]) + 10
        return at if level == 0 else at + 4 * (1 + self.base) + 4 * (1 + self.connectivity) * (level - 1)

    def slot_at(self, node: int, index: int, level: int = 0) -> int:
        return self.count_at(node, level) + 4 + 4 * index

    def count(self, node: int, level: int = 0) -> int:
        return struct.unpack_from("<I", self.data, self.count_at(node, level))[0]

    # ---- edits
    def put_u32(self, at: int, value: int) -> None:
        struct.pack_into("<I", self.data, at, value & 0xFFFFFFFF)

    def put_u64(self, at: int, value: int) -> None:
        struct.pack_into("<Q", self.data, at, value & 0xFFFFFFFFFFFFFFFF)

    def put_i16(self, at: int, value: int) -> None:
        struct.pack_into("<h", self.data, at, value)

    def linked_node(self) -> int:
        """A node with at least one level-0 neighbour."""
        return next(i for i in range(self.size) if self.count(i) > 0)

    def randomise_links(self, seed: int) -> None:
        """Every neighbour in use replaced by a random node of a level that reaches it:
        well formed, and useless for search."""
        rng = np.random.default_rng(seed)
        for node in range(self.size):
            for level in range(int(self.levels[node]) + 1):
                eligible = np.flatnonzero(self.levels >= level)
                for index in range(self.count(node, level)):
                    self.put_u32(self.slot_at(node, index, level), int(rng.choice(eligible)))


# --------------------------------------------------------------------------- the parent side
class ProbeWorker:
    """A long-lived child that probes one artifact after another: restarted after any
    death, so that one crash never hides the next."""

    def __init__(self, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self.process: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        return subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve())], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True, env=env,
        )

    def probe(self, path: Path) -> dict:
        if self.process is None or self.process.poll() is not None:
            self.process = self._start()
        process = self.process
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(f"{path}\n")
            process.stdin.flush()
        except BrokenPipeError:
            pass
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            if not selector.select(self.timeout):
                process.kill()
                process.wait()
                return {"outcome": "hung"}
        line = process.stdout.readline()
        if not line:
            code = process.wait()
            return {"outcome": "killed", "signal": -code} if code < 0 else {"outcome": "exited", "code": code}
        return json.loads(line)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.stdin.close()  # type: ignore[union-attr]
            self.process.wait(timeout=30)

    def __enter__(self) -> ProbeWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def probe_once(path: Path) -> dict:
    """One artifact, in a fresh child."""
    with ProbeWorker() as worker:
        return worker.probe(path)


def assert_clean(outcome: dict) -> None:
    """The child ended as a Lichen user may see: answers, or a Lichen error."""
    assert outcome["outcome"] in ("answered", "refused"), outcome


# --------------------------------------------------------------------------- the child side
def _ids(hits) -> list[str]:
    return [hit.id for hit in hits]


def _probe(path: str) -> dict:
    from lichen import DocumentInfo, LichenError
    from lichen.engine.core import IndexCore
    from lichen.format.artifact import read_artifact

    try:
        snapshot = read_artifact(path, lazy=True)
        core = IndexCore.from_snapshot(snapshot, approximate=True)
        rng = np.random.default_rng(7)
        queries = rng.standard_normal((QUERY_COUNT, snapshot.dimension)).astype(np.float32)
        graph = [_ids(core.search(q, "", top_k=TOP_K)) for q in queries]
        exact = [_ids(core.search(q, "", top_k=TOP_K, exact=True)) for q in queries]
        fallback = getattr(core, "graph_fallback", None)  # (getattr: also probes older Lichens)
        # A write copies the graph out of the file and edits it: another way into usearch.
        core.upsert([DocumentInfo(id="probe-new", text="new")], queries[:1])
        if len(core):
            core.delete([core.get(limit=1)[0].id])
        after = [_ids(core.search(q, "", top_k=TOP_K)) for q in queries]
        return {"outcome": "answered", "graph": graph, "exact": exact, "after": after, "fallback": fallback}
    except LichenError as exc:
        return {"outcome": "refused", "error": type(exc).__name__, "message": str(exc)}
    except Exception as exc:  # noqa: BLE001 - reported, and failed by the parent
        return {"outcome": "foreign", "error": type(exc).__name__, "message": str(exc)}


def main() -> None:
    for line in sys.stdin:
        print(json.dumps(_probe(line.strip())), flush=True)


if __name__ == "__main__":
    main()
