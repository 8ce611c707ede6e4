"""The index artifact format: exact round trips, and a refusal for every kind of damage."""

from __future__ import annotations

import io
import mmap
import struct

import numpy as np
import orjson
import pytest
import xxhash
from server_helpers import element_starts

from lichen._errors import CorruptDataError, InvalidArgumentError
from lichen.format.artifact import (
    ALIGNMENT,
    FORMAT_VERSION,
    MAGIC,
    artifact_checksum,
    encode_artifact,
    read_artifact,
    read_artifact_file,
    read_manifest,
    verify_artifact,
    write_artifact,
    write_artifact_file,
)
from lichen.format.snapshot import IndexSnapshot

HEADER = struct.Struct("<8sIIQ16s")

METADATA = [
    {"city": "Paris", "year": 2021, "score": 0.5, "ok": True, "tags": ["a", "b"], "none": None},
    {"int_float": 1.0, "neg_zero": -0.0, "big": 2**62, "neg": -(2**63), "false": False, "empty": []},
    {"mixed": [1, 2.5, "x", True, None], "nested_types": [0, 0.0, False], "emoji": "🌿"},
    {},
]


def make_snapshot(n: int = 4, dim: int = 8, **fields) -> IndexSnapshot:
    rng = np.random.default_rng(n * 1000 + dim)
    fields.setdefault("metadata", [dict(METADATA[i % len(METADATA)]) for i in range(n)])
    return IndexSnapshot(
        name=fields.pop("name", "docs"),
        model_id=fields.pop("model_id", "lichen-minilm"),
        dimension=dim,
        ids=fields.pop("ids", [f"doc-{i}" for i in range(n)]),
        texts=fields.pop("texts", [f"text {i}: naïve café 🌿 Ωμέγα 日本語 \u0000 \"quoted\" \\ end" for i in range(n)]),
        matrix=fields.pop("matrix", rng.standard_normal((n, dim)).astype(np.float32)),
        version=fields.pop("version", 3),
        created_at=fields.pop("created_at", "2024-01-02T03:04:05.000006Z"),
        updated_at=fields.pop("updated_at", "2024-06-07T08:09:10.000011Z"),
        **fields,
    )


def types_of(value):
    if isinstance(value, dict):
        return {k: types_of(v) for k, v in value.items()}
    if isinstance(value, list):
        return [types_of(v) for v in value]
    return type(value)


def assert_same(a: IndexSnapshot, b: IndexSnapshot) -> None:
    assert (a.name, a.model_id, a.dimension, a.version, a.created_at, a.updated_at) == (
        b.name, b.model_id, b.dimension, b.version, b.created_at, b.updated_at
    )
    assert a.ids == b.ids and a.texts == b.texts
    assert a.metadata == b.metadata
    assert types_of(a.metadata) == types_of(b.metadata)
    assert a.matrix.shape == b.matrix.shape == (a.doc_count, a.dimension)
    assert a.matrix.dtype == np.float32
    assert np.ascontiguousarray(a.matrix).tobytes() == np.ascontiguousarray(b.matrix, dtype="<f4").tobytes()
    assert a.extra == b.extra


# ---- independent assembler following the documented layout ---------------------------

#: The format of an artifact without graph edits: the oldest that holds it (format 4
#: only adds the edit lists a server writes; see test_approximate).
WRITTEN = 3


