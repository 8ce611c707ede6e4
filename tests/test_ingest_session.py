"""Ingestion through SessionIndex: add_docs of files, folders, dicts and JSON (all or
nothing, or skipping), documents kept on their old route, truncation warned and recorded,
refresh_source's stale tail and sync_folder, in both faces."""

from __future__ import annotations

import warnings

import pytest
from lichen import DocumentInfo, InvalidArgumentError, QueryOptions, SessionIndex, SourceError, TruncationWarning
from lichen.ingest import AddResult
from lichen.ingest.truncation import TRUNCATION_KEY, collected

LONG = "word " * 300  # 300 word pieces: past the built-in model's 254 + [CLS] + [SEP]


def sections(count: int, word: str = "text") -> str:
    return "\n\n".join(f"## Part {i}\n\nSection {i} {word} about topic{i}." for i in range(count))


def make_folder(root):
    docs = root / "kb"
    (docs / "guides").mkdir(parents=True)
    (docs / "returns.md").write_text("# Returns\n\nReturn within 30 days.\n\n## Refunds\n\nRefunds take 5 days.\n")
    (docs / "guides" / "setup.md").write_text("# Setup\n\nInstall the app, then sign in.\n")
    (docs / "faq.jsonl").write_text('{"id": "faq-1", "text": "Passwords reset from the sign-in page."}\n')
    return docs


def ids(index, source=None):
    return sorted(doc.id for doc in index.get_docs_sync(filter={"source": source} if source else None))


