"""``lichen models build``: a tiny random BERT saved the way sentence-transformers saves
one is built into an ONNX model whose vectors equal an independent numpy forward pass
(mean and CLS pooling, fp32 and fp16 weights, padded batches); built models are found by
``get_embedder``, listed by ``lichen models ls`` and usable by a ``SessionIndex``; and what
cannot be built is refused with a clear error."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")
safetensors_numpy = pytest.importorskip("safetensors.numpy")
from tokenizers import Tokenizer  # noqa: E402

from lichen import DocumentInfo, InvalidArgumentError, ModelUnavailableError, QueryOptions, SessionIndex
from lichen.cli import main  # noqa: E402
from lichen.models import get_embedder, list_models, model_dir, validate_model_id  # noqa: E402
from lichen.models._onnx import OnnxEmbedder  # noqa: E402
from lichen.models.build import build_model, build_user_model  # noqa: E402

SHIPPED_TOKENIZER = model_dir("lichen-minilm") / "tokenizer.json"
HIDDEN, HEADS, LAYERS, INTERMEDIATE, MAX_POSITIONS, MAX_SEQ = 32, 4, 2, 64, 64, 48
EPS = 1e-12
TEXTS = [
    "hi",
    "refunds take three to five business days",
    "a much longer text that is truncated by the sequence limit " * 6,
    "",
    "Ünïcödé and emoji \U0001F600 in the middle",
]


# ------------------------------------------------------------------ a tiny BERT on disk
def _vocab_size() -> int:
    return Tokenizer.from_file(str(SHIPPED_TOKENIZER)).get_vocab_size()


def _random_weights(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)

    def normal(*shape: int, scale: float = 0.2) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    def ln(prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}.weight": 1.0 + normal(HIDDEN, scale=0.1), f"{prefix}.bias": normal(HIDDEN, scale=0.1)}

    def dense(prefix: str, n_in: int, n_out: int) -> dict[str, np.ndarray]:
        return {f"{prefix}.weight": normal(n_out, n_in), f"{prefix}.bias": normal(n_out, scale=0.05)}

    w = {
        "embeddings.word_embeddings.weight": normal(_vocab_size(), HIDDEN, scale=1.0),
        "embeddings.position_embeddings.weight": normal(MAX_POSITIONS, HIDDEN, scale=0.5),
        "embeddings.token_type_embeddings.weight": normal(2, HIDDEN, scale=0.5),
        "embeddings.position_ids": np.arange(MAX_POSITIONS, dtype=np.int64)[None, :],
        **ln("embeddings.LayerNorm"),
        **dense("pooler.dense", HIDDEN, HIDDEN),  # present in many checkpoints, unused
    }
    for i in range(LAYERS):
        p = f"encoder.layer.{i}"
        for part in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            w.update(dense(f"{p}.{part}", HIDDEN, HIDDEN))
        w.update(ln(f"{p}.attention.output.LayerNorm"))
        w.update(dense(f"{p}.intermediate.dense", HIDDEN, INTERMEDIATE))
        w.update(dense(f"{p}.output.dense", INTERMEDIATE, HIDDEN))
        w.update(ln(f"{p}.output.LayerNorm"))
    return w


WEIGHTS = _random_weights()


def write_source(
    directory: Path, *, pooling: str = "mean", prefix: str = "", normalize: bool = True,
    weights: dict[str, np.ndarray] | None = None, config: dict | None = None,
) -> Path:
    directory.mkdir(parents=True)
    weights = WEIGHTS if weights is None else weights
    safetensors_numpy.save_file({prefix + k: v for k, v in weights.items()}, str(directory / "model.safetensors"))
    (directory / "config.json").write_text(json.dumps({
        "architectures": ["BertModel"], "model_type": "bert", "hidden_act": "gelu", "hidden_size": HIDDEN,
        "num_attention_heads": HEADS, "num_hidden_layers": LAYERS, "intermediate_size": INTERMEDIATE,
        "layer_norm_eps": EPS, "max_position_embeddings": MAX_POSITIONS, "type_vocab_size": 2,
        "vocab_size": _vocab_size(), "position_embedding_type": "absolute", **(config or {}),
    }))
    (directory / "1_Pooling").mkdir()
    (directory / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": HIDDEN,
        "pooling_mode_cls_token": pooling == "cls",
        "pooling_mode_mean_tokens": pooling == "mean",
        "pooling_mode_max_tokens": pooling == "max",
        "pooling_mode_mean_sqrt_len_tokens": False,
    }))
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    (directory / "modules.json").write_text(json.dumps(modules))
    (directory / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": MAX_SEQ, "do_lower_case": False}))
    shutil.copyfile(SHIPPED_TOKENIZER, directory / "tokenizer.json")
    (directory / "LICENSE").write_text("test licence\n")
    (directory / "README.md").write_text("---\nlicense: mit\ntags:\n- test\n---\n# tiny\n")
    return directory


# ------------------------------------------------------------------ the reference forward pass
_erf = np.vectorize(math.erf, otypes=[np.float64])


def _layer_norm(x: np.ndarray, prefix: str) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + EPS) * WEIGHTS[prefix + ".weight"] + WEIGHTS[prefix + ".bias"]


def _dense(x: np.ndarray, prefix: str) -> np.ndarray:
    return x @ WEIGHTS[prefix + ".weight"].T.astype(np.float64) + WEIGHTS[prefix + ".bias"]


def reference_embeddings(texts: list[str], pooling: str) -> np.ndarray:
    """A plain float64 numpy BERT over one padded batch, written from the BERT paper's
    equations rather than from the builder."""
    tokenizer = Tokenizer.from_file(str(SHIPPED_TOKENIZER))
    tokenizer.no_padding()
    tokenizer.enable_truncation(MAX_SEQ)
    ids = [tokenizer.encode(t).ids for t in texts]
    width = max(len(i) for i in ids)
    input_ids = np.zeros((len(texts), width), dtype=np.int64)
    mask = np.zeros((len(texts), width), dtype=np.float64)
    for row, seq in enumerate(ids):
        input_ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1.0

    h = (
        WEIGHTS["embeddings.word_embeddings.weight"][input_ids].astype(np.float64)
        + WEIGHTS["embeddings.token_type_embeddings.weight"][0]
        + WEIGHTS["embeddings.position_embeddings.weight"][:width]
    )
    h = _layer_norm(h, "embeddings.LayerNorm")
    head_dim = HIDDEN // HEADS
    batch = len(texts)
    for i in range(LAYERS):
        p = f"encoder.layer.{i}"

        def heads(x: np.ndarray) -> np.ndarray:
            return x.reshape(batch, width, HEADS, head_dim).transpose(0, 2, 1, 3)

        q, k, v = (heads(_dense(h, f"{p}.attention.self.{n}")) for n in ("query", "key", "value"))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(head_dim)
        scores = np.where(mask[:, None, None, :] > 0, scores, -np.inf)
        scores = scores - scores.max(-1, keepdims=True)
        probs = np.exp(scores)
        probs /= probs.sum(-1, keepdims=True)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, width, HIDDEN)
        h = _layer_norm(_dense(context, f"{p}.attention.output.dense") + h, f"{p}.attention.output.LayerNorm")
        inter = _dense(h, f"{p}.intermediate.dense")
        gelu = 0.5 * inter * (1.0 + _erf(inter / math.sqrt(2.0)))
        h = _layer_norm(_dense(gelu, f"{p}.output.dense") + h, f"{p}.output.LayerNorm")

    if pooling == "mean":
        pooled = (h * mask[:, :, None]).sum(1) / mask.sum(1, keepdims=True)
    else:
        pooled = h[:, 0]
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


# ------------------------------------------------------------------ fidelity
@pytest.mark.parametrize("pooling,prefix", [("mean", ""), ("cls", "bert.")])
def test_fp32_build_matches_numpy_forward_pass(tmp_path, pooling, prefix):
    source = write_source(tmp_path / "src", pooling=pooling, prefix=prefix)
    manifest = build_model(source, tmp_path / "out", model_id="tiny", fp32=True)
    assert manifest["pooling"] == pooling and manifest["weights_dtype"] == "float32"
    embedder = OnnxEmbedder(tmp_path / "out", model_id="tiny")
    got = embedder.embed(TEXTS)
    expected = reference_embeddings(TEXTS, pooling)
    assert got.shape == (len(TEXTS), HIDDEN) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-4)
    # Padding changes nothing: each text alone (no padding) gives the batched vector.
    alone = np.stack([embedder.embed([t])[0] for t in TEXTS])
    np.testing.assert_allclose(alone, got, atol=1e-5)
    # The vectors are not trivially alike (random weights still separate the texts).
    assert (got @ got.T)[np.triu_indices(len(TEXTS), 1)].min() < 0.99


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_fp16_build_is_close_and_smaller(tmp_path, pooling):
    source = write_source(tmp_path / "src", pooling=pooling, prefix="model.")
    build_model(source, tmp_path / "fp16", model_id="tiny")
    build_model(source, tmp_path / "fp32", model_id="tiny", fp32=True)
    got = OnnxEmbedder(tmp_path / "fp16", model_id="tiny").embed(TEXTS)
    cosines = (got * reference_embeddings(TEXTS, pooling)).sum(axis=1)
    assert cosines.min() >= 0.999
    assert (tmp_path / "fp16" / "model.onnx").stat().st_size < 0.6 * (tmp_path / "fp32" / "model.onnx").stat().st_size


@pytest.mark.parametrize("fp32", [True, False])
def test_attention_is_fused_at_build_and_changes_no_vector(tmp_path, monkeypatch, fp32):
    # The fused graph is what ships; the graph as written (kept when the optimiser is
    # missing or cannot fuse) must give the same vectors, and fusing keeps float16 weights
    # float16.
    import onnx

    import lichen.models.build as build

    source = write_source(tmp_path / "src")
    fused = build_model(source, tmp_path / "fused", model_id="tiny", fp32=fp32)
    monkeypatch.setattr(build, "fuse_attention", lambda *args, **kwargs: None)
    plain = build_model(source, tmp_path / "plain", model_id="tiny", fp32=fp32)
    assert fused["fused_attention"] is True and plain["fused_attention"] is False
    operators = [node.op_type for node in onnx.load(str(tmp_path / "fused" / "model.onnx")).graph.node]
    assert operators.count("Attention") == LAYERS and "Softmax" not in operators
    assert "Attention" not in [node.op_type for node in onnx.load(str(tmp_path / "plain" / "model.onnx")).graph.node]
    size = {name: (tmp_path / name / "model.onnx").stat().st_size for name in ("fused", "plain")}
    assert abs(size["fused"] - size["plain"]) < 0.05 * size["plain"]
    texts = TEXTS + ["hi there"] * 3
    fused_embedder = OnnxEmbedder(tmp_path / "fused", model_id="tiny")
    got = fused_embedder.embed(texts)
    np.testing.assert_allclose(got, OnnxEmbedder(tmp_path / "plain", model_id="tiny").embed(texts), atol=1e-5)
    alone = np.stack([fused_embedder.embed([t])[0] for t in texts])
    np.testing.assert_allclose(alone, got, atol=1e-5)


def test_manifest_and_copied_files(tmp_path):
    source = write_source(tmp_path / "src", normalize=False)
    manifest = build_model(source, tmp_path / "out", model_id="tiny")
    on_disk = json.loads((tmp_path / "out" / "model.json").read_text())
    assert on_disk == manifest
    assert manifest["model_id"] == "tiny" and manifest["dimension"] == HIDDEN
    assert manifest["max_tokens"] == MAX_SEQ and manifest["pooling"] == "mean"
    assert manifest["normalize"] is True and manifest["source_normalize"] is False  # always normalised
    assert manifest["weights_dtype"] == "float16" and manifest["license"] == "mit"
    import hashlib

    assert manifest["source_sha256"] == hashlib.sha256((source / "model.safetensors").read_bytes()).hexdigest()
    for name in ("model.onnx", "tokenizer.json", "LICENSE", "README.md"):
        assert (tmp_path / "out" / name).is_file()
    assert not (tmp_path / "out" / "NOTICE").exists()


def test_max_tokens_defaults_to_512_capped_by_positions(tmp_path):
    source = write_source(tmp_path / "src")
    (source / "sentence_bert_config.json").unlink()
    assert build_model(source, tmp_path / "out", model_id="tiny")["max_tokens"] == MAX_POSITIONS


# ------------------------------------------------------------------ registry, CLI, sessions
def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_build_ls_and_session_round_trip(tmp_path, capsys, isolated_home):
    source = write_source(tmp_path / "src", pooling="cls")
    code, out, _ = run(capsys, "models", "build", str(source), "--id", "tiny-cls", "--json")
    assert code == 0
    built = json.loads(out)
    assert built["model_id"] == "tiny-cls" and Path(built["path"]) == isolated_home / "models" / "tiny-cls"

    code, out, _ = run(capsys, "models", "ls", "--json")
    listed = {m["model_id"]: m for m in json.loads(out)}
    assert listed["lichen-minilm"]["builtin"] is True and listed["lichen-minilm"]["dimension"] == 384
    assert listed["tiny-cls"] == {
        "model_id": "tiny-cls", "dimension": HIDDEN, "max_tokens": MAX_SEQ, "pooling": "cls", "builtin": False,
        "source": str(source.resolve()), "path": str(isolated_home / "models" / "tiny-cls"),
    }
    code, out, _ = run(capsys, "models", "ls")
    assert code == 0 and "tiny-cls" in out and "built-in" in out

    # Building the same id again is refused unless forced.
    code, _, err = run(capsys, "models", "build", str(source), "--id", "tiny-cls")
    assert code == 1 and "already exists" in err and "--force" in err
    code, out, _ = run(capsys, "models", "build", str(source), "--id", "tiny-cls", "--force")
    assert code == 0 and "tiny-cls" in out
    assert [p.name for p in (isolated_home / "models").iterdir()] == ["tiny-cls"]  # no staging left behind

    session = SessionIndex("notes", model_id="tiny-cls")
    assert session.dimension == HIDDEN
    session.add_docs_sync([DocumentInfo(id=str(i), text=t) for i, t in enumerate(TEXTS[:3])])
    result = session.query_sync(TEXTS[1], QueryOptions(top_k=3, alpha=1.0))
    assert result.docs[0].id == "1" and result.docs[0].score == pytest.approx(1.0, abs=1e-5)
    cosines = (get_embedder("tiny-cls").embed(TEXTS) * reference_embeddings(TEXTS, "cls")).sum(axis=1)
    assert cosines.min() >= 0.999


def test_unknown_model_lists_what_is_available(tmp_path):
    build_user_model(write_source(tmp_path / "src"), "tiny-mean")
    assert [m.model_id for m in list_models()] == ["lichen-minilm", "tiny-mean"]
    with pytest.raises(ModelUnavailableError, match=r"unknown or missing model 'nope'; available: lichen-minilm, tiny-mean, custom"):
        get_embedder("nope")
    with pytest.raises(ModelUnavailableError, match="unknown or missing model"):
        get_embedder("../tiny-mean")


# ------------------------------------------------------------------ refusals
@pytest.mark.parametrize("bad", ["", "custom", "lichen-minilm", "a/b", "..", ".hidden", "x" * 101, "sp ace", 3])
def test_invalid_model_ids_are_refused(bad):
    with pytest.raises(InvalidArgumentError):
        validate_model_id(bad)


def test_unsupported_pooling_is_refused(tmp_path):
    source = write_source(tmp_path / "src", pooling="max")
    with pytest.raises(InvalidArgumentError, match="pooling max is not supported"):
        build_model(source, tmp_path / "out", model_id="tiny")
    assert not (tmp_path / "out").exists()


def test_missing_weights_are_refused(tmp_path):
    weights = {k: v for k, v in WEIGHTS.items() if not k.startswith("encoder.layer.1.output.dense")}
    source = write_source(tmp_path / "src", weights=weights)
    with pytest.raises(InvalidArgumentError, match=r"missing weights encoder\.layer\.1\.output\.dense\.weight"):
        build_model(source, tmp_path / "out", model_id="tiny")


def test_unsupported_architectures_are_refused(tmp_path):
    source = write_source(tmp_path / "roberta", config={"model_type": "xlm-roberta"})
    with pytest.raises(InvalidArgumentError, match="model_type 'xlm-roberta' is not supported"):
        build_model(source, tmp_path / "out", model_id="tiny")
    source = write_source(tmp_path / "tanh", config={"hidden_act": "gelu_new"})
    with pytest.raises(InvalidArgumentError, match="hidden_act 'gelu_new' is not supported"):
        build_model(source, tmp_path / "out", model_id="tiny")
    source = write_source(tmp_path / "bin")
    (source / "model.safetensors").unlink()
    with pytest.raises(InvalidArgumentError, match="model.safetensors not found"):
        build_model(source, tmp_path / "out", model_id="tiny")


def test_cli_reports_build_errors(tmp_path, capsys):
    code, _, err = run(capsys, "models", "build", str(tmp_path), "--id", "x")
    assert code == 1 and "config.json not found" in err
    code, _, err = run(capsys, "models", "build", str(tmp_path), "--id", "custom")
    assert code == 1 and "reserved" in err
