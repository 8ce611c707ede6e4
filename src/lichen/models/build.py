"""Turn a BERT-architecture sentence-transformers directory into a Lichen model.

This module owns the ONNX graph builder (used for the shipped ``lichen-minilm`` by
``scripts/build_model.py`` and for user models by ``lichen models build``). It reads a
directory as sentence-transformers saves it (``config.json``, ``model.safetensors``,
``tokenizer.json``, ``modules.json``, ``1_Pooling/config.json``,
``sentence_bert_config.json``) and writes a directory :class:`~lichen.models._onnx.OnnxEmbedder`
loads: ``model.onnx``, ``tokenizer.json``, ``model.json`` and any ``LICENSE`` / ``NOTICE`` /
``README.md``.

The BERT encoder is written node by node with the ``onnx`` helper API, in the order a
PyTorch export would emit it, so onnxruntime's default graph optimisations recognise and
fuse LayerNorm and GELU when a session starts; attention is fused here, once, by
onnxruntime's offline transformer optimiser (:mod:`._fuse`; ``model.json`` records
``fused_attention``). Pooling (mean over the attention mask, or the CLS
token) and L2 normalisation are part of the graph, so the model outputs finished sentence
embeddings.

The graph always L2-normalises, whether or not the source lists a ``Normalize`` module:
Lichen stores and compares unit vectors anyway (cosine similarity), so a model without
``Normalize`` gives the same rankings it would in sentence-transformers. ``model.json``
records ``source_normalize`` for reference.

Weights are stored as float16 initialisers followed by ``Cast`` nodes by default: the file
is half the size and onnxruntime constant-folds the casts at session start, so inference
runs in float32 at full speed; ``fp32=True`` stores float32 weights instead.

What is supported: ``model_type == "bert"`` with absolute position embeddings and erf GELU
(``hidden_act == "gelu"``): bge, e5 (English), gte, all-MiniLM-L6-v2, ... A
``BertForSequenceClassification`` checkpoint with one label (a cross-encoder such as
ms-marco-MiniLM-L-6-v2) is built as a re-ranker instead: ``[CLS]`` through the pooler
(dense + tanh) and the classifier, output ``logits`` (batch x 1), ``model.json`` ``kind``
``"cross-encoder"``.

Prompts some models expect (e5's ``"query: "`` / ``"passage: "``, bge's search instruction)
go into ``model.json`` (``prompts``: ``query`` and ``passage``), from the source's
``config_sentence_transformers.json`` or given to the build; the runner puts them before
query and document texts. ``onnx``, ``safetensors`` and ``sympy`` (for the optimiser) are
needed only here: ``pip install "lichen[build-model]"``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import InvalidArgumentError, ModelUnavailableError
from ._fuse import fuse_attention

__all__ = ["build_model", "build_user_model", "read_source_config", "SourceConfig", "EMBEDDER", "CROSS_ENCODER"]

OPSET = 17
DEFAULT_MAX_SEQ_LENGTH = 512
# A protobuf message cannot exceed 2 GiB; keep a margin for the graph itself.
MAX_WEIGHT_BYTES = 1_900_000_000
COPIED_FILES = ("LICENSE", "NOTICE", "README.md")
_EMBEDDING_KEY = "embeddings.word_embeddings.weight"
EMBEDDER, CROSS_ENCODER = "embedder", "cross-encoder"
#: ``config_sentence_transformers.json`` prompt names read as the passage prompt.
_PASSAGE_PROMPT_NAMES = ("passage", "document", "corpus")


# ------------------------------------------------------------------ source directory
class SourceConfig:
    """What the builder learns from a sentence-transformers directory, before any weights
    are read: architecture sizes, pooling, sequence limit and where the files are."""

    def __init__(
        self, *, directory: Path, transformer_dir: Path, config: dict[str, Any], pooling: str,
        source_normalize: bool, max_tokens: int, kind: str = EMBEDDER, prompts: dict[str, str] | None = None,
    ) -> None:
        self.directory = directory
        self.transformer_dir = transformer_dir
        self.config = config
        self.pooling = pooling
        self.source_normalize = source_normalize
        self.max_tokens = max_tokens
        self.kind = kind
        self.prompts = dict(prompts or {})

    @property
    def weights_path(self) -> Path:
        return self.transformer_dir / "model.safetensors"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidArgumentError(f"cannot read {path}: {exc}") from None
    except ValueError as exc:
        raise InvalidArgumentError(f"{path} is not valid JSON: {exc}") from None


def _modules(directory: Path) -> list[dict[str, Any]]:
    path = directory / "modules.json"
    if not path.is_file():
        return []
    modules = _read_json(path)
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise InvalidArgumentError(f"{path}: expected a list of module objects")
    return modules


def _module_path(directory: Path, modules: list[dict[str, Any]], type_suffix: str, default: str) -> Path:
    for module in modules:
        if str(module.get("type", "")).endswith(type_suffix):
            return directory / str(module.get("path", ""))
    return directory / default


def _pooling_mode(path: Path) -> str:
    if not path.is_file():
        raise InvalidArgumentError(f"{path} not found: cannot tell the pooling (mean or CLS) of this model")
    raw = _read_json(path)
    enabled = sorted(
        key[len("pooling_mode_"):].removesuffix("_tokens").removesuffix("_token")
        for key, value in raw.items()
        if key.startswith("pooling_mode_") and value is True
    )
    if enabled == ["mean"]:
        return "mean"
    if enabled == ["cls"]:
        return "cls"
    shown = ", ".join(enabled) or "none"
    raise InvalidArgumentError(f"{path}: pooling {shown} is not supported (only mean or CLS pooling)")


def _source_prompts(directory: Path) -> dict[str, str]:
    """Query and passage prompts from ``config_sentence_transformers.json``, if any."""
    path = directory / "config_sentence_transformers.json"
    raw = _read_json(path).get("prompts") if path.is_file() else None
    if not isinstance(raw, dict):
        return {}
    prompts = {}
    if isinstance(raw.get("query"), str) and raw["query"]:
        prompts["query"] = raw["query"]
    for name in _PASSAGE_PROMPT_NAMES:
        if isinstance(raw.get(name), str) and raw[name]:
            prompts["passage"] = raw[name]
            break
    return prompts


def _is_cross_encoder(config: dict[str, Any]) -> bool:
    return any(str(a).endswith("ForSequenceClassification") for a in config.get("architectures") or [])


def read_source_config(source: str | os.PathLike[str], *, pooling: str | None = None) -> SourceConfig:
    """Read and check a sentence-transformers (or cross-encoder) directory; raise
    ``InvalidArgumentError`` naming what is missing or unsupported. ``pooling`` (``"mean"``
    or ``"cls"``) is used when the directory does not say (no ``1_Pooling``), and must
    agree with it when it does."""
    if pooling not in (None, "mean", "cls"):
        raise InvalidArgumentError(f"pooling must be 'mean' or 'cls', not {pooling!r}")
    directory = Path(source).expanduser()
    if not directory.is_dir():
        raise InvalidArgumentError(f"{directory} is not a directory")
    modules = _modules(directory)
    transformer_dir = _module_path(directory, modules, "models.Transformer", "")
    config_path = transformer_dir / "config.json"
    if not config_path.is_file():
        raise InvalidArgumentError(f"{config_path} not found: not a Hugging Face / sentence-transformers model directory")
    config = _read_json(config_path)
    model_type = config.get("model_type")
    if model_type != "bert":
        raise InvalidArgumentError(
            f"{config_path}: model_type {model_type!r} is not supported; only BERT-architecture models "
            "(model_type 'bert': bge, e5, gte, MiniLM, ...) can be built"
        )
    missing = [k for k in ("hidden_size", "num_attention_heads", "num_hidden_layers", "max_position_embeddings") if k not in config]
    if missing:
        raise InvalidArgumentError(f"{config_path}: missing {', '.join(missing)}")
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise InvalidArgumentError(
            f"{config_path}: position_embedding_type {config['position_embedding_type']!r} is not supported (only 'absolute')"
        )
    if config.get("hidden_act", "gelu") != "gelu":
        raise InvalidArgumentError(f"{config_path}: hidden_act {config['hidden_act']!r} is not supported (only erf 'gelu')")
    if config["hidden_size"] % config["num_attention_heads"]:
        raise InvalidArgumentError(f"{config_path}: hidden_size is not a multiple of num_attention_heads")
    kind = CROSS_ENCODER if _is_cross_encoder(config) else EMBEDDER
    if kind == CROSS_ENCODER:
        if int(config.get("num_labels", len(config.get("id2label") or {0: ""}))) != 1:
            raise InvalidArgumentError(f"{config_path}: only cross-encoders with one output (a relevance score) are supported")
        pooling = "cls"
    else:
        pooling_path = _module_path(directory, modules, "models.Pooling", "1_Pooling") / "config.json"
        if pooling is None or pooling_path.is_file():
            declared = _pooling_mode(pooling_path)
            if pooling is not None and pooling != declared:
                raise InvalidArgumentError(f"{pooling_path}: the model pools by {declared}, not {pooling}")
            pooling = declared
    source_normalize = any(str(m.get("type", "")).endswith("models.Normalize") for m in modules)

    max_tokens = DEFAULT_MAX_SEQ_LENGTH
    for candidate in (directory / "sentence_bert_config.json", transformer_dir / "sentence_bert_config.json"):
        if candidate.is_file():
            value = _read_json(candidate).get("max_seq_length")
            if isinstance(value, int) and value > 0:
                max_tokens = value
            break
    max_tokens = min(max_tokens, int(config["max_position_embeddings"]))

    for name in ("model.safetensors", "tokenizer.json"):
        if not (transformer_dir / name).is_file():
            hint = " (only safetensors weights are read; re-save the model with safe_serialization=True)" if name == "model.safetensors" else " (a fast tokenizer is needed)"
            raise InvalidArgumentError(f"{transformer_dir / name} not found{hint}")
    return SourceConfig(
        directory=directory, transformer_dir=transformer_dir, config=config, pooling=pooling,
        source_normalize=source_normalize, max_tokens=max_tokens, kind=kind, prompts=_source_prompts(directory),
    )


def _strip_prefix(weights: dict[str, np.ndarray], path: Path) -> dict[str, np.ndarray]:
    """Key names without the ``bert.`` / ``model.`` (or other) prefix some checkpoints use."""
    prefixes = {key[: -len(_EMBEDDING_KEY)] for key in weights if key.endswith(_EMBEDDING_KEY)}
    if len(prefixes) != 1:
        raise InvalidArgumentError(
            f"{path}: expected one '{_EMBEDDING_KEY}' tensor, found {len(prefixes)}: not a BERT checkpoint"
        )
    (prefix,) = prefixes
    if prefix and not prefix.endswith("."):
        raise InvalidArgumentError(f"{path}: unexpected weight name {prefix + _EMBEDDING_KEY!r}")
    return {key[len(prefix):]: value for key, value in weights.items() if key.startswith(prefix)}


def _classifier_weights(raw: dict[str, np.ndarray], hidden: int, path: Path) -> dict[str, np.ndarray]:
    """A sequence classifier's pooler and one-output classifier, whatever the prefix of
    the encoder's weights (``bert.pooler...`` but ``classifier...`` at the top level)."""
    found: dict[str, np.ndarray] = {}
    for name in ("pooler.dense.weight", "pooler.dense.bias", "classifier.weight", "classifier.bias"):
        keys = [key for key in raw if key == name or key.endswith("." + name)]
        if len(keys) != 1:
            raise InvalidArgumentError(f"{path}: expected one '{name}' tensor, found {len(keys)}: not a BERT cross-encoder")
        found[name] = raw[keys[0]]
    if found["pooler.dense.weight"].shape != (hidden, hidden) or found["classifier.weight"].shape != (1, hidden):
        raise InvalidArgumentError(f"{path}: pooler or classifier shapes do not fit hidden_size {hidden} and one output")
    return found


