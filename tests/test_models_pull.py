"""``lichen models pull`` (issue 28, item 1) through the real ``huggingface_hub`` client
against a local stand-in for the Hub (``tests/hub_standin.py``) serving tiny random BERTs
built here (``tests/tiny_models.py``): the pull, the revision pin, a corrupted or truncated
file refused, offline reuse, and that nothing else ever downloads: a missing model, on a
session or a loaded index, is an error that says what to pull."""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest

pytest.importorskip("huggingface_hub")
pytest.importorskip("onnx")
pytest.importorskip("safetensors")

from hub_standin import StandInHub  # noqa: E402
from tiny_models import cross_encoder_files, embedder_files  # noqa: E402

from lichen import Client, CorruptDataError, DocumentInfo, ModelUnavailableError, QueryOptions  # noqa: E402
from lichen.cli import main  # noqa: E402
from lichen.models import get_embedder, get_reranker, list_models  # noqa: E402
from lichen.models.catalogue import BGE_QUERY_PROMPT, CATALOGUE  # noqa: E402
from lichen.models.hub import pull  # noqa: E402

BGE = CATALOGUE["bge-small-en-v1.5"]


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """The stand-in Hub as HF_ENDPOINT, with a cache of its own and offline mode off."""
    with StandInHub() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        yield server


def cache(tmp_path):
    return tmp_path / "hf-cache"


def test_pull_catalogue_model_at_its_pinned_revision(hub, tmp_path, isolated_home):
    files = embedder_files(seed=3, pooling="cls", pooling_module=False)  # bge's layout: CLS, pooling from the catalogue
    hub.add(BGE.repo, files, commit=BGE.revision)
    hub.add(BGE.repo, embedder_files(seed=4), branch="main")  # main has moved on since the pin
    path, manifest = pull("bge-small-en-v1.5", cache_dir=cache(tmp_path))
    assert path == isolated_home / "models" / "bge-small-en-v1.5"
    assert manifest["source"] == BGE.repo and manifest["revision"] == BGE.revision
    assert manifest["source_sha256"] == hashlib.sha256(files["model.safetensors"]).hexdigest()
    assert manifest["pooling"] == "cls" and manifest["prompts"] == {"query": BGE_QUERY_PROMPT}
    assert manifest["license"] == "MIT" and manifest["catalogue"] == "bge-small-en-v1.5"
    assert set(manifest["files"]) >= {"config.json", "model.safetensors", "tokenizer.json"}
    assert not any(name.endswith(".bin") for name in manifest["files"])  # torch weights are never fetched
    info = {m.model_id: m for m in list_models()}["bge-small-en-v1.5"]
    assert (info.revision, info.kind, info.dimension) == (BGE.revision, "embedder", 32)
    session = Client().session_sync("pulled", model_id="bge-small-en-v1.5")
    session.add_docs_sync([DocumentInfo(id="a", text="refunds take five days"), DocumentInfo(id="b", text="hello")])
    assert session.query_sync("refund", QueryOptions(top_k=1)).docs[0].id in {"a", "b"}


def test_revision_pin_by_full_name(hub, tmp_path, capsys):
    old = hub.add("acme/tiny", embedder_files(seed=5))
    new = hub.add("acme/tiny", embedder_files(seed=6))  # main now points here
    _, at_old = pull("acme/tiny", old, cache_dir=cache(tmp_path))
    assert at_old["revision"] == old and at_old["source_sha256"] == hashlib.sha256(
        embedder_files(seed=5)["model.safetensors"]).hexdigest()
    # Another commit under the same id would mix vectors with indexes built on the old one.
    with pytest.raises(Exception, match="already exists"):
        pull("acme/tiny", new, cache_dir=cache(tmp_path))
    _, at_main = pull("acme/tiny", force=True, cache_dir=cache(tmp_path))
    assert at_main["revision"] == new
    # The command line: by name, with --revision, into its own id.
    assert main(["models", "pull", "acme/tiny", "--revision", old, "--id", "tiny-old", "--json"]) == 0
    assert '"revision": "%s"' % old in capsys.readouterr().out
    assert get_embedder("tiny-old").embed(["x"]).shape == (1, 32)


