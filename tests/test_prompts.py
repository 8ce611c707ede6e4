"""A model's query and passage prompts are applied on every path that embeds (issue 28,
item 2): documents added to a session, queries (asked, prepared, shared by a context
search), a session's own ``embed_texts`` / ``embed_query``, and the LangChain and
LlamaIndex embeddings; users can override them. A tiny random BERT built here carries
e5-style prompts; each test compares with the model run on the prompted text by hand, so
dropping a prompt anywhere fails it."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("safetensors")

from tiny_models import embedder_files, write_files  # noqa: E402

from lichen import Client, ContextSearch, DocumentInfo, QueryOptions, SessionIndex  # noqa: E402
from lichen.cli import main  # noqa: E402
from lichen.models import get_embedder  # noqa: E402
from lichen.models.build import build_user_model  # noqa: E402

PROMPTS = {"query": "query: ", "passage": "passage: "}
DOCS = ["refunds arrive within five business days", "reset your password from the sign-in page", "we ship worldwide"]
QUESTION = "how long does a refund take"


@pytest.fixture
def model(tmp_path, isolated_home) -> str:
    """A model whose source declares e5's prompts (``config_sentence_transformers.json``)."""
    source = write_files(tmp_path / "src", embedder_files(seed=11, prompts={"query": "query: ", "document": "passage: "}))
    _, manifest = build_user_model(source, "tiny-e5")
    assert manifest["prompts"] == PROMPTS
    return "tiny-e5"


def raw(model: str, texts: list[str]) -> np.ndarray:
    """The model run on texts exactly as given."""
    return get_embedder(model).embed(texts)


def test_documents_get_the_passage_prompt_and_queries_the_query_prompt(model: str) -> None:
    session = SessionIndex("s", model_id=model)
    session.add_docs_sync([DocumentInfo(id=str(i), text=t) for i, t in enumerate(DOCS)])
    stored = np.array([d.embedding for d in session.get_docs_sync(include_embeddings=True)], np.float32)
    np.testing.assert_allclose(stored, raw(model, ["passage: " + t for t in DOCS]), atol=1e-6)
    np.testing.assert_allclose(session.embed_texts(DOCS), stored, atol=1e-6)

    prompted, bare = raw(model, ["query: " + QUESTION])[0], raw(model, [QUESTION])[0]
    assert float(prompted @ bare) < 0.999  # the prompt changes the vector: dropping it is visible
    np.testing.assert_allclose(session.embed_query(QUESTION), prompted, atol=1e-6)
    hits = session.query_sync(QUESTION, QueryOptions(top_k=3)).docs
    expected = stored @ prompted
    assert [h.id for h in hits] == [str(i) for i in np.argsort(-expected, kind="stable")]
    assert [h.score for h in hits] == pytest.approx(sorted(expected.tolist(), reverse=True), abs=1e-5)


def test_prepared_and_shared_query_vectors_are_prompted(model: str) -> None:
    client = Client()
    session = client.session_sync("call", model_id=model)
    session.add_docs_sync([DocumentInfo(id=str(i), text=t) for i, t in enumerate(DOCS)])
    session.push_index_sync()

    session.prepare_sync(QUESTION.upper() + "?")  # prepared early, asked as normalised
    np.testing.assert_allclose(session.embed_query(QUESTION), raw(model, ["query: " + QUESTION.upper() + "?"])[0], atol=1e-6)

    fresh = client.session_sync("other", model_id=model)
    fresh.add_docs_sync([DocumentInfo(id=str(i), text=t) for i, t in enumerate(DOCS)])
    client.load_index_sync("call")
    hits = ContextSearch(fresh, client=client, indexes=["call"], k=3, method="score").search("where is my refund")
    want = raw(model, ["passage: " + t for t in DOCS]) @ raw(model, ["query: where is my refund"])[0]
    assert sorted(h.score for h in hits) == pytest.approx(sorted(want.tolist()), abs=1e-5)


def test_models_without_prompts_embed_texts_as_given(tmp_path, isolated_home) -> None:
    build_user_model(write_files(tmp_path / "plain", embedder_files(seed=12)), "tiny-plain")
    session = SessionIndex("p", model_id="tiny-plain")
    np.testing.assert_allclose(session.embed_query(QUESTION), raw("tiny-plain", [QUESTION])[0], atol=1e-6)
    np.testing.assert_allclose(session.embed_texts(DOCS), raw("tiny-plain", DOCS), atol=1e-6)


def test_prompts_are_overridden_at_build(tmp_path, isolated_home, capsys) -> None:
    source = write_files(tmp_path / "src", embedder_files(seed=13, prompts={"query": "query: ", "passage": "passage: "}))
    assert main(["models", "build", str(source), "--id", "tiny-q", "--query-prompt", "Q: ", "--passage-prompt", ""]) == 0
    assert "query prompt: 'Q: '" in capsys.readouterr().err
    session = SessionIndex("o", model_id="tiny-q")
    np.testing.assert_allclose(session.embed_query("x"), raw("tiny-q", ["Q: x"])[0], atol=1e-6)
    np.testing.assert_allclose(session.embed_texts(["y"]), raw("tiny-q", ["y"]), atol=1e-6)


def test_langchain_embeddings_apply_and_override_prompts(model: str) -> None:
    langchain = pytest.importorskip("langchain_lichen")
    embeddings = langchain.LichenEmbeddings(model_id=model)
    np.testing.assert_allclose(embeddings.embed_query(QUESTION), raw(model, ["query: " + QUESTION])[0], atol=1e-6)
    np.testing.assert_allclose(embeddings.embed_documents(DOCS), raw(model, ["passage: " + t for t in DOCS]), atol=1e-6)
    custom = langchain.LichenEmbeddings(model_id=model, query_prompt="", passage_prompt="doc: ")
    np.testing.assert_allclose(custom.embed_query(QUESTION), raw(model, [QUESTION])[0], atol=1e-6)
    np.testing.assert_allclose(custom.embed_documents(["z"]), raw(model, ["doc: z"]), atol=1e-6)


def test_llamaindex_embedding_applies_and_overrides_prompts(model: str) -> None:
    llama = pytest.importorskip("llama_index.embeddings.lichen")
    embedding = llama.LichenEmbedding(model_name=model)
    np.testing.assert_allclose(embedding.get_query_embedding(QUESTION), raw(model, ["query: " + QUESTION])[0], atol=1e-6)
    np.testing.assert_allclose(embedding.get_text_embedding(DOCS[0]), raw(model, ["passage: " + DOCS[0]])[0], atol=1e-6)
    custom = llama.LichenEmbedding(model_name=model, query_prompt="search: ")
    np.testing.assert_allclose(custom.get_query_embedding("x"), raw(model, ["search: x"])[0], atol=1e-6)
