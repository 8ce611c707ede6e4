"""Bring your own embeddings: ``model_id="custom"`` with vectors from any LangChain
``Embeddings``.

Lichen stores and searches whatever vectors you give it (any dimension); every document
carries ``embedding=`` and every query passes ``QueryOptions(embedding=...)``. Here the
vectors come from a small hashing bag-of-words model written in a few lines, so the
recipe runs offline; swap in any LangChain embedding class with one line.

Run: ``python cookbook/bring_your_own_embeddings.py``
"""

from __future__ import annotations

import asyncio
import hashlib
import re

import numpy as np
from langchain_core.embeddings import Embeddings

from lichen import Client, DocumentInfo, QueryOptions


class HashingEmbeddings(Embeddings):
    """Feature hashing of lower-cased words into 256 dimensions: crude, but any
    ``Embeddings`` works the same way."""

    dimension = 256

    def _embed(self, text: str) -> list[float]:
        vector = np.zeros(self.dimension, dtype=np.float32)
        for word in re.findall(r"\w+", text.lower()):
            vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dimension] += 1.0
        return vector.tolist()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._embed(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._embed(text)


DOCS = [
    ("kb-1", "Invoices are emailed on the first day of each month."),
    ("kb-2", "Refunds are processed within five business days."),
    ("kb-3", "Two-factor authentication can be enabled in security settings."),
]


async def main() -> None:
    embeddings = HashingEmbeddings()  # e.g. OpenAIEmbeddings() or HuggingFaceEmbeddings(...)
    client = Client()
    session = await client.session(index_name="byo-embeddings-demo", model_id="custom")
    vectors = embeddings.embed_documents([text for _, text in DOCS])
    await session.add_docs([DocumentInfo(id=i, text=t, embedding=v) for (i, t), v in zip(DOCS, vectors)])
    print(f"model_id={session.model_id} dimension={session.dimension} docs={session.doc_count}")

    question = "when are refunds processed"
    result = await session.query(question, QueryOptions(top_k=2, embedding=embeddings.embed_query(question)))
    for doc in result.docs:
        print(f"{doc.id} score={doc.score:.3f} {doc.text}")


if __name__ == "__main__":
    asyncio.run(main())
