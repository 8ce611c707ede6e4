"""A LlamaIndex FunctionAgent uses the tools from ``to_tool_list()``: it stores a note,
finds it again by meaning, and answers from what the tool returned. The LLM is
llama-index-core's MockFunctionCallingLLM with a scripted response generator: the agent
workflow, tool selection and tool calls are LlamaIndex's own; no model is called."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from lichen import SessionIndex
from llama_index.core.agent.workflow import FunctionAgent, ToolCallResult
from llama_index.core.base.llms.types import ChatMessage, MessageRole, ToolCallBlock
from llama_index.core.llms import MockFunctionCallingLLM
from llama_index.tools.lichen import LichenToolSpec

# The workflow runtime inspects pydantic models with inspect.getmembers, which touches
# pydantic's deprecated attributes: LlamaIndex's warnings, not this package's.
pytestmark = [
    pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20"),
    pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince211"),
]


def scripted(*steps: dict[str, Any] | Callable[[Sequence[ChatMessage]], str]) -> MockFunctionCallingLLM:
    """An LLM whose n-th reply is the n-th step: a tool call ``{"tool": name, **kwargs}``
    or, for the final answer, a function of the conversation so far."""
    remaining = list(steps)

    def reply(messages: Sequence[ChatMessage], **kwargs: Any) -> ChatMessage:
        step = remaining.pop(0)
        if callable(step):
            return ChatMessage(role=MessageRole.ASSISTANT, content=step(messages))
        arguments = {k: v for k, v in step.items() if k != "tool"}
        call = ToolCallBlock(tool_call_id=f"call-{len(remaining)}", tool_name=step["tool"], tool_kwargs=arguments)
        return ChatMessage(role=MessageRole.ASSISTANT, blocks=[call])

    return MockFunctionCallingLLM(response_generator=reply, is_chat_model=True)


async def test_a_function_agent_stores_recalls_and_answers():
    notes = SessionIndex("agent-notes")

    def last_tool_output(messages: Sequence[ChatMessage]) -> str:
        return "From my notes: " + messages[-1].content

    llm = scripted(
        {"tool": "add", "texts": ["The customer's order #1042 shipped on Monday."], "metadata": {"source": "crm"}},
        {"tool": "query", "query": "when did order 1042 ship?", "top_k": 1},
        last_tool_output,
    )
    agent = FunctionAgent(tools=LichenToolSpec(notes).to_tool_list(), llm=llm)

    handler = agent.run("Remember the shipping date of order 1042, then tell me when it shipped.")
    calls = [event async for event in handler.stream_events() if isinstance(event, ToolCallResult)]
    answer = str(await handler)

    assert [call.tool_name for call in calls] == ["add", "query"]
    assert notes.doc_count == 1 and notes.get_docs_sync()[0].metadata == {"source": "crm"}
    (passage,) = calls[1].tool_output.raw_output
    assert passage["text"] == "The customer's order #1042 shipped on Monday." and passage["score"] > 0.5
    assert answer.startswith("From my notes: ") and "shipped on Monday" in answer


async def test_a_tool_error_goes_back_to_the_agent_instead_of_crashing_the_run():
    llm = scripted({"tool": "query", "query": "x", "filter": {"topic": {"$like": "x%"}}}, lambda m: m[-1].content)
    agent = FunctionAgent(tools=LichenToolSpec(SessionIndex("s")).to_tool_list(), llm=llm)
    handler = agent.run("search")
    (call,) = [event async for event in handler.stream_events() if isinstance(event, ToolCallResult)]
    await handler
    assert call.tool_output.is_error and "$like" in call.tool_output.content
