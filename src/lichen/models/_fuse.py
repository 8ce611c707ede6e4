"""Fusing a built BERT graph into onnxruntime's attention operators, once, at build time.

onnxruntime fuses LayerNorm and GELU when a session starts, but not attention: that
fusion lives in its offline transformer optimiser (``onnxruntime.transformers``), which
turns each layer's ~20 attention nodes into one ``Attention`` operator and the embedding
sum into ``EmbedLayerNormalization``. On the reference box that makes a query's embedding
several percent faster with vectors equal to ~3e-7 (``benchmarks/RESULTS.md``, "Query
embedding latency"): a saving every query pays, so it is paid for once here.

The optimiser matches the graph a PyTorch export emits, so the built graph is brought to
that form first: the additive mask's ``Unsqueeze`` over axes [1, 2] becomes two, and
float16 weights stored behind ``Cast`` nodes become float32 initialisers (it does not look
through casts). Afterwards every float32 initialiser that float16 holds exactly goes back
to float16 behind a ``Cast``: fusing only concatenates weights (Q, K and V into one
matrix), so the file keeps its size and the weights their values.

onnxruntime's fused embedding layer turns the attention mask into a mask index for the
fused attention; Lichen only ever sends right-padded masks (how
:class:`~lichen.models._onnx.OnnxEmbedder` pads every batch), the case the padded-batch
tests check, and nothing else is supported.

When the optimiser is missing or does not fuse every layer, the caller keeps the graph as
built: slower, same vectors.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

__all__ = ["fuse_attention"]

#: float32 initialisers at least this big go back to float16 (smaller ones are shapes,
#: scalars and biases the optimiser created, not worth a Cast each).
_REDUCED_MIN_SIZE = 1024


def fuse_attention(model: Any, *, heads: int, hidden: int, layers: int, reduce_weights: bool) -> Any | None:
    """A fused copy of ``model`` (an ``onnx.ModelProto`` written by ``build_graph``), or
    ``None`` if attention could not be fused in all ``layers`` layers.

    ``reduce_weights``: store the weights as float16 again, as the input did."""
    try:
        from onnxruntime.transformers.optimizer import optimize_model
    except ImportError:  # sympy missing: the optimiser's shape inference needs it
        return None
    import onnx

    prepared = onnx.ModelProto()
    prepared.CopyFrom(model)
    _split_mask_unsqueeze(prepared)
    _fold_weight_casts(prepared)
    quiet = logging.getLogger("onnxruntime.transformers")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # it warns that the producer is not "pytorch"
    try:
        optimized = optimize_model(prepared, model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=0)
    except Exception:  # noqa: BLE001 - an optimiser failure only costs speed
        return None
    finally:
        quiet.setLevel(level)
    if optimized.get_fused_operator_statistics().get("Attention", 0) != layers:
        return None
    fused = optimized.model
    if reduce_weights:
        _reduce_exact_weights(fused)
    return fused


def _split_mask_unsqueeze(model: Any) -> None:
    """``Unsqueeze(attention_mask, [1, 2])`` -> ``Unsqueeze(Unsqueeze(mask, [1]), [2])``."""
    from onnx import helper, numpy_helper

    graph = model.graph
    constants = {init.name: init for init in graph.initializer}
    for position, node in enumerate(graph.node):
        if node.op_type != "Unsqueeze" or node.input[0] != "attention_mask" or node.input[1] not in constants:
            continue
        if numpy_helper.to_array(constants[node.input[1]]).tolist() != [1, 2]:
            continue
        graph.initializer.extend([
            numpy_helper.from_array(np.array([1], np.int64), "mask_axis_1"),
            numpy_helper.from_array(np.array([2], np.int64), "mask_axis_2"),
        ])
        first = helper.make_node("Unsqueeze", ["attention_mask", "mask_axis_1"], ["mask_b1s"], name="mask_unsqueeze_1")
        second = helper.make_node("Unsqueeze", ["mask_b1s", "mask_axis_2"], list(node.output), name="mask_unsqueeze_2")
        del graph.node[position]
        graph.node.insert(position, second)
        graph.node.insert(position, first)
        return


def _fold_weight_casts(model: Any) -> None:
    """Replace each ``Cast`` of a float16 initialiser by a float32 initialiser named as
    the cast's output, so consumers are unchanged."""
    from onnx import TensorProto, numpy_helper

    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    folded: dict[str, str] = {}
    kept = []
    for node in graph.node:
        source = initializers.get(node.input[0]) if node.op_type == "Cast" and node.input else None
        if source is not None and source.data_type == TensorProto.FLOAT16:
            folded[node.output[0]] = source.name
        else:
            kept.append(node)
    if not folded:
        return
    used = set(folded.values())
    remaining = [init for init in graph.initializer if init.name not in used]
    remaining += [
        numpy_helper.from_array(numpy_helper.to_array(initializers[source]).astype(np.float32), output)
        for output, source in folded.items()
    ]
    del graph.node[:]
    graph.node.extend(kept)
    del graph.initializer[:]
    graph.initializer.extend(remaining)


def _reduce_exact_weights(model: Any, only: set[str] | None = None) -> None:
    """Store float32 initialisers whose values float16 holds exactly as float16 + ``Cast``
    (onnxruntime folds the casts when a session starts); ``only``: just these names."""
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    casts, initializers = [], []
    for init in graph.initializer:
        wanted = init.data_type == TensorProto.FLOAT and (only is None or init.name in only)
        values = numpy_helper.to_array(init) if wanted else None
        if values is not None and values.size >= _REDUCED_MIN_SIZE and np.array_equal(
            values.astype(np.float16).astype(np.float32), values
        ):
            initializers.append(numpy_helper.from_array(values.astype(np.float16), init.name + "_fp16"))
            casts.append(helper.make_node("Cast", [init.name + "_fp16"], [init.name], name=init.name + "_cast",
                                          to=TensorProto.FLOAT))
        else:
            initializers.append(init)
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(initializers)