def split(data: bytes) -> tuple[dict, dict[str, bytes]]:
    """Parse an artifact by the documented layout: (manifest dict, section bytes)."""
    magic, version, _reserved, length, _digest = HEADER.unpack_from(data)
    assert magic == MAGIC and version == WRITTEN
    manifest = orjson.loads(data[40 : 40 + length])
    body = -(-(40 + length) // ALIGNMENT) * ALIGNMENT
    sections = {
        key: data[body + sec["offset"] : body + sec["offset"] + sec["length"]]
        for key, sec in manifest["sections"].items()
    }
    return manifest, sections


def assemble(manifest: dict, sections: dict[str, bytes], *, fix_checksums: bool = True,
             manifest_bytes: bytes | None = None, version: int = WRITTEN) -> bytes:
    """Build an artifact from parts, recomputing section offsets, checksums and (format
    3) the element offsets of the document columns, so that tests can craft files that
    are well-formed except for the one defect under test."""
    manifest = orjson.loads(orjson.dumps(manifest))
    sections = dict(sections)
    if version >= 3:
        columns = [sections[key] for key in ("ids", "texts", "metadata")]
        sections["offsets"] = element_starts(columns, manifest["doc_count"])
        manifest["sections"].setdefault("offsets", {})
    body = b""
    for key in ("ids", "texts", "metadata", "matrix", "offsets")[: 5 if version >= 3 else 4]:
        if key in ("matrix", "offsets"):
            body += bytes(-len(body) % ALIGNMENT)
        sec = manifest["sections"][key]
        sec["offset"], sec["length"] = len(body), len(sections[key])
        if fix_checksums:
            sec["xxh3_128"] = xxhash.xxh3_128_hexdigest(sections[key])
        body += sections[key]
    manifest["body_length"] = len(body)
    mb = orjson.dumps(manifest) if manifest_bytes is None else manifest_bytes
    head = HEADER.pack(MAGIC, version, 0, len(mb), xxhash.xxh3_128_digest(mb)) + mb
    return head + bytes(-len(head) % ALIGNMENT) + body


# ---- round trips ------------------------------------------------------------------------


def test_round_trip_bytes_is_exact():
    snap = make_snapshot(7, 16, extra={"bm25": {"k1": 1.2}, "note": "é"})
    data = encode_artifact(snap).to_bytes()
    back = read_artifact(data)
    assert_same(snap, back)


def test_round_trip_metadata_types_are_exact():
    snap = make_snapshot(len(METADATA))
    back = read_artifact(encode_artifact(snap).to_bytes())
    assert back.metadata == METADATA
    assert type(back.metadata[1]["int_float"]) is float
    assert type(back.metadata[0]["year"]) is int
    assert back.metadata[0]["ok"] is True and back.metadata[1]["false"] is False
    assert type(back.metadata[1]["big"]) is int and back.metadata[1]["big"] == 2**62
    assert str(back.metadata[1]["neg_zero"]) == "-0.0"
    assert types_of(back.metadata[2]["mixed"]) == [int, float, str, bool, type(None)]


def test_round_trip_file_and_fileobj(tmp_path):
    snap = make_snapshot(5, 12)
    path = tmp_path / "a.lix"
    manifest = write_artifact_file(snap, path)
    assert path.stat().st_size == manifest.size
    from_path = read_artifact_file(path)
    assert_same(snap, from_path)
    # A path is memory-mapped: the matrix is a read-only view of the file, not a copy.
    assert not from_path.matrix.flags.writeable and from_path.matrix.flags.c_contiguous
    with open(path, "rb") as f:
        from_file = read_artifact(f)
        assert_same(snap, from_file)
        assert from_file.matrix.flags.writeable
    assert_same(snap, read_artifact(str(path)))
    buf = io.BytesIO()
    write_artifact(snap, buf)
    assert buf.getvalue() == path.read_bytes()
    assert_same(snap, read_artifact(io.BytesIO(buf.getvalue())))
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        from_mmap = read_artifact(mm)
        assert_same(snap, from_mmap)
        del from_mmap  # its matrix views the mapping, which closes here


def test_bytes_source_is_zero_copy():
    data = bytearray(encode_artifact(make_snapshot(3, 4)).to_bytes())
    snap = read_artifact(data)
    assert np.shares_memory(snap.matrix, np.frombuffer(data, dtype=np.uint8))
    assert read_artifact(bytes(data)).matrix.flags.writeable is False
    assert_same(snap, read_artifact(memoryview(data)))


@pytest.mark.parametrize("dim", [0, 384])
def test_empty_index_round_trips(dim):
    snap = make_snapshot(0, dim, matrix=np.zeros((0, dim), dtype=np.float32))
    data = encode_artifact(snap).to_bytes()
    back = read_artifact(data)
    assert back.doc_count == 0 and back.dimension == dim and back.matrix.shape == (0, dim)
    assert back.ids == [] and back.texts == [] and back.metadata == []
    assert read_manifest(data).doc_count == 0


def test_empty_index_accepts_any_empty_matrix():
    snap = make_snapshot(0, 384, matrix=np.zeros((0,), dtype=np.float64))
    assert read_artifact(encode_artifact(snap).to_bytes()).matrix.shape == (0, 384)


def test_matrix_dtype_and_layout_are_normalised():
    base = make_snapshot(6, 10)
    as_f64 = make_snapshot(6, 10, matrix=base.matrix.astype(np.float64))
    fortran = make_snapshot(6, 10, matrix=np.asfortranarray(base.matrix))
    big_endian = make_snapshot(6, 10, matrix=base.matrix.astype(">f4"))
    for snap in (as_f64, fortran, big_endian):
        back = read_artifact(encode_artifact(snap).to_bytes())
        assert back.matrix.tobytes() == base.matrix.tobytes()


def test_encode_does_not_copy_a_contiguous_matrix():
    snap = make_snapshot(4, 8)
    encoded = encode_artifact(snap)
    assert any(isinstance(c, memoryview) and np.shares_memory(np.asarray(c), snap.matrix) for c in encoded.chunks)


def test_none_metadata_entries_become_empty_dicts():
    snap = make_snapshot(2, 3, metadata=[None, {"a": 1}])
    assert read_artifact(encode_artifact(snap).to_bytes()).metadata == [{}, {"a": 1}]


def test_non_finite_float_metadata_is_stored_as_null():
    # Documented: JSON has no NaN; the engine's validation rejects such values earlier.
    snap = make_snapshot(1, 2, metadata=[{"x": float("nan")}])
    assert read_artifact(encode_artifact(snap).to_bytes()).metadata == [{"x": None}]


def test_layout_matches_documentation():
    snap = make_snapshot(3, 5)
    encoded = encode_artifact(snap)
    data = encoded.to_bytes()
    assert data[:8] == MAGIC == b"LICHENIX"
    magic, version, reserved, length, digest = HEADER.unpack_from(data)
    assert (version, reserved) == (WRITTEN, 0)
    assert digest == xxhash.xxh3_128_digest(data[40 : 40 + length])
    manifest, sections = split(data)
    assert manifest["dtype"] == "float32" and manifest["byte_order"] == "little"
    assert orjson.loads(sections["ids"]) == snap.ids
    assert orjson.loads(sections["texts"]) == snap.texts
    assert sections["matrix"] == snap.matrix.astype("<f4").tobytes()
    assert encoded.manifest.sections["matrix"].offset % ALIGNMENT == 0
    assert len(data) == encoded.size
    for key, sec in manifest["sections"].items():
        assert sec["xxh3_128"] == artifact_checksum(sections[key])
    # The independent assembler reproduces the writer byte for byte.
    assert assemble(manifest, sections) == data


def test_manifest_is_cheap_and_complete(tmp_path):
    snap = make_snapshot(4, 8)
    path = tmp_path / "a.lix"
    write_artifact_file(snap, path)
    manifest = read_manifest(path)
    info = manifest.info()
    assert (info.name, info.doc_count, info.model_id, info.dimension, info.version) == ("docs", 4, "lichen-minilm", 8, 3)
    assert (info.created_at, info.updated_at) == (snap.created_at, snap.updated_at)
    assert manifest.size == path.stat().st_size
    assert verify_artifact(path) == manifest


def test_etag_identifies_content():
    snap = make_snapshot(4, 8)
    etag = encode_artifact(snap).etag
    assert etag == encode_artifact(make_snapshot(4, 8)).etag == read_manifest(encode_artifact(snap).to_bytes()).etag
    assert len(etag) == 32 and int(etag, 16) >= 0
    changed_text = make_snapshot(4, 8, texts=["x", "y", "z", "w"])
    changed_vector = make_snapshot(4, 8)
    changed_vector.matrix[0, 0] += 1
    changed_version = make_snapshot(4, 8, version=4)
    assert len({etag, *(encode_artifact(s).etag for s in (changed_text, changed_vector, changed_version))}) == 4


def test_write_artifact_file_is_atomic_on_error(tmp_path, monkeypatch):
    import lichen.format.artifact as artifact

    path = tmp_path / "a.lix"
    write_artifact_file(make_snapshot(3, 4), path)
    before = path.read_bytes()

    def failing(snapshot, fileobj):
        fileobj.write(b"LICHENIX partial")
        raise OSError("disk full")

    monkeypatch.setattr(artifact, "write_artifact", failing)
    with pytest.raises(OSError, match="disk full"):
        write_artifact_file(make_snapshot(5, 4), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.lix"]


# ---- invalid snapshots ------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(texts=["a"]), "disagree"),
        (dict(metadata=[{}]), "disagree"),
        (dict(matrix=np.zeros((3, 5), dtype=np.float32)), "shape"),
        (dict(matrix=np.zeros((2, 4), dtype=np.float32)), "shape"),
        (dict(ids=["a", 2, "c"]), "ids"),
        (dict(texts=["a", b"b", "c"]), "texts"),
        (dict(metadata=[{}, "x", {}]), "metadata"),
        (dict(metadata=[{}, {"s": {1, 2}}, {}]), "metadata"),
        (dict(metadata=[{}, {"big": 2**70}, {}]), "metadata"),
        (dict(metadata=[{}, {1: "non-str key"}, {}]), "metadata"),
        (dict(texts=["a", "\ud800", "c"]), "texts"),
        (dict(matrix=np.array([["a"] * 4] * 3)), "dtype"),
        (dict(extra={"x": object()}), "extra"),
        (dict(version=-1), "version"),
    ],
)
def test_encode_rejects_invalid_snapshots(change, message):
    with pytest.raises(InvalidArgumentError, match=message):
        encode_artifact(make_snapshot(3, 4, **change))