def _required_weights(config: dict[str, Any]) -> list[str]:
    names = ["embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight"]
    names += ["embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias"]
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}"
        for part in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                     "attention.output.LayerNorm", "intermediate.dense", "output.dense", "output.LayerNorm"):
            names += [f"{p}.{part}.weight", f"{p}.{part}.bias"]
    return names


def _check_weights(w: dict[str, np.ndarray], config: dict[str, Any], path: Path) -> None:
    missing = [name for name in _required_weights(config) if name not in w]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise InvalidArgumentError(f"{path}: missing weights {shown}: not a complete BERT encoder")
    hidden = config["hidden_size"]
    word = w["embeddings.word_embeddings.weight"]
    if word.ndim != 2 or word.shape[1] != hidden:
        raise InvalidArgumentError(f"{path}: word embeddings have shape {word.shape}, config says hidden_size {hidden}")
    if w["embeddings.position_embeddings.weight"].shape[0] < config["max_position_embeddings"]:
        raise InvalidArgumentError(f"{path}: fewer position embeddings than max_position_embeddings")
    for name in _required_weights(config):
        if not np.issubdtype(w[name].dtype, np.floating):
            raise InvalidArgumentError(f"{path}: weight {name} has dtype {w[name].dtype}, expected floating point")