def test_add_docs_takes_folders_paths_dicts_and_json(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = make_folder(tmp_path)
    (tmp_path / "notes.txt").write_text("Shipping takes two days.")
    index = SessionIndex("kb")
    result = index.add_docs_sync([
        folder, "notes.txt", {"id": "d1", "text": "a dict record", "topic": "misc"},
        '[{"id": "j1", "text": "JSON array text"}]', DocumentInfo(id="manual", text="given as is"),
    ], exclude="guides")
    assert isinstance(result, AddResult) and tuple(result) == (index.doc_count, 0) == (7, 0)
    assert ids(index) == sorted([
        "manual", "d1", "j1", "faq-1", "kb/returns.md#chunk-0000", "kb/returns.md#chunk-0001", "notes.txt#chunk-0000",
    ])
    refund = index.query_sync("how long do refunds take", QueryOptions(top_k=1)).docs[0]
    assert refund.id == "kb/returns.md#chunk-0001" and refund.metadata["heading"] == "Returns > Refunds"
    assert refund.metadata["source"] == "kb/returns.md" and refund.metadata["chunk_index"] == 1
    # Added again with the folder's options: same ids, replaced, nothing duplicated.
    again = index.add_docs_sync(folder, include="*.md", metadata={"team": "support"})
    assert tuple(again) == (1, 2) and index.doc_count == 8  # guides/setup.md is new this time
    assert index.get_docs_sync(["kb/returns.md#chunk-0000"])[0].metadata["team"] == "support"


def test_documents_keep_their_old_route(monkeypatch):
    import lichen.ingest.pipeline as pipeline

    def refuse(*args, **kwargs):
        raise AssertionError("documents went through ingestion")

    monkeypatch.setattr(pipeline, "add_inputs", refuse)
    index = SessionIndex("plain")
    given = [DocumentInfo(id="a", text="refunds take five days", metadata={"k": 1})]
    assert index.add_docs_sync(given) == (1, 0)
    assert index.add_docs_sync(given) == (0, 1)
    assert index.get_docs_sync() == [DocumentInfo(id="a", text="refunds take five days", metadata={"k": 1})]
    with pytest.raises(AssertionError, match="through ingestion"):
        index.add_docs_sync([{"text": "a dict is an input"}])


def test_one_bad_file_adds_nothing_unless_skip_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = make_folder(tmp_path)
    (folder / "bad.txt").write_bytes(b"\xff\xfe not UTF-8")
    (folder / "deck.pptx").write_bytes(b"PK\x03\x04")
    index = SessionIndex("kb")
    index.add_docs_sync([DocumentInfo(id="before", text="already here")])
    with pytest.raises(SourceError) as caught:
        index.add_docs_sync([folder, folder / "deck.pptx", "missing.md"])
    assert isinstance(caught.value, InvalidArgumentError)
    assert sorted(f.source for f in caught.value.failures) == ["kb/bad.txt", "kb/deck.pptx", "missing.md"]
    assert "kb/bad.txt: not UTF-8" in str(caught.value) and "unsupported file type '.pptx'" in str(caught.value)
    assert ids(index) == ["before"]  # nothing added
    result = index.add_docs_sync([folder, folder / "deck.pptx", "missing.md"], skip_errors=True)
    assert sorted(item.source for item in result.skipped) == ["kb/bad.txt", "kb/deck.pptx", "missing.md"]
    assert result.added == 4 and index.doc_count == 5


def test_a_read_only_index_refuses_inputs_before_reading_them(tmp_path):
    folder = make_folder(tmp_path)
    index = SessionIndex("kb", read_only=True)
    with pytest.raises(InvalidArgumentError, match="read-only"):
        index.add_docs_sync(folder)
    with pytest.raises(InvalidArgumentError, match="read-only"):
        index.sync_folder_sync(folder)
    assert index.sync_folder_sync(folder, dry_run=True).added  # a dry run writes nothing: allowed


def test_truncation_warns_once_per_call_and_is_recorded():
    index = SessionIndex("long")
    docs = [DocumentInfo(id=f"long-{i}", text=LONG + str(i), metadata={"n": i}) for i in range(3)]
    docs += [DocumentInfo(id="short", text="fits easily"), DocumentInfo(id="own-vector", text=LONG, embedding=[1.0] * 384)]
    with pytest.warns(TruncationWarning) as caught:
        index.add_docs_sync(docs)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert message.startswith("3 of 5 documents are longer than model 'lichen-minilm' reads (256 tokens; the longest has 303)")
    assert "'long-0', 'long-1', 'long-2'" in message and TRUNCATION_KEY in message
    assert caught[0].filename == __file__  # it names the caller's line, not Lichen's
    stored = {doc.id: doc.metadata for doc in index.get_docs_sync()}
    assert stored["long-0"] == {"n": 0, TRUNCATION_KEY: 303}
    assert stored["short"] == {} and stored["own-vector"] == {}  # a given vector is not measured
    assert docs[0].metadata == {"n": 0}  # the caller's documents are not changed
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails here
        index.add_docs_sync([DocumentInfo(id="short-2", text="word " * 254)])  # exactly the window: no warning
    assert TRUNCATION_KEY not in index.get_docs_sync(["short-2"])[0].metadata


def test_the_truncation_key_round_trips_and_is_never_overwritten_in_silence():
    index = SessionIndex("long")
    with pytest.warns(TruncationWarning):
        index.add_docs_sync([DocumentInfo(id="a", text=LONG)])
    read_back = index.get_docs_sync(["a"])
    with pytest.warns(TruncationWarning):
        assert index.add_docs_sync(read_back) == (0, 1)  # the value Lichen found: accepted
    assert index.get_docs_sync(["a"])[0].metadata == {TRUNCATION_KEY: 302}
    for wrong, text in ((5, LONG), ("yes", LONG), (302, "now short")):
        with pytest.raises(InvalidArgumentError, match=f"metadata key '{TRUNCATION_KEY}' is Lichen's"):
            index.add_docs_sync([DocumentInfo(id="a", text=text, metadata={TRUNCATION_KEY: wrong})])
    assert index.get_docs_sync(["a"])[0].text == LONG  # refused whole


def test_truncation_is_warned_once_for_a_whole_sync(tmp_path):
    folder = tmp_path / "records"
    folder.mkdir()
    rows = [f'{{"id": "r{i}", "text": "{LONG}"}}' for i in range(2)]
    (folder / "a.jsonl").write_text(rows[0] + "\n")  # records are not chunked: they can be too long
    (folder / "b.jsonl").write_text(rows[1] + "\n")
    index = SessionIndex("kb")
    with pytest.warns(TruncationWarning) as caught:
        with collected():  # what sync_folder wraps its batches in
            index.add_docs_sync([DocumentInfo(id="x", text=LONG)])
            index.add_docs_sync([DocumentInfo(id="y", text=LONG)])
    assert len(caught) == 1 and str(caught[0].message).startswith("2 documents are longer")
    with pytest.warns(TruncationWarning) as caught:
        index.sync_folder_sync(folder)
    assert len(caught) == 1 and "'r0', 'r1'" in str(caught[0].message)


def test_refresh_source_removes_the_stale_tail():
    from lichen.ingest import chunk_text

    def chunks(text):
        pieces = chunk_text(text, "markdown", kind="markdown")
        return [DocumentInfo(id=f"guide#chunk-{i:04d}", text=piece.document_text) for i, piece in enumerate(pieces)]

    index = SessionIndex("kb")
    index.add_docs_sync([DocumentInfo(id="other", text="Section 9 text about topic9", metadata={"source": "x"})])
    first = index.refresh_source_sync("guide", chunks(sections(21)))
    assert (first.added, first.deleted) == (21, 0)
    shrunk = index.refresh_source_sync("guide", chunks(sections(6, word="rewritten")))
    assert (shrunk.added, shrunk.updated, shrunk.deleted) == (0, 6, 15)
    assert ids(index, "guide") == [f"guide#chunk-{i:04d}" for i in range(6)]
    found = {d.id for d in index.query_sync("topic20 topic15 topic9", QueryOptions(top_k=50, alpha=0.0)).docs}
    assert "other" in found and not found & {f"guide#chunk-{i:04d}" for i in range(6, 21)}
    assert index.refresh_source_sync("guide").deleted == 6 and ids(index) == ["other"]


async def test_the_async_faces(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = make_folder(tmp_path)
    index = SessionIndex("kb")
    report = await index.sync_folder(folder)
    assert report.added == ["kb/faq.jsonl", "kb/guides/setup.md", "kb/returns.md"] and index.doc_count == 4
    assert (await index.sync_folder(folder)).changes == 0
    (folder / "returns.md").write_text("# Returns\n\nReturn within 60 days.\n")
    (folder / "guides" / "setup.md").unlink()
    report = await index.sync_folder(folder)
    assert (report.changed, report.deleted, report.chunks_deleted) == (["kb/returns.md"], ["kb/guides/setup.md"], 2)
    assert ids(index, "kb/returns.md") == ["kb/returns.md#chunk-0000"]
    removed = await index.refresh_source("kb/returns.md")
    assert removed.deleted == 1
    added = await index.add_docs([folder / "returns.md"])  # named as a sync names it, from here
    assert tuple(added) == (1, 0) and ids(index, "kb/returns.md") == ["kb/returns.md#chunk-0000"]
    result = await index.add_docs([DocumentInfo(id="plain", text="a document")])
    assert result == (1, 0) and result.skipped == []


def test_adding_short_documents_loads_nothing_of_ingestion():
    """A voice agent adds one short turn at a time: no chunker, reader or tokenizer is
    loaded for that (the truncation check knows a short text fits from its length)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from lichen import DocumentInfo, SessionIndex\n"
        "index = SessionIndex('turns')\n"
        "print(tuple(index.add_docs_sync([DocumentInfo(id='t1', text='Customer: I was billed twice.')])))\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('lichen.ingest.'))\n"
        "print(loaded)\n"
        "index.add_docs_sync([DocumentInfo(id='t2', text='word ' * 300)])\n"  # a long one: now it counts
        "print('lichen.ingest.tokens' in sys.modules, 'lichen.ingest.readers' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "(1, 0)", "['lichen.ingest.errors', 'lichen.ingest.results', 'lichen.ingest.truncation']", "True False",
    ]


def test_chunks_sized_in_tokens_are_not_counted_again_unless_a_prompt_comes_first(tmp_path, monkeypatch):
    import lichen.ingest.truncation as truncation

    folder = tmp_path / "kb"
    folder.mkdir()
    (folder / "long.txt").write_text("word " * 600)  # chunks of exactly the 254 pieces that fit, and a tail
    (folder / "records.jsonl").write_text(f'{{"id": "rec", "text": "{LONG}"}}\n')  # records are not chunked
    counted = []  # what the truncation check tokenizes
    measure = truncation._measure

    class Spy:
        def __init__(self, real):
            self.real = real

        def __getattr__(self, name):
            return getattr(self.real, name)

        def count(self, texts):
            counted.extend(texts)
            return self.real.count(texts)

    monkeypatch.setattr(truncation, "_measure", lambda model_id: Spy(measure(model_id)))
    index = SessionIndex("kb")
    with pytest.warns(TruncationWarning) as caught:
        index.sync_folder_sync(folder)
    assert "'rec'" in str(caught[0].message) and "kb/long.txt" not in str(caught[0].message)
    chunks = [d.text for d in index.get_docs_sync(filter={"source": "kb/long.txt"})]
    assert len(chunks) > 1 and not set(chunks) & set(counted)  # chunk texts never re-counted
    assert LONG in counted  # the record was
    # With a passage prompt (e5's "passage: ") a full chunk no longer fits: it is counted, and said.
    prompted = SessionIndex("prompted")
    prompted._embedder = prompted._embedder.with_prompts(passage="passage: ")
    with pytest.warns(TruncationWarning, match="kb/long.txt#chunk-0000"):
        prompted.sync_folder_sync(folder, exclude="*.jsonl")