@pytest.mark.parametrize("damage", ["corrupt", "truncate"])
def test_a_corrupted_or_truncated_file_is_refused(hub, tmp_path, isolated_home, damage):
    hub.add("acme/tiny", embedder_files(seed=7))
    getattr(hub, damage).add(("acme/tiny", "model.safetensors"))
    with pytest.raises(CorruptDataError, match="model.safetensors|truncated"):
        pull("acme/tiny", cache_dir=cache(tmp_path))
    assert not (isolated_home / "models" / "acme--tiny").exists()  # nothing registered
    with pytest.raises(ModelUnavailableError, match="lichen models pull acme/tiny"):
        get_embedder("acme--tiny")
    getattr(hub, damage).clear()
    _, manifest = pull("acme/tiny", cache_dir=cache(tmp_path))  # the bad file was dropped: fetched again
    assert manifest["files"]["model.safetensors"] == manifest["source_sha256"]


def test_offline_reuse(tmp_path, monkeypatch, isolated_home):
    monkeypatch.setenv("HF_HUB_CACHE", str(cache(tmp_path)))
    with StandInHub() as hub:
        commit = hub.add("acme/tiny", embedder_files(seed=8))
        _, first = pull("acme/tiny", commit, endpoint=hub.url, cache_dir=cache(tmp_path))
        requests = len(hub.requests)
        # Already there at that commit: no request at all.
        assert pull("acme/tiny", commit, endpoint=hub.url, cache_dir=cache(tmp_path))[1] == first
        assert len(hub.requests) == requests
    # The Hub is gone: with HF_HUB_OFFLINE the cache alone rebuilds it, verified.
    (isolated_home / "models" / "acme--tiny" / "model.json").unlink()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _, rebuilt = pull("acme/tiny", commit, force=True, endpoint=hub.url, cache_dir=cache(tmp_path))
    assert rebuilt["revision"] == commit and rebuilt["files"] == first["files"]
    # Offline and never pulled: a clear refusal, not a hang or a download.
    with pytest.raises(ModelUnavailableError, match="offline"):
        pull("acme/other", endpoint=hub.url, cache_dir=cache(tmp_path))


def test_nothing_downloads_implicitly_and_readers_are_told_what_to_pull(hub, tmp_path, isolated_home):
    with pytest.raises(ModelUnavailableError, match="lichen models pull bge-small-en-v1.5"):
        Client().session_sync("s", model_id="bge-small-en-v1.5")
    assert hub.requests == []
    commit = hub.add("acme/tiny", embedder_files(seed=9))
    pull("acme/tiny", cache_dir=cache(tmp_path))
    client = Client()
    session = client.session_sync("kept", model_id="acme--tiny")
    session.add_docs_sync([DocumentInfo(id="a", text="alpha")])
    session.push_index_sync()
    assert client.store.read("kept").extra["model"] == {"id": "acme--tiny", "source": "acme/tiny", "revision": commit}
    # A reader with the same store but without the model: told the repository and revision.
    shutil.rmtree(isolated_home / "models" / "acme--tiny")
    requests = len(hub.requests)
    with pytest.raises(ModelUnavailableError, match=f"lichen models pull acme/tiny --revision {commit}"):
        Client().load_index_sync("kept")
    assert len(hub.requests) == requests


def test_cross_encoder_is_pulled_as_a_reranker(hub, tmp_path):
    hub.add("acme/tiny-ce", cross_encoder_files())
    _, manifest = pull("acme/tiny-ce", cache_dir=cache(tmp_path))
    assert manifest["kind"] == "cross-encoder" and "prompts" not in manifest
    with pytest.raises(ModelUnavailableError, match="cross-encoder, not an embedder"):
        get_embedder("acme--tiny-ce")
    assert np.isfinite(get_reranker("acme--tiny-ce").logits("q", ["a", "b"])).all()
