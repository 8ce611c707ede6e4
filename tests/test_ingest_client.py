"""Ingestion through the Client, on the embedded store and a real server: create_index and
add_docs of files (embedded once, stale tails removed, one bad file adding nothing or
skipped), and sync_folder (push only on change, a conflicting push synced again)."""

from __future__ import annotations

import pytest
from server_helpers import Deployment

from lichen import Client, DocumentInfo, NotFoundError, QueryOptions, SessionIndex, SourceError
from lichen.ingest import AddResult


def sections(count: int, word: str = "text") -> str:
    return "\n\n".join(f"## Part {i}\n\nSection {i} {word} about topic{i}." for i in range(count))


def make_folder(root):
    folder = root / "manual"
    folder.mkdir()
    (folder / "guide.md").write_text(sections(21))
    (folder / "faq.jsonl").write_text('{"id": "faq-1", "text": "Passwords reset from the sign-in page."}\n')
    return folder


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    deployed = Deployment("fs", tmp_path_factory.mktemp("ingest-client"), None)
    yield deployed
    deployed.stop()


@pytest.fixture(params=["embedded", "server"])
def client(request):
    if request.param == "embedded":
        return Client()
    server = request.getfixturevalue("deployment").server
    return server.client(server.create_project())


def stored_ids(client, name, source=None):
    return sorted(d.id for d in client.get_docs_sync(name, filter={"source": source} if source else None))


def count_embedded(monkeypatch):
    embedded = []
    original = SessionIndex.embed_texts

    def counting(self, texts):
        embedded.extend(texts)
        return original(self, texts)

    monkeypatch.setattr(SessionIndex, "embed_texts", counting)
    return embedded


def test_create_and_add_files_remove_stale_chunks_and_embed_once(client, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = make_folder(tmp_path)
    created = client.create_index_sync("manual-idx", folder)
    assert created.doc_count == 22 and created.skipped == []
    assert len(stored_ids(client, "manual-idx", "manual/guide.md")) == 21
    (folder / "guide.md").write_text(sections(6, word="rewritten"))
    embedded = count_embedded(monkeypatch)
    import lichen.ingest.pipeline as pipeline

    apply_prepared = pipeline.apply_prepared
    calls = []

    def conflicting(session, prepared, **kwargs):  # another writer pushes while we write
        calls.append(session.version)
        if len(calls) == 1:
            client.add_docs_sync("manual-idx", [DocumentInfo(id="other-writer", text="added meanwhile")])
        return apply_prepared(session, prepared, **kwargs)

    monkeypatch.setattr(pipeline, "apply_prepared", conflicting)
    result = client.add_docs_sync("manual-idx", [folder / "guide.md"])
    assert isinstance(result, AddResult) and (tuple(result), result.deleted) == ((0, 6), 15)
    assert len(calls) == 2 and calls[1] > calls[0]  # retried on the version that won
    assert len([t for t in embedded if "rewritten" in t]) == 6  # embedded once, not once per attempt
    assert stored_ids(client, "manual-idx", "manual/guide.md") == [f"manual/guide.md#chunk-{i:04d}" for i in range(6)]
    assert "other-writer" in stored_ids(client, "manual-idx")
    client.load_index_sync("manual-idx")
    hits = client.query_sync("manual-idx", "topic15", QueryOptions(top_k=10, alpha=0.0)).docs
    assert not [hit.id for hit in hits if hit.id.startswith("manual/guide.md#chunk-001")]


def test_a_bad_file_creates_nothing_or_is_skipped(client, tmp_path):
    folder = make_folder(tmp_path)
    (folder / "broken.json").write_text('[{"text": "fine"}, {"txt": "typo"}]')
    with pytest.raises(SourceError, match="manual/broken.json: element 1"):
        client.create_index_sync("with-bad", folder)
    with pytest.raises(NotFoundError):
        client.get_index_sync("with-bad")
    created = client.create_index_sync("with-bad", folder, skip_errors=True)
    assert [item.source for item in created.skipped] == ["manual/broken.json"] and created.doc_count == 22
    with pytest.raises(SourceError):
        client.add_docs_sync("with-bad", [folder / "broken.json", folder / "guide.md"])
    assert client.get_index_sync("with-bad").version == 1  # nothing written
    assert client.add_docs_sync("with-bad", [DocumentInfo(id="plain", text="a document")]) == (1, 0)


def test_sync_folder_pushes_only_changes_and_syncs_again_after_a_conflict(client, tmp_path, monkeypatch):
    folder = make_folder(tmp_path)
    first = client.sync_folder_sync("synced", folder)
    assert first.added == ["manual/faq.jsonl", "manual/guide.md"] and client.get_index_sync("synced").version == 1
    assert client.sync_folder_sync("synced", folder).changes == 0
    assert client.get_index_sync("synced").version == 1  # nothing changed: nothing pushed
    (folder / "faq.jsonl").unlink()
    (folder / "new.txt").write_text("Shipping takes two days.")
    assert client.sync_folder_sync("synced", folder, dry_run=True).deleted == ["manual/faq.jsonl"]
    assert client.get_index_sync("synced").version == 1

    import lichen.ingest.sync as sync

    sync_directory = sync.sync_directory
    runs = []

    def raced(index, directory, **options):
        report = sync_directory(index, directory, **options)
        runs.append(report)
        if len(runs) == 1:  # another writer pushes before our push
            other = Client(client.project_id, client.project_key, url=client.url) if client.url else Client()
            other.add_docs_sync("synced", [DocumentInfo(id="other-writer", text="added meanwhile")])
        return report

    monkeypatch.setattr(sync, "sync_directory", raced)
    report = client.sync_folder_sync("synced", folder)
    assert len(runs) == 2 and (report.added, report.deleted) == (["manual/new.txt"], ["manual/faq.jsonl"])
    assert client.get_index_sync("synced").version == 3  # 1, the other writer's 2, ours 3
    ids = stored_ids(client, "synced")
    assert "other-writer" in ids and "manual/new.txt#chunk-0000" in ids and "faq-1" not in ids


async def test_the_async_faces(tmp_path):
    folder = make_folder(tmp_path)
    client = Client()
    created = await client.create_index("async-idx", [{"id": "r1", "text": "a record"}])
    assert created.doc_count == 1
    added = await client.add_docs("async-idx", folder, include="*.jsonl")
    assert tuple(added) == (1, 0)
    report = await client.sync_folder("async-idx", folder, exclude="*.jsonl")
    # The index follows the selection: a file left out by a pattern is gone from the folder's view.
    assert report.added == ["manual/guide.md"] and report.deleted == ["manual/faq.jsonl"]
    assert len(await client.get_docs("async-idx")) == 22