# ---- damage: every defect is refused with CorruptDataError --------------------------------


@pytest.fixture
def good() -> bytes:
    return encode_artifact(make_snapshot(6, 16)).to_bytes()


def flip(data: bytes, offset: int) -> bytes:
    damaged = bytearray(data)
    damaged[offset] ^= 0x40
    return bytes(damaged)


@pytest.mark.parametrize("section", ["ids", "texts", "metadata", "matrix"])
@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_flipped_byte_in_a_section_is_detected(good, section, where):
    sec = read_manifest(good).sections[section]
    offset = {"first": sec.offset, "middle": sec.offset + sec.length // 2, "last": sec.offset + sec.length - 1}[where]
    damaged = flip(good, offset)
    with pytest.raises(CorruptDataError, match=f"{section} section checksum mismatch"):
        read_artifact(damaged)
    with pytest.raises(CorruptDataError, match=f"{section} section checksum mismatch"):
        verify_artifact(damaged)
    read_manifest(damaged)  # the header alone is still intact


@pytest.mark.parametrize("section", ["ids", "texts", "metadata", "matrix", "offsets"])
@pytest.mark.parametrize("where", ["first", "last"])
@pytest.mark.parametrize("source_kind", ["BytesIO", "open file"])
def test_flipped_byte_is_detected_when_reading_a_file_object(good, tmp_path, section, where, source_kind):
    # A file object is read, not mapped: the matrix goes straight into a fresh array and
    # is checksummed there, the other sections as the bytes read. The tests above reach
    # only the in-memory reader (bytes, and paths, which are mapped).
    sec = read_manifest(good).sections[section]
    damaged = flip(good, sec.offset if where == "first" else sec.offset + sec.length - 1)
    path = tmp_path / "damaged.lix"
    path.write_bytes(damaged)
    with path.open("rb") if source_kind == "open file" else io.BytesIO(damaged) as source:
        with pytest.raises(CorruptDataError, match=f"{section} section checksum mismatch"):
            read_artifact(source)
        source.seek(0)
        with pytest.raises(CorruptDataError, match=f"{section} section checksum mismatch"):
            verify_artifact(source)
        if section == "matrix":  # only its checksum can tell: every float is still a float
            source.seek(0)
            unverified = read_artifact(source, verify=False)
            assert not np.array_equal(unverified.matrix, read_artifact(good).matrix)


def test_flipped_byte_in_the_manifest_is_detected(good):
    for offset in (40, 60, 100):
        with pytest.raises(CorruptDataError, match="manifest checksum mismatch"):
            read_manifest(flip(good, offset))


def test_flipped_byte_in_the_header_digest_is_detected(good):
    with pytest.raises(CorruptDataError, match="manifest checksum mismatch"):
        read_artifact(flip(good, 30))


@pytest.mark.parametrize("source_kind", ["bytes", "path"])
def test_truncation_anywhere_is_detected(good, tmp_path, source_kind):
    manifest = read_manifest(good)
    cuts = {0, 1, 7, 8, 20, 39, 40, 41, 100, manifest.body_offset}
    for sec in manifest.sections.values():
        cuts |= {sec.offset + 1, sec.offset + sec.length // 2, sec.offset + sec.length - 1}
    cuts |= {len(good) - 1, len(good) - 4}
    for cut in sorted(cuts):
        data = good[:cut]
        source = data
        if source_kind == "path":
            source = tmp_path / f"cut-{cut}.lix"
            source.write_bytes(data)
        with pytest.raises(CorruptDataError, match="truncated") as excinfo:
            read_artifact(source)
        with pytest.raises(CorruptDataError, match="truncated"):
            read_manifest(source)
        if source_kind == "path":
            assert str(source) in str(excinfo.value)


def test_trailing_bytes_are_refused(good):
    with pytest.raises(CorruptDataError, match="trailing"):
        read_artifact(good + b"\0")


@pytest.mark.parametrize("magic", [b"LICHENIY", b"\x89PNG\r\n\x1a\n", b"lichenix", bytes(8)])
def test_wrong_magic_is_refused(good, magic):
    with pytest.raises(CorruptDataError, match="magic"):
        read_artifact(magic + good[8:])


def test_not_an_artifact_at_all():
    with pytest.raises(CorruptDataError, match="magic"):
        read_artifact(b'{"json": "instead"}' * 10)
    with pytest.raises(CorruptDataError, match="magic"):
        read_manifest(b"hello")


def test_future_format_version_is_refused(good):
    future = good[:8] + struct.pack("<I", FORMAT_VERSION + 1) + good[12:]
    with pytest.raises(CorruptDataError, match="newer than this Lichen supports"):
        read_artifact(future)
    with pytest.raises(CorruptDataError, match="unknown format version 0"):
        read_artifact(good[:8] + struct.pack("<I", 0) + good[12:])


def test_future_format_is_refused_before_its_manifest_is_parsed(good):
    manifest, sections = split(good)
    manifest["format_version"] = FORMAT_VERSION + 1
    manifest["new_field"] = {"something": "unknown"}
    with pytest.raises(CorruptDataError, match=f"format version {FORMAT_VERSION + 1} is newer"):
        read_artifact(assemble(manifest, sections, version=FORMAT_VERSION + 1))


def test_manifest_version_must_agree_with_header(good):
    manifest, sections = split(good)
    manifest["format_version"] = 7
    with pytest.raises(CorruptDataError, match="disagrees with header"):
        read_artifact(assemble(manifest, sections))


def test_malformed_manifest_json_is_refused(good):
    manifest, sections = split(good)
    for raw in (b"{not json", b"[1, 2, 3]", b'"a string"', b"\xff\xfe"):
        with pytest.raises(CorruptDataError, match="manifest"):
            read_artifact(assemble(manifest, sections, manifest_bytes=raw))


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda m: m.update(doc_count=7), "matrix section is 384 bytes but doc_count 7 x dimension 16"),
        (lambda m: m.update(dimension=15), "matrix section is 384 bytes"),
        (lambda m: m.update(dtype="float16"), "dtype 'float16' is not supported"),
        (lambda m: m.update(byte_order="big"), "byte_order 'big' is not supported"),
        (lambda m: m.update(doc_count=-6), "'doc_count'"),
        (lambda m: m.update(doc_count="6"), "'doc_count'"),
        (lambda m: m.update(dimension=True), "'dimension'"),
        (lambda m: m.pop("name"), "'name'"),
        (lambda m: m.update(model_id=None), "'model_id'"),
        (lambda m: m.update(extra=[1]), "'extra'"),
        (lambda m: m.pop("sections"), "sections"),
        (lambda m: m["sections"].pop("texts"), "'texts' section"),
        (lambda m: m["sections"].pop("offsets"), "'offsets' section"),
        (lambda m: m["sections"]["offsets"].update(length=8), "offsets section is 8 bytes"),
        (lambda m: m["sections"]["offsets"].update(offset=m["sections"]["offsets"]["offset"] - 8), "not 64-byte aligned"),
        (lambda m: m["sections"]["ids"].update(xxh3_128="abc"), "invalid checksum"),
    ],
)
def test_inconsistent_manifest_is_refused(good, mutate, message):
    manifest, sections = split(good)
    data = assemble(manifest, sections)
    manifest = orjson.loads(data[40 : 40 + HEADER.unpack_from(data)[3]])
    mutate(manifest)
    mb = orjson.dumps(manifest)
    head = HEADER.pack(MAGIC, WRITTEN, 0, len(mb), xxhash.xxh3_128_digest(mb)) + mb
    crafted = head + bytes(-len(head) % ALIGNMENT) + data[read_manifest(data).body_offset :]
    with pytest.raises(CorruptDataError, match=message):
        read_artifact(crafted)


