"""LangChain RAG chain: answer from the live conversation and the knowledge base, citing both.

The support handbook (``cookbook/data/handbook``, one document per ``##`` section) is a
long-term index loaded through ``lichen.Client``; the turns of the current chat go into a
session through ``LichenVectorStore`` as they arrive. ``LichenContextRetriever`` queries
both with one question and tags every passage with where it came from
(``metadata["lichen_source"]``: ``"session"`` or the index name), so the prompt can ask the
model to cite the customer's own words apart from policy. Use this when a chatbot or
agent assist needs what was just said as well as what the documentation says.
The chat model is LangChain's fake one, so the recipe runs offline.

Run: ``python cookbook/langchain_rag_chain.py``
"""

from __future__ import annotations

import re
from operator import itemgetter
from pathlib import Path

from langchain_core.documents import Document
from langchain_core.language_models import FakeListChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough

from lichen import Client, DocumentInfo
from langchain_lichen import LichenContextRetriever, LichenVectorStore

HANDBOOK = Path(__file__).parent / "data" / "handbook"
KNOWLEDGE_BASE = "support-handbook"

CONVERSATION = [
    ("customer", "Hi, my order 4821 arrived yesterday and the glass jar of the blender is cracked."),
    ("agent", "I'm sorry about that! Before I look at the order, can you confirm the delivery postcode?"),
    ("customer", "LS6 2QT."),
    ("agent", "Thanks, that matches. Could you send me a photo of the jar and the box?"),
    ("customer", "Sure, photo attached. I paid with PayPal, if that matters for the refund."),
]
QUESTION = "Do I have to send the damaged blender back before I get my money, and how long does the refund take?"

PROMPT = ChatPromptTemplate.from_messages(
    [
        (
            "system",
            "You are a Fernwood support agent. Answer from the context only. Passages tagged "
            "[session ...] are what was said earlier in this chat; passages tagged "
            "[support-handbook ...] are company policy. Cite the tag of every passage you use.",
        ),
        ("human", "Context:\n{context}\n\nQuestion: {question}"),
    ]
)


def handbook_sections(folder: Path) -> list[DocumentInfo]:
    """One knowledge-base document per ``##`` section: small enough to cite precisely."""
    docs = []
    for path in sorted(folder.glob("*.md")):
        for block in re.split(r"^## ", path.read_text(), flags=re.MULTILINE)[1:]:
            heading, _, body = block.partition("\n")
            slug = re.sub(r"[^a-z0-9]+", "-", heading.lower()).strip("-")
            docs.append(
                DocumentInfo(
                    id=f"{path.stem}#{slug}",
                    text=f"{heading}. {' '.join(body.split())}",
                    metadata={"file": path.name, "topic": path.stem, "section": heading},
                )
            )
    return docs


def record_turns(chat: LichenVectorStore, turns: list[tuple[str, str]]) -> None:
    """Append turns to the chat's session, numbered after the ones already there."""
    first = chat.index.doc_count + 1
    chat.add_texts(
        [f"{speaker.capitalize()}: {text}" for speaker, text in turns],
        metadatas=[{"speaker": speaker, "turn": n} for n, (speaker, _) in enumerate(turns, start=first)],
        ids=[f"turn-{n}" for n in range(first, first + len(turns))],
    )


def format_context(docs: list[Document]) -> str:
    return "\n".join(f"[{doc.metadata['lichen_source']} {doc.id}] {doc.page_content}" for doc in docs)


def main() -> None:
    client = Client()  # the embedded store under LICHEN_HOME; Client(..., url=...) for a server
    if not any(info.name == KNOWLEDGE_BASE for info in client.list_indexes_sync()):
        client.create_index_sync(KNOWLEDGE_BASE, handbook_sections(HANDBOOK))
    client.load_index_sync(KNOWLEDGE_BASE)

    # Short-term context: the chat so far, one document per turn, written as it happens.
    chat = LichenVectorStore(index=client.session_sync("chat-4821"))
    record_turns(chat, CONVERSATION)
    # Six passages: the three best turns of the chat and the three best handbook sections,
    # each source ranked by hybrid search (alpha=0.5 blends BM25 keywords into the vectors).
    retriever = LichenContextRetriever(
        session=chat.index,
        client=client,
        indexes=[KNOWLEDGE_BASE],
        k=6,
        per_source_k={"session": 3, KNOWLEDGE_BASE: 3},
        alpha=0.5,
    )

    # Canned answer, so the recipe runs offline. For a real model, swap this one line, e.g.
    # llm = ChatOpenAI(model="gpt-4o-mini")   # from langchain_openai import ChatOpenAI
    llm = FakeListChatModel(
        responses=[
            "No, you don't need to send it back: since the jar arrived cracked [session turn-1] and you "
            "have sent a photo [session turn-5], we refund as soon as the photo is approved "
            "[support-handbook returns#damaged-or-faulty-items]. You paid with PayPal [session turn-5], "
            "so the money arrives within 24 hours [support-handbook billing#how-long-a-refund-takes]."
        ]
    )
    # Each step adds a key, so the chain returns the passages and the exact prompt with the answer.
    chain = (
        RunnablePassthrough.assign(docs=itemgetter("question") | retriever)
        .assign(context=lambda state: format_context(state["docs"]))
        .assign(prompt=PROMPT)
        .assign(answer=itemgetter("prompt") | llm | StrOutputParser())
    )
    result = chain.invoke({"question": QUESTION})

    print(f"question: {QUESTION}")
    print("retrieved context:")
    for doc in result["docs"]:
        print(f"  {doc.metadata['lichen_source']:<16} {doc.id:<38} {doc.page_content[:60]}")
    print("prompt sent to the model:")
    for message in result["prompt"].to_messages():
        for line in message.content.splitlines():
            print(f"  {message.type}> {line}")
    print(f"answer: {result['answer']}")

    # The exchange joins the chat, so the next question sees it as session context.
    record_turns(chat, [("customer", QUESTION), ("agent", result["answer"])])
    print(f"chat-4821 now holds {chat.index.doc_count} turns")


if __name__ == "__main__":
    main()