# ------------------------------------------------------------------ graph
def _onnx_modules() -> tuple[Any, Any, Any, Any, Any]:
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
        from safetensors.numpy import load_file
    except ImportError as exc:
        raise ModelUnavailableError(
            f'building a model needs onnx and safetensors: pip install "lichen[build-model]" ({exc})'
        ) from None
    return onnx, TensorProto, helper, numpy_helper, load_file


class _GraphWriter:
    """Accumulates nodes and initialisers with unique names, in emission order."""

    def __init__(self, weight_dtype: type, onnx_api: tuple[Any, ...]) -> None:
        self._onnx, self._tensor_proto, self._helper, self._numpy_helper = onnx_api
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.weight_dtype = weight_dtype
        self.weight_bytes = 0
        self._counter = 0

    def name(self, hint: str) -> str:
        self._counter += 1
        return f"{hint}_{self._counter}"

    def const(self, value: np.ndarray, hint: str) -> str:
        """A small constant kept at its own dtype (shapes, axes, scalars)."""
        name = self.name(hint)
        self.initializers.append(self._numpy_helper.from_array(np.asarray(value), name))
        return name

    def weight(self, value: np.ndarray, hint: str) -> str:
        """A learned tensor, stored at ``weight_dtype`` and cast back to float32 if reduced."""
        stored = np.ascontiguousarray(value.astype(np.float32).astype(self.weight_dtype))
        if self.weight_dtype != np.float32 and not np.isfinite(stored).all():
            raise InvalidArgumentError(f"weight {hint} overflows float16: build with fp32 (--fp32)")
        self.weight_bytes += stored.nbytes
        if self.weight_bytes > MAX_WEIGHT_BYTES:
            raise InvalidArgumentError("the model is too large for a single ONNX file (2 GB): build without --fp32")
        name = self.name(hint)
        self.initializers.append(self._numpy_helper.from_array(stored, name))
        if self.weight_dtype == np.float32:
            return name
        return self.op("Cast", [name], hint + "_f32", to=self._tensor_proto.FLOAT)

    def op(self, op_type: str, inputs: list[str], hint: str, **attrs: Any) -> str:
        out = self.name(hint)
        self.nodes.append(self._helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out


def _linear(g: _GraphWriter, x: str, w: dict, prefix: str) -> str:
    weight_t = g.weight(w[prefix + ".weight"].T, prefix.replace(".", "_") + "_wT")
    bias = g.weight(w[prefix + ".bias"], prefix.replace(".", "_") + "_b")
    return g.op("Add", [g.op("MatMul", [x, weight_t], "matmul"), bias], "add")


def _layer_norm(g: _GraphWriter, x: str, w: dict, prefix: str, eps: float) -> str:
    scale = g.weight(w[prefix + ".weight"], prefix.replace(".", "_") + "_g")
    bias = g.weight(w[prefix + ".bias"], prefix.replace(".", "_") + "_b")
    return g.op("LayerNormalization", [x, scale, bias], "layernorm", axis=-1, epsilon=eps)


def build_graph(
    w: dict, config: dict, *, pooling: str, weight_dtype: type, graph_name: str, kind: str = EMBEDDER,
) -> Any:
    """The ONNX ``ModelProto`` of a BERT encoder + pooling + L2 normalisation, with inputs
    ``input_ids``, ``attention_mask``, ``token_type_ids`` (int64, batch x sequence) and
    output ``sentence_embedding`` (float32, batch x hidden); for ``kind="cross-encoder"``,
    the encoder + pooler + classifier with output ``logits`` (float32, batch x 1)."""
    onnx, TensorProto, helper, numpy_helper, _ = _onnx_modules()
    hidden = config["hidden_size"]
    heads = config["num_attention_heads"]
    head_dim = hidden // heads
    eps = float(config.get("layer_norm_eps", 1e-12))
    g = _GraphWriter(weight_dtype, (onnx, TensorProto, helper, numpy_helper))

    # Embeddings: word + token type + absolute position, then LayerNorm.
    seq_len = g.op("Gather", [g.op("Shape", ["input_ids"], "shape"), g.const(np.array(1, np.int64), "one")], "seqlen", axis=0)
    pos_all = g.const(np.arange(config["max_position_embeddings"], dtype=np.int64)[None, :], "position_ids")
    pos_ids = g.op(
        "Slice",
        [pos_all, g.const(np.array([0], np.int64), "zero1"), g.op("Unsqueeze", [seq_len, g.const(np.array([0], np.int64), "ax0")], "seqlen1"), g.const(np.array([1], np.int64), "axis1")],
        "pos_ids",
    )
    word = g.op("Gather", [g.weight(w["embeddings.word_embeddings.weight"], "word_emb"), "input_ids"], "word")
    token_type = None
    if "embeddings.token_type_embeddings.weight" in w:
        token_type = g.op("Gather", [g.weight(w["embeddings.token_type_embeddings.weight"], "type_emb"), "token_type_ids"], "ttype")
    position = g.op("Gather", [g.weight(w["embeddings.position_embeddings.weight"], "pos_emb"), pos_ids], "pos")
    if token_type is not None:
        word = g.op("Add", [word, token_type], "emb_sum")
    h = g.op("Add", [word, position], "emb_sum")
    h = _layer_norm(g, h, w, "embeddings.LayerNorm", eps)

    # Additive attention mask: 0 where attended, float32 min where padded.
    mask4 = g.op("Unsqueeze", ["attention_mask", g.const(np.array([1, 2], np.int64), "ax12")], "mask4")
    mask4 = g.op("Cast", [mask4], "maskf", to=TensorProto.FLOAT)
    inverted = g.op("Sub", [g.const(np.array(1.0, np.float32), "one_f"), mask4], "maskinv")
    additive = g.op("Mul", [inverted, g.const(np.array(np.finfo(np.float32).min, np.float32), "fmin")], "maskadd")

    split_heads = g.const(np.array([0, 0, heads, head_dim], np.int64), "split_heads")
    merge_heads = g.const(np.array([0, 0, hidden], np.int64), "merge_heads")
    scale = g.const(np.array(np.sqrt(head_dim), np.float32), "sqrt_dk")
    sqrt2 = g.const(np.array(np.sqrt(2.0), np.float32), "sqrt2")
    one = g.const(np.array(1.0, np.float32), "one_f")
    half = g.const(np.array(0.5, np.float32), "half")

    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}"
        q = g.op("Transpose", [g.op("Reshape", [_linear(g, h, w, f"{p}.attention.self.query"), split_heads], "q")], "qT", perm=[0, 2, 1, 3])
        k = g.op("Transpose", [g.op("Reshape", [_linear(g, h, w, f"{p}.attention.self.key"), split_heads], "k")], "kT", perm=[0, 2, 3, 1])
        v = g.op("Transpose", [g.op("Reshape", [_linear(g, h, w, f"{p}.attention.self.value"), split_heads], "v")], "vT", perm=[0, 2, 1, 3])
        scores = g.op("Div", [g.op("MatMul", [q, k], "qk"), scale], "scaled")
        probs = g.op("Softmax", [g.op("Add", [scores, additive], "masked")], "probs", axis=-1)
        context = g.op("Transpose", [g.op("MatMul", [probs, v], "ctx")], "ctxT", perm=[0, 2, 1, 3])
        context = g.op("Reshape", [context, merge_heads], "ctx_merged")
        attn_out = _linear(g, context, w, f"{p}.attention.output.dense")
        h = _layer_norm(g, g.op("Add", [attn_out, h], "resid"), w, f"{p}.attention.output.LayerNorm", eps)

        inter = _linear(g, h, w, f"{p}.intermediate.dense")
        erf = g.op("Erf", [g.op("Div", [inter, sqrt2], "gelu_div")], "gelu_erf")
        gelu = g.op("Mul", [g.op("Mul", [inter, g.op("Add", [erf, one], "gelu_add")], "gelu_mul"), half], "gelu")
        ffn_out = _linear(g, gelu, w, f"{p}.output.dense")
        h = _layer_norm(g, g.op("Add", [ffn_out, h], "resid"), w, f"{p}.output.LayerNorm", eps)

    if kind == CROSS_ENCODER:
        # BertForSequenceClassification: the [CLS] state through the pooler and classifier.
        cls = g.op("Gather", [h, g.const(np.array(0, np.int64), "cls_index")], "cls", axis=1)
        pooled = g.op("Tanh", [_linear(g, cls, w, "pooler.dense")], "pooler")
        g.nodes.append(helper.make_node(
            "Add", [g.op("MatMul", [pooled, g.weight(w["classifier.weight"].T, "classifier_wT")], "matmul"),
                    g.weight(w["classifier.bias"], "classifier_b")], ["logits"], name="classifier",
        ))
        output = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 1])
        return _finish(onnx, helper, g, graph_name, output)
    if pooling == "mean":
        # Mean over real tokens (padding excluded by the mask).
        mask3 = g.op("Cast", [g.op("Unsqueeze", ["attention_mask", g.const(np.array([-1], np.int64), "axm1")], "mask3")], "mask3f", to=TensorProto.FLOAT)
        ax1 = g.const(np.array([1], np.int64), "ax1")
        summed = g.op("ReduceSum", [g.op("Mul", [h, mask3], "masked_h"), ax1], "summed", keepdims=0)
        counts = g.op("Clip", [g.op("ReduceSum", [mask3, ax1], "counts", keepdims=0), g.const(np.array(1e-9, np.float32), "min_count")], "counts_c")
        pooled = g.op("Div", [summed, counts], "mean")
    elif pooling == "cls":
        # The first token's final hidden state ([CLS]; padding is always on the right).
        pooled = g.op("Gather", [h, g.const(np.array(0, np.int64), "cls_index")], "cls", axis=1)
    else:  # pragma: no cover - read_source_config only yields mean or cls
        raise InvalidArgumentError(f"unsupported pooling {pooling!r}")
    # L2 normalisation (sentence-transformers' Normalize), always: see the module docstring.
    norm = g.op("ReduceL2", [pooled], "norm", axes=[1], keepdims=1)
    norm = g.op("Max", [norm, g.const(np.array(1e-12, np.float32), "min_norm")], "norm_c")
    g.nodes.append(helper.make_node("Div", [pooled, norm], ["sentence_embedding"], name="normalize"))

    output = helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", hidden])
    return _finish(onnx, helper, g, graph_name, output)