def test_section_past_the_body_is_refused(good):
    manifest, sections = split(good)
    data = assemble(manifest, sections)
    raw = orjson.loads(data[40 : 40 + HEADER.unpack_from(data)[3]])
    raw["sections"]["metadata"]["length"] += 10**6
    mb = orjson.dumps(raw)
    head = HEADER.pack(MAGIC, WRITTEN, 0, len(mb), xxhash.xxh3_128_digest(mb)) + mb
    crafted = head + bytes(-len(head) % ALIGNMENT) + data[read_manifest(data).body_offset :]
    with pytest.raises(CorruptDataError, match="extends past the body"):
        read_artifact(crafted)


def test_misaligned_matrix_is_refused(good):
    manifest, sections = split(good)
    data = assemble(manifest, sections)
    raw = orjson.loads(data[40 : 40 + HEADER.unpack_from(data)[3]])
    raw["sections"]["matrix"]["offset"] -= 4
    mb = orjson.dumps(raw)
    head = HEADER.pack(MAGIC, WRITTEN, 0, len(mb), xxhash.xxh3_128_digest(mb)) + mb
    crafted = head + bytes(-len(head) % ALIGNMENT) + data[read_manifest(data).body_offset :]
    with pytest.raises(CorruptDataError, match="aligned"):
        read_artifact(crafted)


