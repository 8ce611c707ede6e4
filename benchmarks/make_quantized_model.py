"""Write a weight-quantised copy of the shipped model, to measure what it would buy.

Issue 9 asks to cut the query embedding's ~2 ms without changing the vectors (cosine to
the reference >= 0.9999 on the golden set). Lower-precision weights are the one lever
left after fusing attention; this writes a model directory that
``bench_model_variants.py --against`` compares with the shipped one::

    pip install onnx onnx-ir   # the quantiser's needs; not dependencies of Lichen
    python benchmarks/make_quantized_model.py --bits 8 --block-size 32 --accuracy-level 4 --out /tmp/w8
    python benchmarks/bench_model_variants.py --data ../shared/data/msmarco-5k --against /tmp/w8 \\
        --out /tmp/w8.json

The float16 initialisers' ``Cast`` nodes are folded to float32 first (the quantiser only
sees MatMul weights given as initialisers); then onnxruntime's ``MatMulNBitsQuantizer``
quantises every MatMul weight block-wise (symmetric). The fused attention's own weights
are not MatMuls and stay as they are. ``--accuracy-level 4`` computes in int8 (the fast
kernels); 0 dequantises to float32 on the fly.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np

from lichen.models import model_dir


def float32_initialisers(model):
    """Replace each ``Cast(float16 initialiser)`` by a float32 initialiser."""
    from onnx import numpy_helper

    graph = model.graph
    initialisers = {tensor.name: tensor for tensor in graph.initializer}
    kept = []
    for node in graph.node:
        source = initialisers.get(node.input[0]) if node.op_type == "Cast" else None
        if source is not None and source.data_type == 10:  # FLOAT16
            graph.initializer.append(numpy_helper.from_array(numpy_helper.to_array(source).astype(np.float32), node.output[0]))
        else:
            kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)
    used = {name for node in graph.node for name in node.input}
    for tensor in list(graph.initializer):
        if tensor.name not in used:
            graph.initializer.remove(tensor)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bits", type=int, choices=(4, 8), default=8)
    parser.add_argument("--block-size", type=int, default=32)
    parser.add_argument("--accuracy-level", type=int, choices=(0, 1, 2, 3, 4), default=4)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    shipped = model_dir("lichen-minilm")
    model = float32_initialisers(onnx.load(str(shipped / "model.onnx")))
    config = DefaultWeightOnlyQuantConfig(
        block_size=args.block_size, is_symmetric=True, accuracy_level=args.accuracy_level, bits=args.bits
    )
    quantizer = MatMulNBitsQuantizer(model, algo_config=config)
    quantizer.process()
    args.out.mkdir(parents=True, exist_ok=True)
    quantizer.model.save_model_to_file(str(args.out / "model.onnx"))
    for name in ("model.json", "tokenizer.json"):
        shutil.copy(shipped / name, args.out / name)
    print(f"wrote {args.out / 'model.onnx'} ({(args.out / 'model.onnx').stat().st_size / 2**20:.1f} MB)")


if __name__ == "__main__":
    main()