def _finish(onnx: Any, helper: Any, g: _GraphWriter, graph_name: str, output: Any) -> Any:
    inputs = [
        helper.make_tensor_value_info(name, onnx.TensorProto.INT64, ["batch", "sequence"])
        for name in ("input_ids", "attention_mask", "token_type_ids")
    ]
    graph = helper.make_graph(g.nodes, graph_name, inputs, [output], g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="lichen-build-model")
    model.ir_version = 8
    model = onnx.shape_inference.infer_shapes(model)
    onnx.checker.check_model(model)
    return model


# ------------------------------------------------------------------ build
def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _readme_license(path: Path) -> str | None:
    """The ``license:`` of a Hugging Face model card's YAML front matter, if any."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    if not text.startswith("---"):
        return None
    front = text[3:].split("\n---", 1)[0]
    match = re.search(r"^license:\s*([^\s#]+)\s*$", front, flags=re.MULTILINE)
    return match.group(1).strip("'\"") if match else None


def build_model(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    model_id: str,
    fp32: bool = False,
    source_name: str | None = None,
    expected_sha256: str | None = None,
    license: str | None = None,
    pooling: str | None = None,
    prompts: dict[str, str] | None = None,
    provenance: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the Lichen model of a sentence-transformers directory into ``out`` (created if
    needed; files of the same names are replaced) and return its ``model.json`` manifest.

    ``source_name`` is recorded as ``source`` (default: the directory's path);
    ``expected_sha256`` makes the build refuse other weights than the ones expected;
    ``pooling`` is used when the directory does not declare one; ``prompts``
    (``{"query": ..., "passage": ...}``) replace the source's own, key by key (an empty
    string removes one); ``provenance`` (e.g. the Hub ``revision`` and verified ``files``)
    is recorded in the manifest as given.
    Raises ``InvalidArgumentError`` for an unsupported or incomplete model, and
    ``ModelUnavailableError`` if ``onnx`` / ``safetensors`` are not installed.
    """
    onnx, _, _, _, load_file = _onnx_modules()
    src = read_source_config(source, pooling=pooling)
    merged_prompts = {**src.prompts, **(prompts or {})}
    merged_prompts = {key: value for key, value in merged_prompts.items() if value}
    unknown = sorted(set(merged_prompts) - {"query", "passage"})
    if unknown or not all(isinstance(value, str) for value in merged_prompts.values()):
        raise InvalidArgumentError(f"prompts are strings named 'query' and 'passage', got {prompts!r}")
    if merged_prompts and src.kind == CROSS_ENCODER:
        raise InvalidArgumentError("a cross-encoder takes no prompts")
    digest = _sha256(src.weights_path)
    if expected_sha256 is not None and digest != expected_sha256:
        raise InvalidArgumentError(f"{src.weights_path}: sha256 {digest} is not the expected {expected_sha256}")
    try:
        raw_weights = load_file(str(src.weights_path))
    except Exception as exc:  # safetensors raises its own error types
        raise InvalidArgumentError(f"cannot read {src.weights_path}: {exc}") from None
    weights = _strip_prefix(raw_weights, src.weights_path)
    _check_weights(weights, src.config, src.weights_path)
    if src.kind == CROSS_ENCODER:
        weights.update(_classifier_weights(raw_weights, int(src.config["hidden_size"]), src.weights_path))

    from tokenizers import Tokenizer

    tokenizer_path = src.transformer_dir / "tokenizer.json"
    try:
        vocab_size = Tokenizer.from_file(str(tokenizer_path)).get_vocab_size()
    except Exception as exc:  # tokenizers raises plain Exception
        raise InvalidArgumentError(f"cannot load {tokenizer_path}: {exc}") from None
    rows = weights["embeddings.word_embeddings.weight"].shape[0]
    if vocab_size > rows:
        raise InvalidArgumentError(f"{tokenizer_path}: {vocab_size} tokens, but only {rows} word embeddings")

    model = build_graph(
        weights, src.config, pooling=src.pooling, weight_dtype=np.float32 if fp32 else np.float16, graph_name=model_id,
        kind=src.kind,
    )
    fused = fuse_attention(
        model, heads=int(src.config["num_attention_heads"]), hidden=int(src.config["hidden_size"]),
        layers=int(src.config["num_hidden_layers"]), reduce_weights=not fp32,
    )
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model if fused is None else fused, str(out_dir / "model.onnx"))
    shutil.copyfile(tokenizer_path, out_dir / "tokenizer.json")
    for name in COPIED_FILES:
        for folder in (src.directory, src.transformer_dir):
            if (folder / name).is_file():
                shutil.copyfile(folder / name, out_dir / name)
                break
    if license is None:
        license = _readme_license(out_dir / "README.md")
    manifest: dict[str, Any] = {
        "model_id": model_id,
        "source": source_name or str(src.directory.resolve()),
        "source_sha256": digest,
        "dimension": int(src.config["hidden_size"]),
        "max_tokens": int(src.max_tokens),
        "pooling": src.pooling,
        "normalize": src.kind == EMBEDDER,
        "weights_dtype": "float32" if fp32 else "float16",
        "fused_attention": fused is not None,
    }
    if src.kind != EMBEDDER:
        manifest["kind"] = src.kind
    if merged_prompts:
        manifest["prompts"] = merged_prompts
    if license:
        manifest["license"] = license
    if not src.source_normalize and src.kind == EMBEDDER:
        manifest["source_normalize"] = False
    manifest.update(provenance or {})
    (out_dir / "model.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def build_user_model(
    source: str | os.PathLike[str], model_id: str, *, fp32: bool = False, overwrite: bool = False,
    home: str | os.PathLike[str] | None = None, query_int8: bool = False, **options: Any,
) -> tuple[Path, dict[str, Any]]:
    """Build into the user models directory (``<LICHEN_HOME>/models/<model_id>``), where
    :func:`lichen.get_embedder` finds it. The model appears whole or not at all: it is built
    in a temporary directory beside its destination and renamed into place. ``options``
    go to :func:`build_model` (``pooling``, ``prompts``, ``source_name``, ``license``,
    ``expected_sha256``, ``provenance``); ``query_int8`` adds an int8 query encoder
    (:func:`add_query_encoder`)."""
    from . import user_models_dir, validate_model_id

    model_id = validate_model_id(model_id)
    root = Path(home) / "models" if home is not None else user_models_dir()
    target = root / model_id
    if target.exists() and not overwrite:
        raise InvalidArgumentError(f"model {model_id!r} already exists at {target} (pass --force to replace it)")
    root.mkdir(parents=True, exist_ok=True)
    # Hidden names (list_models skips them); plain mkdir so the umask sets permissions.
    staging = root / f".{model_id}.{uuid.uuid4().hex}.tmp"
    staging.mkdir()
    try:
        manifest = build_model(source, staging, model_id=model_id, fp32=fp32, **options)
        if query_int8:
            manifest = add_query_encoder(staging)
        if target.exists():
            retired = root / f".{model_id}.{uuid.uuid4().hex}.old"
            os.replace(target, retired)
            os.replace(staging, target)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target, manifest


