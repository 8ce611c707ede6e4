"""Keeping an index in step with its sources: refresh_source's stale tail, and folder
syncs that add, re-chunk, delete and skip, with the state kept in the index itself."""

from __future__ import annotations

import pytest
from lichen import DocumentInfo, InvalidArgumentError, QueryOptions, SessionIndex
from lichen.ingest import RecursiveChunker, SourceError, indexed_sources, prepare, refresh_source, sync_directory


def sections(count: int, word: str = "text") -> str:
    return "\n\n".join(f"## Part {i}\n\nSection {i} {word} about topic{i}." for i in range(count))


class CountingIndex(SessionIndex):
    """A session that records each write, to prove what a sync did not do."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.writes: list[list[str]] = []
        self.deletes: list[list[str]] = []

    def add_docs_sync(self, docs):
        self.writes.append([doc.id for doc in docs])
        return super().add_docs_sync(docs)

    def delete_docs_sync(self, ids=None, *, filter=None):
        self.deletes.append(list(ids or []))
        return super().delete_docs_sync(ids, filter=filter)


def ids(index, source=None):
    docs = index.get_docs_sync(filter={"source": source} if source else None)
    return sorted(doc.id for doc in docs)


def found_ids(index, text):
    return {doc.id for doc in index.query_sync(text, QueryOptions(top_k=50, alpha=0.0)).docs}


def test_refresh_source_deletes_the_stale_tail(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "guide.md"
    path.write_text(sections(21), encoding="utf-8")
    index = SessionIndex("kb")
    index.add_docs_sync([DocumentInfo(id="other", text="Section 9 text about something else", metadata={"source": "x"})])
    first = refresh_source(index, "guide.md", prepare([path]).documents)
    assert (first.added, first.updated, first.deleted) == (21, 0, 0)
    assert "guide.md#chunk-0020" in found_ids(index, "topic20")
    path.write_text(sections(6), encoding="utf-8")
    shrunk = refresh_source(index, "guide.md", prepare([path]).documents)
    assert (shrunk.added, shrunk.updated, shrunk.deleted) == (0, 6, 15)
    assert ids(index, "guide.md") == [f"guide.md#chunk-{i:04d}" for i in range(6)]
    assert not {f"guide.md#chunk-{i:04d}" for i in range(6, 21)} & found_ids(index, "topic9 topic15 topic20")
    gone = refresh_source(index, "guide.md")  # nothing: the source is removed
    assert (gone.added, gone.deleted) == (0, 6) and ids(index, "guide.md") == []
    assert ids(index) == ["other"]  # other sources untouched


def test_refresh_source_stamps_the_source_and_refuses_another(tmp_path):
    index = SessionIndex("kb")
    refresh_source(index, "notes", [DocumentInfo(id="n1", text="first"), DocumentInfo(id="n2", text="second")])
    assert [doc.metadata["source"] for doc in index.get_docs_sync()] == ["notes", "notes"]
    assert refresh_source(index, "notes", [DocumentInfo(id="n1", text="first, edited")]).deleted == 1
    with pytest.raises(InvalidArgumentError, match="belongs to source 'elsewhere'"):
        refresh_source(index, "notes", [DocumentInfo(id="n3", text="x", metadata={"source": "elsewhere"})])
    with pytest.raises(InvalidArgumentError, match="non-empty string"):
        refresh_source(index, "", [])
    assert ids(index) == ["n1"]


def make_docs(root):
    docs = root / "docs"
    (docs / "guides").mkdir(parents=True)
    (docs / "returns.md").write_text("# Returns\n\nReturn within 30 days.\n\n## Refunds\n\nRefunds take 5 days.\n")
    (docs / "guides" / "setup.md").write_text("# Setup\n\nInstall the app, then sign in.\n")
    (docs / "long.md").write_text(sections(21))
    (docs / "faq.jsonl").write_text('{"id": "faq-1", "text": "Passwords reset from the sign-in page."}\n')
    return docs


def test_sync_adds_rechunks_deletes_and_then_changes_nothing(tmp_path):
    docs = make_docs(tmp_path)
    index = CountingIndex("kb")
    index.add_docs_sync([DocumentInfo(id="manual", text="a document added by hand")])
    first = sync_directory(index, docs)
    assert first.added == ["docs/faq.jsonl", "docs/guides/setup.md", "docs/long.md", "docs/returns.md"]
    assert (first.changed, first.deleted, first.unchanged) == ([], [], [])
    assert first.chunks_written == 1 + 1 + 21 + 2 and index.doc_count == 26

    index.writes.clear()
    again = sync_directory(index, docs)
    assert again.changes == 0 and again.chunks_written == 0 and len(again.unchanged) == 4
    assert index.writes == [] and index.deletes == []  # hashes only: nothing embedded, nothing deleted

    (docs / "long.md").write_text(sections(6, word="rewritten"))  # shrinks from 21 chunks to 6
    (docs / "guides" / "setup.md").unlink()
    (docs / "new.txt").write_text("A new file about shipping times.")
    third = sync_directory(index, docs)
    assert (third.added, third.changed, third.deleted) == (["docs/new.txt"], ["docs/long.md"], ["docs/guides/setup.md"])
    assert third.unchanged == ["docs/faq.jsonl", "docs/returns.md"]
    assert third.chunks_written == 7 and third.chunks_deleted == 15 + 1
    assert ids(index, "docs/long.md") == [f"docs/long.md#chunk-{i:04d}" for i in range(6)]
    assert ids(index, "docs/guides/setup.md") == []
    assert not {f"docs/long.md#chunk-{i:04d}" for i in range(6, 21)} & found_ids(index, "topic12 topic20 text")
    assert "manual" in ids(index)  # not a synced source: left alone
    assert [text for text in third.lines() if text[0] in "+~-"] == [
        "+ docs/new.txt (1 chunk)", "~ docs/long.md (6 chunks)", "- docs/guides/setup.md",
    ]
    assert third.summary().startswith("synced ") and "1 added, 1 changed, 1 deleted, 2 unchanged" in third.summary()
    assert sync_directory(index, docs).changes == 0


def test_the_state_lives_in_the_index_file(tmp_path):
    docs = make_docs(tmp_path)
    index = SessionIndex("kb")
    sync_directory(index, docs)
    index.save(tmp_path / "kb.lix")
    reopened = CountingIndex.from_snapshot(SessionIndex.open(tmp_path / "kb.lix")._snapshot())
    assert sync_directory(reopened, docs).changes == 0 and reopened.writes == []
    assert set(indexed_sources(reopened, prefix="docs/")) == {
        "docs/faq.jsonl", "docs/guides/setup.md", "docs/long.md", "docs/returns.md",
    }


def test_an_interrupted_source_is_synced_again(tmp_path):
    docs = make_docs(tmp_path)
    index = SessionIndex("kb")
    sync_directory(index, docs)
    index.delete_docs_sync(["docs/long.md#chunk-0007"])  # as if a write had stopped half-way
    report = sync_directory(index, docs)
    assert report.changed == ["docs/long.md"] and report.chunks_written == 21
    assert len(ids(index, "docs/long.md")) == 21


def test_changing_the_chunking_or_the_metadata_rechunks(tmp_path):
    docs = make_docs(tmp_path)
    index = SessionIndex("kb")
    sync_directory(index, docs)
    smaller = sync_directory(index, docs, chunker=RecursiveChunker(size=64))
    assert len(smaller.changed) == 3 and smaller.unchanged == ["docs/faq.jsonl"]  # records are not chunked
    tagged = sync_directory(index, docs, chunker=RecursiveChunker(size=64), metadata={"team": "support"})
    assert len(tagged.changed) == 4
    assert all(doc.metadata["team"] == "support" for doc in index.get_docs_sync(filter={"source_hash": {"$exists": True}}))


def test_two_folders_in_one_index_keep_to_their_own_sources(tmp_path):
    docs = make_docs(tmp_path)
    other = tmp_path / "notes"
    other.mkdir()
    (other / "n.md").write_text("# Note\n\nA note.\n")
    index = SessionIndex("kb")
    sync_directory(index, docs)
    assert sync_directory(index, other).added == ["notes/n.md"]
    assert sync_directory(index, docs).changes == 0  # notes/ is not docs/: nothing deleted
    assert ids(index, "notes/n.md") == ["notes/n.md#chunk-0000"]


def test_unreadable_files_fail_the_sync_or_are_skipped_and_kept(tmp_path):
    docs = make_docs(tmp_path)
    index = CountingIndex("kb")
    sync_directory(index, docs)
    (docs / "returns.md").write_bytes(b"\xff\xfe not UTF-8")
    (docs / "new.md").write_text("# New\n\nfresh")
    index.writes.clear()
    with pytest.raises(SourceError, match="docs/returns.md: not UTF-8"):
        sync_directory(index, docs)
    assert index.writes == [] and index.deletes == []  # nothing written
    report = sync_directory(index, docs, skip_errors=True)
    assert [item.source for item in report.skipped] == ["docs/returns.md"]
    assert report.added == ["docs/new.md"] and report.deleted == []
    assert len(ids(index, "docs/returns.md")) == 2  # the old chunks stay until the file reads again


def test_dry_run_and_progress(tmp_path):
    docs = make_docs(tmp_path)
    index = CountingIndex("kb")
    plan = sync_directory(index, docs, dry_run=True)
    assert plan.dry_run and len(plan.added) == 4 and index.writes == [] and index.doc_count == 0
    assert plan.summary().startswith("would sync")
    events = []
    sync_directory(index, docs, progress=lambda stage, done, total: events.append((stage, done, total)), batch_size=8)
    stages = [stage for stage, _, _ in events]
    assert stages.count("hashing") == 4 and stages.count("chunking") == 4
    writing = [(done, total) for stage, done, total in events if stage == "writing"]
    assert writing[-1] == (25, 25) and len(writing) > 1  # batches of at least 8 chunks
    assert all(len(batch) >= 8 for batch in index.writes[:-1])
    assert sync_directory(index, docs).to_dict()["unchanged"] == 4


def test_a_folder_of_every_type_syncs_and_then_holds_still(tmp_path):
    import docx
    from test_ingest_readers import HTML, write_pdf

    folder = tmp_path / "mixed"
    folder.mkdir()
    write_pdf(folder / "policy.pdf")
    document = docx.Document()
    document.add_heading("Warranty", level=1)
    document.add_paragraph("Two years on every device.")
    document.save(folder / "warranty.docx")
    (folder / "help.html").write_text(HTML, encoding="utf-8")
    (folder / "notes.txt").write_text("Plain notes.", encoding="utf-8")
    (folder / "guide.md").write_text("# Guide\n\nRead me.", encoding="utf-8")
    (folder / "faq.json").write_text('[{"id": "q1", "text": "Is it free? Yes."}]', encoding="utf-8")
    (folder / "faq.ndjson").write_text('{"id": "q2", "text": "Can I cancel? Any time."}\n', encoding="utf-8")
    index = SessionIndex("kb")
    first = sync_directory(index, folder)
    assert len(first.added) == 7 and not first.skipped
    locators = {doc.metadata["source"]: doc.metadata["locator_type"] for doc in index.get_docs_sync()}
    assert locators == {
        "mixed/policy.pdf": "page", "mixed/warranty.docx": "char", "mixed/help.html": "char", "mixed/notes.txt": "char",
        "mixed/guide.md": "char", "mixed/faq.json": "line", "mixed/faq.ndjson": "line",
    }
    assert sync_directory(index, folder).changes == 0
    document.add_paragraph("Batteries: one year.")
    document.save(folder / "warranty.docx")
    assert sync_directory(index, folder).changed == ["mixed/warranty.docx"]
    hit = index.query_sync("how long is the battery warranty", QueryOptions(top_k=1)).docs[0]
    assert hit.metadata["source"] == "mixed/warranty.docx" and "Batteries: one year." in hit.text
