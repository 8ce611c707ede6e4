"""Produce the golden-vector fixture with the reference implementation (run once).

Runs sentence-transformers on torch over the upstream all-MiniLM-L6-v2 directory and
stores the sentences with their embeddings in ``tests/fixtures/golden_minilm.npz``;
``tests/test_model_fidelity.py`` then checks the shipped ONNX model against them without
needing torch. Needs a throwaway environment::

    python -m venv /tmp/golden && /tmp/golden/bin/pip install torch==2.13.0 sentence-transformers
    /tmp/golden/bin/python scripts/make_golden_vectors.py MODEL_DIR
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "golden_minilm.npz"

LONG_PARAGRAPH = (
    "The quarterly report covers revenue, churn, support volume and infrastructure spend "
    "across every region, with notes on the migration to the new billing provider. "
)

SENTENCES = [
    "",
    " ",
    "a",
    "Hi",
    "OK.",
    "refund timeline",
    "why was I charged twice",
    "Customer reported a duplicate charge on their March invoice.",
    "Agent confirmed the refund would arrive in 3-5 business days.",
    "Customer called back to confirm the refund was received.",
    "Refund of $49.99 appeared on the statement within 3 days.",
    "How do I reset my password if I no longer have access to my email?",
    "The quick brown fox jumps over the lazy dog.",
    "What is the capital of France?",
    "Paris is the capital and most populous city of France.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "SELECT id, name FROM users WHERE created_at > '2024-01-01' ORDER BY name;",
    "def top_k(scores, k): return np.argpartition(-scores, k)[:k]",
    "https://example.com/docs/getting-started?lang=en#install",
    "Call me at +1 (555) 010-9999 or email support@example.com.",
    "1234567890",
    "3.14159 2.71828 1.41421",
    "!!! ??? ... ---",
    "ALL CAPS SENTENCE ABOUT SHIPPING DELAYS",
    "mIxEd CaSe TeXt AbOuT bIlLiNg",
    "Café au lait, crème brûlée, and a naïve résumé.",
    "Straße, Müller, Größe und Übermut.",
    "¿Dónde está la biblioteca? Está cerca de la estación.",
    "Je voudrais annuler mon abonnement, s'il vous plaît.",
    "Привет, как дела? Я хочу вернуть деньги.",
    "東京は日本の首都です。",
    "我想查询我的订单状态。",
    "한국어 문장도 처리할 수 있나요?",
    "مرحبا، أريد استرداد أموالي",
    "שלום, מה שלומך?",
    "नमस्ते, मेरा ऑर्डर कहाँ है?",
    "Ελληνικά κείμενα για δοκιμή.",
    "I love this product 😍🔥👍",
    "🚀🚀🚀",
    "Thanks! 🙏 See you tomorrow 👋",
    "The meeting is at 10:30am PST on 2026-03-14.",
    "tabs\tand\nnewlines\r\nmixed   spaces",
    "emoji in the middle 🤖 of a sentence about robots",
    "Voice agents need retrieval in single-digit milliseconds.",
    "The patient reported mild headaches and occasional dizziness after the new medication.",
    "Our API rate limit is 100 requests per minute per project key.",
    "Turn off the lights in the living room and set the thermostat to 20 degrees.",
    "Can you summarize the last three support tickets from this customer?",
    "antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
    "word " * 100,
    LONG_PARAGRAPH * 3,
    LONG_PARAGRAPH * 12,
    "token " * 300,
    "Ünïcödé " * 200,
    ("The customer explained the issue in great detail. " * 40) + "The final sentence is past the limit.",
]


def main() -> None:
    from sentence_transformers import SentenceTransformer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path)
    args = parser.parse_args()
    model = SentenceTransformer(str(args.model_dir), device="cpu")
    assert model.max_seq_length == 256, model.max_seq_length
    vectors = model.encode(SENTENCES, batch_size=16, normalize_embeddings=False, convert_to_numpy=True)
    np.savez_compressed(OUT, sentences=np.array(SENTENCES, dtype=object).astype(str), vectors=vectors.astype(np.float32))
    print(f"wrote {len(SENTENCES)} golden vectors to {OUT}")


if __name__ == "__main__":
    main()
