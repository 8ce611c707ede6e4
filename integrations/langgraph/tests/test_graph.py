"""The store inside a real LangGraph graph: what one thread saves, another thread (and a
later process) recalls; sync and async graphs."""

from __future__ import annotations

from typing import TypedDict

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph
from langgraph.runtime import Runtime
from langgraph.store.lichen import LichenStore
from lichen import Client


class State(TypedDict, total=False):
    user: str
    text: str
    answer: str


def remember_or_recall(state: State, runtime: Runtime) -> State:
    namespace = ("memories", state["user"])
    if state["text"].startswith("remember: "):
        fact = state["text"].removeprefix("remember: ")
        runtime.store.put(namespace, f"fact-{len(runtime.store.search(namespace, limit=100))}", {"text": fact})
        return {"answer": "saved"}
    hits = runtime.store.search(namespace, query=state["text"], limit=1)
    return {"answer": hits[0].value["text"] if hits else "nothing remembered"}


async def aremember_or_recall(state: State, runtime: Runtime) -> State:
    namespace = ("memories", state["user"])
    if state["text"].startswith("remember: "):
        await runtime.store.aput(namespace, "fact", {"text": state["text"].removeprefix("remember: ")})
        return {"answer": "saved"}
    hits = await runtime.store.asearch(namespace, query=state["text"], limit=1)
    return {"answer": hits[0].value["text"] if hits else "nothing remembered"}


def build(node, store):
    builder = StateGraph(State)
    builder.add_node("memory", node)
    builder.add_edge(START, "memory")
    return builder.compile(store=store, checkpointer=InMemorySaver())


def thread(name: str) -> dict:
    return {"configurable": {"thread_id": name}}


def test_a_fact_saved_in_one_thread_is_recalled_in_another_and_after_a_restart(client, lichen_home):
    store = LichenStore.open(client, "graph-memory", index={"fields": ["text"]})
    graph = build(remember_or_recall, store)
    graph.invoke({"user": "ann", "text": "remember: allergic to peanuts"}, thread("monday"))
    graph.invoke({"user": "ann", "text": "remember: has a dog called Biscuit"}, thread("monday"))
    assert graph.invoke({"user": "ann", "text": "what food allergy?"}, thread("tuesday"))["answer"] == "allergic to peanuts"
    assert graph.invoke({"user": "ben", "text": "what food allergy?"}, thread("tuesday"))["answer"] == "nothing remembered"
    store.push()

    restarted = build(remember_or_recall, LichenStore.open(Client(home=lichen_home), "graph-memory", index={"fields": ["text"]}))
    assert restarted.invoke({"user": "ann", "text": "pets?"}, thread("friday"))["answer"] == "has a dog called Biscuit"


async def test_an_async_graph_uses_the_async_faces(client):
    store = await LichenStore.aopen(client, "graph-memory", index={"fields": ["text"]})
    graph = build(aremember_or_recall, store)
    await graph.ainvoke({"user": "ann", "text": "remember: works night shifts"}, thread("1"))
    result = await graph.ainvoke({"user": "ann", "text": "when does she work?"}, thread("2"))
    assert result["answer"] == "works night shifts"
