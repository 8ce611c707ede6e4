"""A whole Crew runs offline with the tool and the knowledge storage: CrewAI's own agent
loop parses the tool call, runs the tool and feeds its output back; agents build their
knowledge through the registered storage factory and CrewAI puts what it retrieves into
the prompt. The LLM is scripted (``ScriptedLLM``): no model is called."""

from __future__ import annotations

import json
from typing import Any

import pytest
from crewai import Agent, Crew, Task
from crewai.knowledge.source.string_knowledge_source import StringKnowledgeSource
from crewai.knowledge.storage.factory import set_knowledge_storage_factory
from crewai.llms.base_llm import BaseLLM
from crewai_lichen import LichenKnowledgeStorage, LichenSearchTool, lichen_knowledge_storage_factory
from lichen import DocumentInfo, SessionIndex

# CrewAI's deprecation notices about its own internals, not about this package.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:crewai")


class ScriptedLLM(BaseLLM):
    """Answers each call with the next scripted reply and keeps what it was sent."""

    replies: list[str] = []
    prompts: list[Any] = []

    def call(self, messages: Any, *args: Any, **kwargs: Any) -> str:
        self.prompts.append(messages)
        return self.replies.pop(0)

    def supports_function_calling(self) -> bool:
        return False  # CrewAI's ReAct text protocol: "Action: ...", "Action Input: {...}"


def test_an_agent_calls_the_search_tool_and_reads_its_passages():
    handbook = SessionIndex("handbook")
    handbook.add_docs_sync([
        DocumentInfo(id="refunds", text="Refunds go back to the original card within 5 business days."),
        DocumentInfo(id="password", text="Reset a forgotten password from the sign-in page."),
    ])
    llm = ScriptedLLM(
        model="scripted",
        replies=[
            'Thought: I should look this up.\nAction: lichen_search\nAction Input: {"query": "refund timeline", "top_k": 1}',
            "Thought: I now know the final answer\nFinal Answer: Within 5 business days.",
        ],
    )
    agent = Agent(role="Support", goal="Answer customers", backstory="A support agent.", tools=[LichenSearchTool(index=handbook)], llm=llm)
    task = Task(description="How long do refunds take?", expected_output="A duration.", agent=agent)
    result = Crew(agents=[agent], tasks=[task]).kickoff()

    assert result.raw == "Within 5 business days."
    observation = json.dumps(llm.prompts[1])
    assert "Refunds go back to the original card" in observation and "sign-in page" not in observation


@pytest.fixture
def lichen_knowledge(client):
    set_knowledge_storage_factory(lichen_knowledge_storage_factory(client))
    yield client
    set_knowledge_storage_factory(None)


def test_agents_keep_their_knowledge_in_lichen_through_the_factory(lichen_knowledge):
    facts = StringKnowledgeSource(content="The Berlin office closes at 17:00 on Fridays.")
    llm = ScriptedLLM(
        model="scripted",
        replies=["Berlin office Friday closing time", "Thought: I now know the final answer\nFinal Answer: 17:00."],
    )
    agent = Agent(role="Office Assistant", goal="Answer office questions", backstory="Knows the offices.", knowledge_sources=[facts], llm=llm)
    task = Task(description="When does the Berlin office close on Friday?", expected_output="A time.", agent=agent)
    assert Crew(agents=[agent], tasks=[task]).kickoff().raw == "17:00."

    assert isinstance(agent.knowledge.storage, LichenKnowledgeStorage)
    assert agent.knowledge.storage.session.name == "knowledge_Office Assistant"
    assert agent.knowledge.storage.session.doc_count == 1
    # CrewAI asked the model for a search query, searched Lichen, and put the hit in the task prompt.
    assert "Additional Information: The Berlin office closes at 17:00 on Fridays." in json.dumps(llm.prompts[-1])
