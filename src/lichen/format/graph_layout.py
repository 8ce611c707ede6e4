"""The bytes of a serialised approximate-search graph, proven sound before usearch sees them.

usearch trusts what it maps: a neighbour slot past the last node, a neighbour count above
the degree cap, an entry point out of range or a node whose level disagrees with the level
table sends its search into memory it does not own, and the process dies (SIGSEGV) or
asks for terabytes. An artifact's checksums detect accidents, not tampering, and graphs
come from whoever pushed the index, so every graph is walked here first, in numpy over the
(usually memory-mapped) buffer, never with a Python loop per node.

What usearch 2.x writes for a dense index (``Index.save()``; integers little-endian)::

    uint32 rows, uint32 bytes_per_row, rows x bytes_per_row     the int8 vectors
    64-byte head: "usearch", version (3 x uint16), metric, scalar, key and slot kinds
                  (1 byte each), count_present, count_deleted, dimensions (uint64),
                  multi (bool), zero padding
    40-byte graph header: size, connectivity, connectivity_base, max_level, entry_slot
                  (uint64 each)
    size x int16  each node's level
    size nodes    uint64 key, int16 level, then level 0's neighbours (uint32 count,
                  connectivity_base x uint32 slots) and, per level above, uint32 count
                  and connectivity x uint32 slots

A deleted node keeps its place with the key ``2**64 - 1``; a later insert may reuse it.
"""

from __future__ import annotations

import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._errors import CorruptDataError

__all__ = ["GraphLayout", "read_graph_layout", "FREE_KEY"]

_VECTORS_HEADER = struct.Struct("<II")
# magic, version major/minor/patch, metric/scalar/key/slot kinds, present, deleted,
# dimensions, multi; padded to 64 bytes.
_DENSE_HEAD = struct.Struct("<7sHHHBBBBQQQ?")
_DENSE_HEAD_BYTES = 64
_GRAPH_HEADER = struct.Struct("<5Q")
_MAGIC = b"usearch"
_VERSION_MAJOR = 2
_METRIC_COSINE = ord("c")
_SCALAR_I8 = 23
_KEY_U64 = 14
_SLOT_U32 = 15
_NODE_HEAD_BYTES = 10  # uint64 key, int16 level
_WORD = 4  # a neighbour count or slot: uint32
FREE_KEY = np.uint64(2**64 - 1)
"""The key usearch gives a deleted node."""
#: Bounds well above anything Lichen builds (connectivity 32, base 64, a dozen levels at
#: 1M documents) and low enough that no header can make a reader allocate gigabytes.
MAX_CONNECTIVITY = 256
MAX_LEVEL = 64
#: Nodes walked per numpy pass: bounds the scratch memory (~2 MB, cache-sized) whatever the graph size.
_CHUNK_NODES = 1 << 13
#: Nodes per thread's span of work: spans only pay off on big graphs.
_SPAN_NODES = 1 << 15


@dataclass(frozen=True)
class GraphLayout:
    """What a graph's bytes hold, once proven well formed."""

    node_count: int
    """Nodes in the graph, deleted ones included."""
    live_keys: np.ndarray
    """The keys of its live nodes (``uint64``, in node order, not sorted)."""
    deleted: int
    """Nodes deleted but still linked (tombstones)."""
    connectivity: int
    max_level: int
    buffer: Any = None
    """The buffer proven: a layout vouches for these bytes only (see :meth:`proves`)."""

    def proves(self, buffer: Any) -> bool:
        """Whether this layout was read from ``buffer`` itself (the same object)."""
        return self.buffer is not None and self.buffer is buffer


def _fail(label: str, problem: str) -> CorruptDataError:
    return CorruptDataError(f"{label}: graph section {problem}")


