"""LichenSearchTool as CrewAI runs a tool: argument validation from its pydantic schema,
``run`` / ``arun``, the structured tool agents call, and what the agent reads back."""

from __future__ import annotations

import json

import pytest
from crewai.tools import BaseTool
from crewai_lichen import LichenSearchInput, LichenSearchTool
from lichen import DocumentInfo, InvalidArgumentError, SessionIndex

DOCS = [
    DocumentInfo(id="refunds", text="Refunds go back to the original card within 5 business days.", metadata={"topic": "billing"}),
    DocumentInfo(id="invoices", text="Invoices are emailed on the first day of each month.", metadata={"topic": "billing"}),
    DocumentInfo(id="password", text="Reset a forgotten password from the sign-in page.", metadata={"topic": "account"}),
]


@pytest.fixture
def index() -> SessionIndex:
    session = SessionIndex("handbook")
    session.add_docs_sync(DOCS)
    return session


def ids(output: str) -> list[str]:
    return [passage["id"] for passage in json.loads(output)]


def test_is_a_crewai_tool_with_a_pydantic_args_schema(index):
    tool = LichenSearchTool(index=index)
    assert isinstance(tool, BaseTool) and tool.args_schema is LichenSearchInput
    schema = tool.args_schema.model_json_schema()
    assert schema["required"] == ["query"] and set(schema["properties"]) == {"query", "top_k", "filter"}
    assert "query" in tool.formatted_description and "top_k" in tool.formatted_description  # what the LLM reads


def test_returns_passages_best_first_as_json(index):
    output = LichenSearchTool(index=index, top_k=2).run(query="when do I get my money back?")
    passages = json.loads(output)
    assert [p["id"] for p in passages] == ["refunds", "invoices"]
    assert set(passages[0]) == {"id", "text", "score", "metadata"}
    assert passages[0]["metadata"] == {"topic": "billing"} and passages[0]["score"] > passages[1]["score"]


def test_the_agents_arguments_are_validated(index):
    tool = LichenSearchTool(index=index)
    assert len(json.loads(tool.run(query="refund", top_k=1))) == 1
    for bad in ({"query": "x", "top_k": 0}, {"query": "x", "top_k": 51}, {"query": "x", "filter": "a=b"}, {}):
        with pytest.raises(ValueError, match="arguments validation failed"):  # CrewAI's words, shown to the agent
            tool.run(**bad)


def test_the_tools_filter_and_the_agents_filter_both_apply(index):
    tool = LichenSearchTool(index=index, filter={"topic": "billing"})
    assert set(ids(tool.run(query="anything"))) == {"refunds", "invoices"}
    assert ids(tool.run(query="anything", filter={"$document": {"$contains": "Invoices"}})) == ["invoices"]
    with pytest.raises(InvalidArgumentError, match="unknown"):
        tool.run(query="x", filter={"topic": {"$like": "bill%"}})


def test_min_score(index):
    assert ids(LichenSearchTool(index=index, min_score=0.99).run(query="refund")) == []


def test_results_are_never_cached_because_the_index_changes(index):
    tool = LichenSearchTool(index=index, top_k=1)
    assert tool.cache_function({"query": "shipping"}, "[]") is False
    index.add_docs_sync([DocumentInfo(id="shipping", text="Orders ship within two days.")])
    assert ids(tool.run(query="when does my order ship")) == ["shipping"]


def test_the_structured_tool_agents_call(index):
    structured = LichenSearchTool(index=index, top_k=1).to_structured_tool()
    assert structured.name == "lichen_search"
    assert ids(structured.invoke({"query": "forgot my password"})) == ["password"]


async def test_arun_matches_run(index):
    tool = LichenSearchTool(index=index)
    assert await tool.arun(query="invoice") == tool.run(query="invoice")


def test_searches_a_loaded_long_term_index(client):
    session = client.session_sync("faq")
    session.add_docs_sync(DOCS)
    session.push_index_sync()
    tool = LichenSearchTool(index=client.load_index_sync("faq"), top_k=1)
    assert ids(tool.run(query="password reset")) == ["password"]