@pytest.mark.parametrize(
    "section, payload, message",
    [
        ("ids", b'["a", "b"]', "ids section holds 2 entries, doc_count is 6"),
        ("ids", b'{"a": 1}', "ids section holds dict entries"),
        ("ids", b'["a", "b", "c", "d", "e", 6]', "non-string id"),
        ("texts", b'["a", "b", "c", "d", "e", null]', "non-string text"),
        ("metadata", b"[{}, {}, {}, {}, {}, []]", "not an object"),
        ("metadata", b"[{}, {}, {}, {}, {}, {]", "metadata section is not valid JSON"),
        ("texts", b"", "texts section is not valid JSON"),
    ],
)
def test_well_checksummed_but_malformed_columns_are_refused(good, section, payload, message):
    manifest, sections = split(good)
    sections[section] = payload
    with pytest.raises(CorruptDataError, match=message):
        read_artifact(assemble(manifest, sections))


def test_verify_false_skips_section_checksums_but_not_structure(good):
    sec = read_manifest(good).sections["matrix"]
    damaged = flip(good, sec.offset)
    assert read_artifact(damaged, verify=False).doc_count == 6
    with pytest.raises(CorruptDataError, match="truncated"):
        read_artifact(good[:-1], verify=False)


def test_unreadable_source_type_is_an_invalid_argument():
    with pytest.raises(InvalidArgumentError):
        read_artifact(12345)  # type: ignore[arg-type]


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_artifact_file(tmp_path / "missing.lix")
