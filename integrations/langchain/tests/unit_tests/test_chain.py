"""A real LCEL chain: retriever | prompt | chat model, end to end, sync and async."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.language_models import FakeListChatModel
from langchain_core.messages import BaseMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough
from langchain_lichen import LichenContextRetriever

ANSWER = "Your duplicate charge will be refunded within 5 business days."


class PromptRecorder(BaseCallbackHandler):
    """Keeps the messages every chat model in the chain was called with."""

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def on_chat_model_start(self, serialized: dict[str, Any], messages: list[list[BaseMessage]], **kwargs: Any) -> None:
        self.prompts.extend("\n".join(str(m.content) for m in batch) for batch in messages)


def format_docs(docs: list[Document]) -> str:
    return "\n".join(f"[{doc.metadata['lichen_source']}] {doc.page_content}" for doc in docs)


def build_chain(retriever: LichenContextRetriever):
    prompt = ChatPromptTemplate.from_messages([
        ("system", "You are a support agent. Use the call so far and the FAQs.\n\n{context}"),
        ("human", "{question}"),
    ])
    llm = FakeListChatModel(responses=[ANSWER])
    return {"context": retriever | format_docs, "question": RunnablePassthrough()} | prompt | llm | StrOutputParser()


def assert_prompt_has_both_sources(prompt: str) -> None:
    # A turn from the live session and an answer from the long-term FAQ index.
    assert "[session] Customer: I was charged twice for my subscription this month." in prompt
    assert "[support-faqs] Duplicate charges are refunded to the original card within 5 business days." in prompt
    assert "When will I get my money back for the double charge?" in prompt


def test_chain_sync(call_session, faq_client):
    retriever = LichenContextRetriever(session=call_session, client=faq_client, indexes=["support-faqs"], k=4)
    recorder = PromptRecorder()
    answer = build_chain(retriever).invoke(
        "When will I get my money back for the double charge?", config={"callbacks": [recorder]}
    )
    assert answer == ANSWER
    (prompt,) = recorder.prompts
    assert_prompt_has_both_sources(prompt)


async def test_chain_async_inside_running_loop(call_session, faq_client):
    retriever = LichenContextRetriever(session=call_session, client=faq_client, indexes=["support-faqs"], k=4)
    chain = build_chain(retriever)
    recorder = PromptRecorder()
    answer = await chain.ainvoke("When will I get my money back for the double charge?", config={"callbacks": [recorder]})
    assert answer == ANSWER
    assert_prompt_has_both_sources(recorder.prompts[0])
    # A turn added mid-call is visible to the very next question.
    call_session.add_docs_sync([_turn("turn-4", "Customer: also, the refund should go to my new card ending 9999.")])
    recorder = PromptRecorder()
    chain.invoke("When will I get my money back for the double charge?", config={"callbacks": [recorder]})
    assert "new card ending 9999" in recorder.prompts[0]


def _turn(doc_id: str, text: str):
    from lichen import DocumentInfo

    return DocumentInfo(id=doc_id, text=text, metadata={"speaker": "customer"})
