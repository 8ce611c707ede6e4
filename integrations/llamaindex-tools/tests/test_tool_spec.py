"""LichenToolSpec as LlamaIndex agents see it: the FunctionTools from ``to_tool_list``,
their names, descriptions and schemas, and what calling them does to the index."""

from __future__ import annotations

import pytest
from lichen import DocumentInfo, InvalidArgumentError, SessionIndex
from llama_index.core.tools import FunctionTool
from llama_index.core.tools.tool_spec.base import BaseToolSpec
from llama_index.tools.lichen import LichenToolSpec

HANDBOOK = [
    DocumentInfo(id="refunds", text="Refunds go back to the original card within 5 business days.", metadata={"topic": "billing"}),
    DocumentInfo(id="invoices", text="Invoices are emailed on the first day of each month.", metadata={"topic": "billing"}),
    DocumentInfo(id="password", text="Reset a forgotten password from the sign-in page.", metadata={"topic": "account"}),
]


@pytest.fixture
def index() -> SessionIndex:
    session = SessionIndex("handbook")
    session.add_docs_sync(HANDBOOK)
    return session


@pytest.fixture
def tools(index) -> dict[str, FunctionTool]:
    return {tool.metadata.name: tool for tool in LichenToolSpec(index, top_k=2).to_tool_list()}


def test_a_tool_spec_with_three_tools_each_sync_and_async(tools):
    assert issubclass(LichenToolSpec, BaseToolSpec)
    assert list(tools) == ["query", "add", "delete"]
    assert all(tool.fn is not None and tool.async_fn is not None for tool in tools.values())


def test_schemas_and_descriptions_come_from_the_signatures_and_args(tools):
    schemas = {name: tool.metadata.fn_schema.model_json_schema() for name, tool in tools.items()}
    assert schemas["query"]["required"] == ["query"] and set(schemas["query"]["properties"]) == {"query", "top_k", "filter"}
    assert schemas["add"]["properties"]["texts"]["type"] == "array"
    assert schemas["delete"]["required"] == ["ids"]
    assert "matched by meaning" in schemas["query"]["properties"]["query"]["description"]
    assert tools["query"].metadata.description.startswith("query(query: 'str'")


def test_query_returns_passages_best_first(tools):
    output = tools["query"].call(query="when do I get my money back?")
    assert [p["id"] for p in output.raw_output] == ["refunds", "invoices"]
    assert set(output.raw_output[0]) == {"id", "text", "score", "metadata"}
    assert "Refunds go back" in output.content and not output.is_error


def test_add_then_query_then_delete(tools, index):
    ids = tools["add"].call(texts=["The user prefers email.", "The user prefers email."], metadata={"source": "chat"}).raw_output
    assert ids[0] == ids[1] and len(ids[0]) == 16  # one note, a short id the model can copy
    assert index.doc_count == 4
    hit = tools["query"].call(query="how should we contact the user?", top_k=1).raw_output[0]
    assert (hit["id"], hit["metadata"]) == (ids[0], {"source": "chat"})
    assert tools["delete"].call(ids=[ids[0], "unknown"]).raw_output == 1
    assert index.doc_count == 3


def test_the_specs_filter_and_the_agents_filter_both_apply(index):
    spec = LichenToolSpec(index, filter={"topic": "billing"})
    assert {p["id"] for p in spec.query("anything")} == {"refunds", "invoices"}
    assert [p["id"] for p in spec.query("anything", filter={"$document": {"$contains": "Invoices"}})] == ["invoices"]
    with pytest.raises(InvalidArgumentError, match="unknown"):
        spec.query("x", filter={"topic": {"$like": "bill%"}})


def test_min_score(index):
    assert LichenToolSpec(index, min_score=0.99).query("refund") == []


def test_a_loaded_long_term_index_offers_query_only(client):
    session = client.session_sync("faq")
    session.add_docs_sync(HANDBOOK)
    session.push_index_sync()
    spec = LichenToolSpec(client.load_index_sync("faq"))
    assert [tool.metadata.name for tool in spec.to_tool_list()] == ["query"]
    assert spec.query("password", top_k=1)[0]["id"] == "password"


def test_add_refuses_anything_but_a_list_of_strings(index):
    spec = LichenToolSpec(index)
    for bad in ("one string", ["ok", 3]):
        with pytest.raises(ValueError, match="list of strings"):
            spec.add(bad)


async def test_async_tools(tools, index):
    ids = (await tools["add"].acall(texts=["Shipping takes two days."])).raw_output
    assert (await tools["query"].acall(query="shipping time", top_k=1)).raw_output[0]["id"] == ids[0]
    assert (await tools["delete"].acall(ids=ids)).raw_output == 1
