"""Tiny, randomly initialised BERTs written the way the Hugging Face Hub holds them: a
sentence-transformers embedder and a one-output cross-encoder (``BertForSequenceClassification``),
with a float64 numpy forward pass of the cross-encoder to check re-ranking against.

Real files for the real builder and runner (issue 28's tests): nothing is mocked, nothing
is downloaded. Built on the shipped model's tokenizer (its vocabulary sets the embedding
table: ~4 MB of weights).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file
from tokenizers import Tokenizer

from lichen.models import model_dir

TOKENIZER = model_dir("lichen-minilm") / "tokenizer.json"
HIDDEN, HEADS, LAYERS, INTERMEDIATE, MAX_POSITIONS, MAX_SEQ = 32, 4, 2, 64, 64, 48
EPS = 1e-12


def _vocab_size() -> int:
    return Tokenizer.from_file(str(TOKENIZER)).get_vocab_size()


def random_bert(seed: int, *, classifier: bool = False) -> dict[str, np.ndarray]:
    """Encoder weights (and a pooler + one-output classifier), unprefixed."""
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
        **ln("embeddings.LayerNorm"),
        **dense("pooler.dense", HIDDEN, HIDDEN),
    }
    for i in range(LAYERS):
        p = f"encoder.layer.{i}"
        for part in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            w.update(dense(f"{p}.{part}", HIDDEN, HIDDEN))
        w.update(ln(f"{p}.attention.output.LayerNorm"))
        w.update(dense(f"{p}.intermediate.dense", HIDDEN, INTERMEDIATE))
        w.update(dense(f"{p}.output.dense", INTERMEDIATE, HIDDEN))
        w.update(ln(f"{p}.output.LayerNorm"))
    if classifier:
        w.update({"classifier.weight": normal(1, HIDDEN, scale=1.0), "classifier.bias": normal(1, scale=0.1)})
    return w


def _config(architecture: str, **extra: object) -> dict:
    return {
        "architectures": [architecture], "model_type": "bert", "hidden_act": "gelu", "hidden_size": HIDDEN,
        "num_attention_heads": HEADS, "num_hidden_layers": LAYERS, "intermediate_size": INTERMEDIATE,
        "layer_norm_eps": EPS, "max_position_embeddings": MAX_POSITIONS, "type_vocab_size": 2,
        "vocab_size": _vocab_size(), "position_embedding_type": "absolute", **extra,
    }


def embedder_files(*, seed: int = 0, pooling: str = "mean", prompts: dict[str, str] | None = None,
                   pooling_module: bool = True) -> dict[str, bytes]:
    """The files of a sentence-transformers embedder repository, by path."""
    files: dict[str, bytes] = {}
    weights = random_bert(seed)
    files["model.safetensors"] = _safetensors(weights)
    files["config.json"] = json.dumps(_config("BertModel")).encode()
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}]
    if pooling_module:
        modules.append({"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"})
        files["1_Pooling/config.json"] = json.dumps({
            "word_embedding_dimension": HIDDEN, "pooling_mode_cls_token": pooling == "cls",
            "pooling_mode_mean_tokens": pooling == "mean",
        }).encode()
    modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    files["modules.json"] = json.dumps(modules).encode()
    files["sentence_bert_config.json"] = json.dumps({"max_seq_length": MAX_SEQ}).encode()
    if prompts:
        files["config_sentence_transformers.json"] = json.dumps({"prompts": prompts}).encode()
    files["tokenizer.json"] = TOKENIZER.read_bytes()
    files["README.md"] = b"---\nlicense: mit\n---\n# tiny test embedder\n"
    files["pytorch_model.bin"] = b"not fetched: Lichen reads safetensors only"
    return files


def cross_encoder_files(*, seed: int = 1) -> dict[str, bytes]:
    """The files of a one-output cross-encoder repository (weights under ``bert.``, the
    classifier at the top level, as transformers saves them)."""
    weights = random_bert(seed, classifier=True)
    prefixed = {(k if k.startswith("classifier.") else "bert." + k): v for k, v in weights.items()}
    return {
        "model.safetensors": _safetensors(prefixed),
        "config.json": json.dumps(_config("BertForSequenceClassification", id2label={"0": "LABEL_0"},
                                          label2id={"LABEL_0": 0})).encode(),
        "tokenizer.json": TOKENIZER.read_bytes(),
        "README.md": b"---\nlicense: apache-2.0\n---\n# tiny test cross-encoder\n",
    }


def write_files(directory: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return directory


def _safetensors(weights: dict[str, np.ndarray]) -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.safetensors"
        save_file(weights, str(path))
        return path.read_bytes()


# ------------------------------------------------------------------ reference cross-encoder
_erf = np.vectorize(math.erf, otypes=[np.float64])


def reference_logits(query: str, passages: list[str], *, seed: int = 1, max_tokens: int = MAX_SEQ) -> np.ndarray:
    """BertForSequenceClassification's logit for each (query, passage) pair, one pair at a
    time in float64, written from the BERT paper's equations (not from the builder)."""
    w = {k: v.astype(np.float64) for k, v in random_bert(seed, classifier=True).items()}
    tokenizer = Tokenizer.from_file(str(TOKENIZER))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_tokens)

    def layer_norm(x: np.ndarray, prefix: str) -> np.ndarray:
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + EPS) * w[prefix + ".weight"] + w[prefix + ".bias"]

    def dense(x: np.ndarray, prefix: str) -> np.ndarray:
        return x @ w[prefix + ".weight"].T + w[prefix + ".bias"]

    out = []
    for passage in passages:
        encoding = tokenizer.encode(query, passage)
        ids, types = np.array(encoding.ids), np.array(encoding.type_ids)
        h = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][: len(ids)]
        h = layer_norm(h + w["embeddings.token_type_embeddings.weight"][types], "embeddings.LayerNorm")
        head = HIDDEN // HEADS
        for i in range(LAYERS):
            p = f"encoder.layer.{i}"
            q, k, v = (dense(h, f"{p}.attention.self.{n}").reshape(len(ids), HEADS, head).transpose(1, 0, 2)
                       for n in ("query", "key", "value"))
            scores = q @ k.transpose(0, 2, 1) / math.sqrt(head)
            probs = np.exp(scores - scores.max(-1, keepdims=True))
            probs /= probs.sum(-1, keepdims=True)
            context = (probs @ v).transpose(1, 0, 2).reshape(len(ids), HIDDEN)
            h = layer_norm(dense(context, f"{p}.attention.output.dense") + h, f"{p}.attention.output.LayerNorm")
            inter = dense(h, f"{p}.intermediate.dense")
            gelu = 0.5 * inter * (1.0 + _erf(inter / math.sqrt(2.0)))
            h = layer_norm(dense(gelu, f"{p}.output.dense") + h, f"{p}.output.LayerNorm")
        pooled = np.tanh(dense(h[0], "pooler.dense"))
        out.append(float((pooled @ w["classifier.weight"].T + w["classifier.bias"])[0]))
    return np.array(out)