def _rows(data: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """``data[start : start + width]`` for every start, as one ``(len(starts), width)``
    array: the buffer seen as overlapping ``width``-byte records, one per byte offset, so
    that the gather copies whole records (a memcpy each) rather than byte by byte."""
    records = np.ndarray(shape=(data.size - width + 1,), dtype=f"V{width}", buffer=data, strides=(1,))
    return records[starts].view(np.uint8).reshape(len(starts), width)


def read_graph_layout(buffer: Any, dimension: int, *, label: str = "the index", threads: int = 2) -> GraphLayout:
    """Prove that ``buffer`` is a graph usearch can map and search without reading outside
    it, over ``dimension``-dimensional int8 vectors, and return what it holds; raise
    :class:`CorruptDataError` naming the first problem otherwise.

    Checked: the vector block, the head (format, metric, kinds, counts, dimension), the
    graph header (connectivity, levels, entry point), that the nodes fill the buffer
    exactly, that every node's level matches the level table, every neighbour count is
    within its level's cap and every neighbour slot in use names a node that exists at
    that level. Costs one pass over the nodes (no pass over the vectors), on ``threads``
    threads for a big graph."""
    data = np.frombuffer(buffer, dtype=np.uint8)
    total = data.size
    if total < _VECTORS_HEADER.size:
        raise _fail(label, f"is {total} bytes, too short to be a graph")
    rows, row_bytes = _VECTORS_HEADER.unpack_from(data, 0)
    if row_bytes != dimension:
        raise _fail(label, f"holds {row_bytes}-byte vectors, the index {dimension}-dimensional int8 ones")
    position = _VECTORS_HEADER.size + rows * row_bytes
    if position + _DENSE_HEAD_BYTES + _GRAPH_HEADER.size > total:
        raise _fail(label, f"is cut short: {rows} vectors of {row_bytes} bytes and the headers need more than {total} bytes")
    magic, major, _minor, _patch, metric, scalar, key_kind, slot_kind, present, deleted, dimensions, multi = (
        _DENSE_HEAD.unpack_from(data, position)
    )
    if magic != _MAGIC or major != _VERSION_MAJOR:
        raise _fail(label, f"is not a usearch {_VERSION_MAJOR}.x index (magic {magic!r}, version {major})")
    if (metric, scalar, key_kind, slot_kind) != (_METRIC_COSINE, _SCALAR_I8, _KEY_U64, _SLOT_U32):
        raise _fail(label, f"has kinds (metric {metric}, scalar {scalar}, key {key_kind}, slot {slot_kind}), "
                    "not cosine over int8 with uint64 keys and uint32 slots")
    if dimensions != dimension or multi:
        raise _fail(label, f"is a {'multi-key ' if multi else ''}index of dimension {dimensions}, the index has {dimension}")
    position += _DENSE_HEAD_BYTES
    size, connectivity, base, max_level, entry = _GRAPH_HEADER.unpack_from(data, position)
    position += _GRAPH_HEADER.size
    if size != rows or size != present + deleted:
        raise _fail(label, f"counts disagree: {size} nodes, {rows} vectors, {present} present + {deleted} deleted")
    if not (2 <= connectivity <= MAX_CONNECTIVITY and connectivity <= base <= 2 * MAX_CONNECTIVITY):
        raise _fail(label, f"has connectivity {connectivity} / {base} (at most {MAX_CONNECTIVITY} / {2 * MAX_CONNECTIVITY})")
    if size == 0:
        if position != total:
            raise _fail(label, f"holds no nodes but {total - position} more bytes")
        return GraphLayout(0, np.zeros(0, np.uint64), 0, connectivity, 0, buffer)
    if max_level > MAX_LEVEL or entry >= size:
        raise _fail(label, f"has top level {max_level} and entry point {entry} for {size} nodes")
    if position + 2 * size > total:
        raise _fail(label, f"is cut short in its level table ({size} nodes, {total} bytes)")
    levels = np.frombuffer(data, dtype="<i2", count=size, offset=position).astype(np.int64)
    position += 2 * size
    low, high = int(levels.min()), int(levels.max())
    if low < 0 or high != max_level or levels[entry] != max_level:
        raise _fail(label, f"has levels {low}..{high}, top level {max_level}, entry point at level {levels[entry]}")
    base_bytes = _WORD * (1 + base)
    level_bytes = _WORD * (1 + connectivity)
    sizes = _NODE_HEAD_BYTES + base_bytes + level_bytes * levels
    starts = np.empty(size, dtype=np.int64)
    starts[0] = position
    np.cumsum(sizes[:-1], out=starts[1:])
    starts[1:] += position
    end = int(starts[-1] + sizes[-1])
    if end != total:
        raise _fail(label, f"has {total} bytes where its {size} nodes end at {end}")

    keys = np.empty(size, dtype=np.uint64)
    shape = _Shape(data, starts, levels, size, base, connectivity, label)
    spans = [(first, min(first + _SPAN_NODES, size)) for first in range(0, size, _SPAN_NODES)]
    if len(spans) > 1 and threads > 1:
        # numpy copies and reduces without the GIL: a big graph is walked on two cores,
        # the upper levels beside the first spans of level 0.
        with ThreadPoolExecutor(threads) as pool:
            upper = pool.submit(shape.walk_upper_levels)
            for first, span_keys in zip((a for a, _ in spans), pool.map(shape.walk_level0, spans)):
                keys[first : first + span_keys.size] = span_keys
            upper.result()
    else:
        for first, stop in spans:
            keys[first:stop] = shape.walk_level0((first, stop))
        shape.walk_upper_levels()
    live_keys = keys[keys != FREE_KEY]
    if live_keys.size != present:
        raise _fail(label, f"declares {present} live nodes but holds {live_keys.size}")
    return GraphLayout(int(size), live_keys, int(deleted), int(connectivity), int(max_level), buffer)


@dataclass(frozen=True)
class _Shape:
    """A graph's node table, located: walks the nodes' neighbour blocks in chunks."""

    data: np.ndarray
    starts: np.ndarray
    levels: np.ndarray
    size: int
    base: int
    connectivity: int
    label: str

    def walk_level0(self, span: tuple[int, int]) -> np.ndarray:
        """Check the heads and level-0 blocks of nodes ``span[0]..span[1] - 1``; return
        their keys. Each head and block is read as one record from 2 bytes before the
        node, so that the record is whole 4-byte words: word 0 holds the key's low 16 bits
        (above 2 bytes of the node before), word 1 its next 32, word 2 its top 16 and the
        level, word 3 the neighbour count, then the slots."""
        first, stop = span
        keys = np.empty(stop - first, dtype=np.uint64)
        record = 2 + _NODE_HEAD_BYTES + _WORD * (1 + self.base)
        for at in range(first, stop, _CHUNK_NODES):
            chunk = slice(at, min(at + _CHUNK_NODES, stop))
            words = _rows(self.data, self.starts[chunk] - 2, record).view("<u4")
            low, middle, high = (words[:, i].astype(np.uint64) for i in range(3))
            keys[at - first : chunk.stop - first] = (low >> 16) | (middle << 16) | ((high & 0xFFFF) << 48)
            if not np.array_equal((high >> 16).astype(np.uint16).view(np.int16), self.levels[chunk]):
                raise _fail(self.label, "has a node whose level disagrees with the level table")
            # The head's words cleared, the whole record is count and slots: one max over
            # contiguous memory (a third of the time of one over the slots' columns).
            words[:, :3] = 0
            _check_neighbours(words, self.base, self.size, None, self.label, first_column=3)
        return keys

    def walk_upper_levels(self) -> None:
        """Check every block above level 0: a small share of the nodes (~1 in 32)."""
        upper = np.flatnonzero(self.levels > 0)
        if not upper.size:
            return
        per_node = self.levels[upper]
        owners = np.repeat(upper, per_node)
        level_of = np.arange(owners.size) - np.repeat(np.cumsum(per_node) - per_node, per_node) + 1
        level_bytes = _WORD * (1 + self.connectivity)
        table = self.levels.astype(np.int16)  # gathered at random: a quarter of the bytes
        block_starts = self.starts[owners] + _NODE_HEAD_BYTES + _WORD * (1 + self.base) + level_bytes * (level_of - 1)
        for at in range(0, owners.size, _CHUNK_NODES):
            chunk = slice(at, at + _CHUNK_NODES)
            words = _rows(self.data, block_starts[chunk], level_bytes).view("<u4")
            _check_neighbours(words, self.connectivity, self.size, (table, level_of[chunk]), self.label)


def _check_neighbours(
    words: np.ndarray, cap: int, size: int, levels: tuple[np.ndarray, np.ndarray] | None, label: str,
    *, first_column: int = 0,
) -> None:
    """Neighbour blocks, one a row from ``first_column`` on (a count, then ``cap`` slots;
    columns before it are zero): counts within ``cap``, and every slot in use below
    ``size`` (and, above level 0, naming a node that reaches that level: ``levels`` is the
    level table and each block's level)."""
    if not len(words):
        return
    counts = words[:, first_column]
    if int(counts.max()) > cap:
        raise _fail(label, f"has a node with {int(counts.max())} neighbours where at most {cap} fit")
    # Unused slots are zeroed or hold earlier neighbours, so in a sound graph every slot is
    # in range: one max over the block (counts included, as they are at most cap), and a
    # closer look only when that fails or levels must be compared.
    if levels is None and int(words.max()) < size and cap < size:
        return
    slots = words[:, first_column + 1 :]
    in_use = np.arange(cap) < counts[:, None]
    if ((slots >= size) & in_use).any():
        raise _fail(label, f"names a neighbour slot beyond its {size} nodes")
    if levels is not None:
        table, block_level = levels
        reach = table[np.minimum(slots, size - 1)]
        if ((reach < block_level[:, None]) & in_use).any():
            raise _fail(label, "links a node on a level that node does not reach")
