"""Inputs to documents: every kind of input, folders with globs, all-or-nothing batches
and skip_errors, stable ids, reserved metadata, and the truncation count."""

from __future__ import annotations

import os

import pytest
from lichen import DocumentInfo, InvalidArgumentError, SessionIndex
from lichen.ingest import RESERVED_KEYS, SourceError, add_inputs, is_documents_only, prepare, token_measure
from lichen.ingest.sources import classify, walk_directory


def make_tree(root):
    files = {
        "docs/returns.md": "# Returns\n\nReturn within 30 days.\n\n## Refunds\n\nRefunds take 5 days.\n",
        "docs/guides/setup.md": "# Setup\n\nInstall the app.\n",
        "docs/guides/deep/notes.txt": "Plain notes about shipping.",
        "docs/drafts/wip.md": "# Draft\n\nNot ready.\n",
        "docs/.hidden/secret.md": "# Secret\n",
        "docs/.env.md": "# Dotfile\n",
        "docs/image.png": "not text",
        "docs/faq.jsonl": '{"id": "faq-1", "text": "Refunds arrive in 5 days."}\n',
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root / "docs"


def sources(files):
    return [file.source for file in files]


def test_folders_are_walked_with_include_and_exclude_globs(tmp_path):
    docs = make_tree(tmp_path)
    assert sources(walk_directory(docs)) == [  # every type Lichen reads, no hidden names, sorted
        "docs/drafts/wip.md", "docs/faq.jsonl", "docs/guides/deep/notes.txt", "docs/guides/setup.md", "docs/returns.md",
    ]
    assert sources(walk_directory(docs, include="*.md")) == ["docs/drafts/wip.md", "docs/guides/setup.md", "docs/returns.md"]
    assert sources(walk_directory(docs, include="guides/**/*.txt")) == ["docs/guides/deep/notes.txt"]
    assert sources(walk_directory(docs, include=["*.md"], exclude=["drafts"])) == ["docs/guides/setup.md", "docs/returns.md"]
    assert sources(walk_directory(docs, exclude="**/deep/*", include="**/*.txt")) == []
    assert sources(walk_directory(docs, include=".hidden/*.md")) == ["docs/.hidden/secret.md"]  # named on purpose
    assert sources(walk_directory(docs, include="*.md", prefix="kb:")) == ["kb:drafts/wip.md", "kb:guides/setup.md",
                                                                          "kb:returns.md"]
    with pytest.raises(InvalidArgumentError, match="not a folder"):
        walk_directory(tmp_path / "nope")


def test_every_kind_of_input(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_tree(tmp_path)
    given = DocumentInfo(id="manual", text="kept exactly as given", metadata={"a": 1})
    prepared = prepare(
        [
            given,
            {"id": "d1", "text": "a dict", "topic": "billing"},
            {"text": "a dict without an id"},
            '[{"id": "j1", "text": "JSON array text"}]',
            '{"id": "l1", "text": "JSON Lines"}\n{"id": "l2", "text": "text"}',
            "docs/returns.md",
            tmp_path / "docs" / "guides",
        ],
        exclude="deep",
    )
    ids = [doc.id for doc in prepared.documents]
    assert ids[:2] == ["manual", "d1"] and ids[3:6] == ["j1", "l1", "l2"]
    assert prepared.documents[0] is given
    assert prepared.documents[1].metadata == {"topic": "billing"}
    assert len(ids[2]) == 16 and ids[2] == prepare([{"text": "a dict without an id"}]).documents[0].id  # from the text
    assert ids[6:] == ["docs/returns.md#chunk-0000", "docs/returns.md#chunk-0001", "guides/setup.md#chunk-0000"]
    assert [source.source for source in prepared.sources] == ["docs/returns.md", "guides/setup.md"]
    one = classify(tmp_path / "docs" / "returns.md")  # a single item, not a list
    assert sources(one.files) == ["docs/returns.md"]
    with pytest.raises(InvalidArgumentError, match="JSON text"):
        prepare(['[{"id": 1, "txt": "typo"}]'])
    with pytest.raises(InvalidArgumentError, match="cannot add int"):
        prepare(42)


def test_one_bad_file_adds_nothing_unless_skip_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    docs = make_tree(tmp_path)
    (docs / "bad.txt").write_bytes(b"\xff\xfe broken")
    index = SessionIndex("kb")
    with pytest.raises(SourceError) as caught:
        add_inputs(index, [docs, tmp_path / "gone.md"])
    assert sorted(failure.source for failure in caught.value.failures) == ["docs/bad.txt", "gone.md"]
    assert index.doc_count == 0
    result = add_inputs(index, [docs, tmp_path / "gone.md"], skip_errors=True)
    assert sorted(item.source for item in result.skipped) == ["docs/bad.txt", "gone.md"]
    added, updated = result  # still unpacks as add_docs always did
    assert (added, updated) == (index.doc_count, 0) and added > 0
    assert "docs/bad.txt#chunk-0000" not in {doc.id for doc in index.get_docs_sync()}


def test_re_adding_a_file_replaces_its_chunks(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "long.md"
    path.write_text("\n\n".join(f"## Part {i}\n\nSection {i} text." for i in range(21)), encoding="utf-8")
    index = SessionIndex("kb")
    assert tuple(add_inputs(index, [path])) == (21, 0)
    assert tuple(add_inputs(index, [path])) == (0, 21)  # same ids: replaced, not duplicated
    assert index.doc_count == 21
    path.write_text("\n\n".join(f"## Part {i}\n\nSection {i} text." for i in range(6)), encoding="utf-8")
    result = add_inputs(index, [path])
    assert (tuple(result), result.deleted) == ((0, 6), 15)
    assert sorted(doc.id for doc in index.get_docs_sync()) == [f"long.md#chunk-{i:04d}" for i in range(6)]


def test_extra_metadata_goes_on_every_chunk_and_may_not_shadow_reserved_keys(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.md").write_text("# A\n\ntext\n\n# B\n\nmore", encoding="utf-8")
    docs = prepare(["a.md"], metadata={"team": "support", "tags": ["faq"]}).documents
    assert all(doc.metadata["team"] == "support" and doc.metadata["tags"] == ["faq"] for doc in docs)
    assert set(RESERVED_KEYS) - {"heading"} <= set(docs[0].metadata)
    for key in RESERVED_KEYS:
        with pytest.raises(InvalidArgumentError, match="reserved"):
            prepare(["a.md"], metadata={key: "mine"})
    (tmp_path / "r.jsonl").write_text('{"text": "x", "source": "web"}\n', encoding="utf-8")
    with pytest.raises(InvalidArgumentError, match="reserved key 'source'"):
        prepare(["r.jsonl"])


def test_ids_given_twice_are_refused_naming_the_sources(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.jsonl").write_text('{"id": "same", "text": "one"}\n', encoding="utf-8")
    (tmp_path / "b.jsonl").write_text('{"id": "same", "text": "two"}\n', encoding="utf-8")
    with pytest.raises(InvalidArgumentError, match=r"'same' \(in a.jsonl, b.jsonl\)"):
        prepare(["a.jsonl", "b.jsonl"])
    # The same file named twice (alone and inside its folder) is read once.
    assert len(prepare([tmp_path / "a.jsonl", tmp_path], include="a.jsonl", prefix="").documents) == 1


def test_source_ids_are_relative_to_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "kb").mkdir()
    (tmp_path / "kb" / "a.txt").write_text("hello", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert prepare(["kb/a.txt"]).sources[0].source == "kb/a.txt"
    assert prepare(["kb"]).sources[0].source == "kb/a.txt"  # the folder's own name leads
    monkeypatch.chdir(tmp_path / "kb")
    assert prepare([os.path.join("..", "kb", "a.txt")]).sources[0].source == "a.txt"
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # outside the working directory: absolute
    assert prepare([tmp_path / "kb" / "a.txt"]).sources[0].source == (tmp_path / "kb" / "a.txt").as_posix()


def test_documents_only_keeps_the_old_route():
    assert is_documents_only([DocumentInfo(id="a", text="x")])
    assert is_documents_only([])
    assert not is_documents_only(["a.md"]) and not is_documents_only("a.md") and not is_documents_only([{"text": "x"}])


def test_texts_longer_than_the_window_are_counted_for_the_warning():
    measure = token_measure()
    texts = ["short", "word " * 254, "word " * 255, "word " * 1000]
    assert measure.longer_than_window(texts) == [(2, 257), (3, 1002)]  # with [CLS] and [SEP]


def test_a_custom_chunker_that_breaks_the_contract_is_reported_by_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.txt").write_text("alpha beta gamma", encoding="utf-8")

    class Sloppy:
        fingerprint = "sloppy-v1"

        def chunk(self, content, measure):
            from lichen.ingest import Chunk

            return [Chunk("ALPHA", 0, 5)]  # not the text at 0:5

    with pytest.raises(SourceError, match="a.txt: chunker sloppy-v1 returned chunk 0"):
        prepare(["a.txt"], chunker=Sloppy())
    docs = prepare(["a.txt"], chunker=lambda text: text.split()).documents
    assert [(d.text, d.metadata["locator_start"]) for d in docs] == [("alpha", 0), ("beta", 6), ("gamma", 11)]
    # A string naming an existing file is a path, even if it starts like JSON.
    (tmp_path / "[notes].txt").write_text("bracketed name", encoding="utf-8")
    assert prepare(["[notes].txt"]).documents[0].text == "bracketed name"


def test_oversized_files_are_refused_unread(tmp_path, monkeypatch):
    import lichen.ingest.pipeline as pipeline

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(pipeline, "MAX_FILE_BYTES", 10)
    (tmp_path / "big.txt").write_text("more than ten bytes", encoding="utf-8")
    with pytest.raises(SourceError, match="big.txt: it is 19 bytes; files over 10 are not read"):
        prepare(["big.txt"])