# ------------------------------------------------------------------ int8 query encoder
QUERY_INT8_FILE = "query-int8.onnx"
#: Operators quantised in the query encoder: the MatMuls (feed-forward layers, attention
#: output) and the fused attention; the embedding tables stay float (quantising them too
#: missed the retrieval bar: benchmarks/RESULTS.md, "Spaced queries").
QUERY_INT8_OPS = ("MatMul", "Attention")


def add_query_encoder(
    directory: str | os.PathLike[str], *, op_types: tuple[str, ...] | None = QUERY_INT8_OPS,
    file: str = QUERY_INT8_FILE,
) -> dict[str, Any]:
    """Write an int8 copy of ``directory``'s embedder for queries only
    (``query-int8.onnx``: onnxruntime's dynamic quantisation of the ``op_types`` operators,
    ``None`` for all it knows: int8 weights per output channel, activations quantised per
    run) and name it in ``model.json``'s ``query_model``; documents keep running through
    the float model. Returns the new manifest.

    Judge it by retrieval quality, not by vector cosine: for lichen-minilm, queries through
    it against float documents score nDCG@10 -0.0026 / recall@10 +0.0018 on msmarco-5k
    (bar: within 0.003; ``benchmarks/eval_query_encoder.py``), while a single query embeds
    in ~0.6x the time; vectors differ by cosine >= 0.99. Needs ``onnx`` (the
    ``build-model`` extra)."""
    onnx, _, helper, _, _ = _onnx_modules()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from ._fuse import _fold_weight_casts, _reduce_exact_weights

    directory = Path(directory)
    manifest_path = directory / "model.json"
    manifest = _read_json(manifest_path)
    if manifest.get("kind", EMBEDDER) != EMBEDDER:
        raise InvalidArgumentError(f"{directory}: only an embedder has a query encoder")
    model = onnx.load(str(directory / "model.onnx"))
    _fold_weight_casts(model)  # the quantiser reads float32 initialisers, not Cast(float16)
    if not any(entry.domain == "com.microsoft" for entry in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))  # the fused operators' domain
    staging = directory / f".{QUERY_INT8_FILE}.{uuid.uuid4().hex}.tmp"
    source = staging.with_suffix(".float.onnx")
    try:
        onnx.save_model(model, str(source))
        import logging

        quiet = logging.getLogger()
        level = quiet.level
        quiet.setLevel(logging.ERROR)  # "please consider pre-processing": not needed for dynamic quantisation
        try:
            quantize_dynamic(
                str(source), str(staging), weight_type=QuantType.QInt8, per_channel=True,
                op_types_to_quantize=list(op_types) if op_types is not None else None,
            )
        finally:
            quiet.setLevel(level)
        quantized = onnx.load(str(staging))
        # The embedding tables go back to float16 + Cast (same vectors, ~24 MB less); other
        # float weights stay float32: behind a Cast, onnxruntime picks other kernels for
        # the quantised graph and the vectors move (up to 0.03).
        tables = {i for node in quantized.graph.node if node.op_type == "EmbedLayerNormalization" for i in node.input}
        _reduce_exact_weights(quantized, only=tables)
        onnx.save_model(quantized, str(staging))
        os.replace(staging, directory / file)
    finally:
        for leftover in (source, staging):
            if leftover.exists():
                leftover.unlink()
    manifest["query_model"] = file
    tmp = manifest_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, manifest_path)
    return manifest
