"""LlamaIndex query engine: a Markdown folder ingested into Lichen, queried with filters.

``SimpleDirectoryReader`` reads the support handbook (``cookbook/data/handbook``), each
file tagged with a ``topic``; ``SentenceSplitter`` chunks it into ``LichenVectorStore``,
embedded in process by ``LichenEmbedding``. A query engine with ``MetadataFilters`` answers
from one topic only, next to an unfiltered retrieval for contrast. The index is pushed
through Lichen, so the next run resumes it without reading or embedding anything again.
Use this to put a folder of documents behind a LlamaIndex query engine with no server and
no API key. ``embed_model`` and ``llm`` are always passed, so LlamaIndex's ``Settings``
(OpenAI by default) are never consulted; ``MockLLM`` echoes its prompt.

Run: ``python cookbook/llamaindex_query_engine.py``
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from llama_index.core import SimpleDirectoryReader, StorageContext, VectorStoreIndex
from llama_index.core.llms import MockLLM
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import NodeWithScore
from llama_index.core.vector_stores import MetadataFilter, MetadataFilters
from llama_index.embeddings.lichen import LichenEmbedding
from llama_index.vector_stores.lichen import LichenVectorStore

from lichen import Client

HANDBOOK = Path(__file__).parent / "data" / "handbook"
INDEX_NAME = "handbook-llamaindex"
QUESTION = "How long does a refund take?"


def file_metadata(path: str) -> dict:
    # Replaces the reader's default metadata (absolute path, dates): stable and filterable.
    return {"file_name": Path(path).name, "topic": Path(path).stem}


def build_index(store: LichenVectorStore, embed_model: LichenEmbedding) -> VectorStoreIndex:
    documents = SimpleDirectoryReader(str(HANDBOOK), required_exts=[".md"], file_metadata=file_metadata).load_data()
    # Node ids from file name and chunk number: ingesting the same files again overwrites
    # their nodes instead of adding copies.
    splitter = SentenceSplitter(
        chunk_size=128, chunk_overlap=16, id_func=lambda i, doc: f"{doc.metadata['file_name']}#{i}"
    )
    return VectorStoreIndex.from_documents(
        documents,
        storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=embed_model,
        transformations=[splitter],
    )


def show(title: str, nodes: list[NodeWithScore]) -> None:
    print(title)
    for hit in nodes:
        snippet = " ".join(hit.node.get_content().split())[:64]
        print(f"  {hit.node.metadata['file_name']:<20} {hit.score:.3f}  {snippet}")


def main() -> None:
    client = Client()  # the embedded store under LICHEN_HOME
    embed_model = LichenEmbedding()
    store = LichenVectorStore(client.session_sync(INDEX_NAME))  # resumes the pushed index, if any
    if store.index.doc_count:
        print(f"resumed {INDEX_NAME!r} from Lichen: {store.index.doc_count} nodes, nothing re-embedded")
        index = VectorStoreIndex.from_vector_store(store, embed_model=embed_model)
    else:
        index = build_index(store, embed_model)
        pushed = store.push()
        print(
            f"ingested {HANDBOOK.name}/ and pushed {pushed.index_name!r}: "
            f"{pushed.doc_count} nodes (version {pushed.version})"
        )
    info = client.get_index_sync(INDEX_NAME)
    print(f"stored in Lichen: {info.name} docs={info.doc_count} model={info.model_id} dimension={info.dimension}")
    topics = Counter(doc.metadata["topic"] for doc in client.get_docs_sync(INDEX_NAME))
    print("  nodes per topic:", ", ".join(f"{topic}={count}" for topic, count in sorted(topics.items())))

    show(f"unfiltered retrieval: {QUESTION}", index.as_retriever(similarity_top_k=4).retrieve(QUESTION))

    # The returns page says when a refund is issued; the billing page says when the money arrives.
    billing_only = MetadataFilters(filters=[MetadataFilter(key="topic", value="billing")])
    # MockLLM answers with the prompt it was given; for a real model pass e.g.
    # llm=OpenAI(model="gpt-4o-mini")   # from llama_index.llms.openai import OpenAI
    engine = index.as_query_engine(llm=MockLLM(), filters=billing_only, similarity_top_k=2)
    response = engine.query(QUESTION)
    show(f"query engine, topic == 'billing': {QUESTION}", response.source_nodes)
    print("response (MockLLM echoes the prompt, showing the context it was given):")
    for line in str(response).splitlines():
        print(f"  | {line}")


if __name__ == "__main__":
    main()
