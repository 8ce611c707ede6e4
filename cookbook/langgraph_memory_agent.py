"""An agent that remembers across threads: LangGraph long-term memory in Lichen.

A LangGraph agent (model node, tools, checkpointer) whose long-term memory is a
``LichenStore``. On Monday's thread the customer mentions an allergy and a delivery
preference; the model calls ``save_memory``, which writes each fact to the store under
``("memories", user_id)``. Tuesday's thread starts with an empty message history (a new
``thread_id``), yet a ``recall`` node finds the relevant facts by meaning and puts them in
the system prompt. The store is pushed at the end, so the next run of this script (a new
process) resumes the memories instead of learning them again.

The model is LangChain's ``FakeMessagesListChatModel`` with scripted replies (tool calls
included), so this runs offline; the prompts it is given are printed, which is where the
memory shows. Swap in any chat model with ``bind_tools`` for a real agent.

Run: ``python cookbook/langgraph_memory_agent.py``
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from langchain_core.language_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, ToolRuntime, tools_condition
from langgraph.runtime import Runtime
from langgraph.store.lichen import LichenStore
from lichen import Client

USER_ID = "customer-17"


@dataclass
class Context:
    user_id: str


class State(MessagesState):
    memories: list[str]


def namespace(user_id: str) -> tuple[str, ...]:
    return ("memories", user_id)


@tool
def save_memory(fact: str, runtime: ToolRuntime[Context]) -> str:
    """Remember a lasting fact about the user (preferences, constraints, circumstances)."""
    key = re.sub(r"[^a-z0-9]+", "-", fact.lower()).strip("-")[:60]
    runtime.store.put(namespace(runtime.context.user_id), key, {"text": fact})
    return f"saved: {fact}"


def recall(state: State, runtime: Runtime[Context]) -> dict:
    """Before the model runs: the user's memories most related to what they just said."""
    question = state["messages"][-1].content
    hits = runtime.store.search(namespace(runtime.context.user_id), query=question, limit=2)
    for hit in hits:
        print(f"  recalled  {hit.score:.3f}  {hit.value['text']}")
    return {"memories": [hit.value["text"] for hit in hits]}


def build_agent(model: FakeMessagesListChatModel, store: LichenStore, checkpointer: InMemorySaver):
    def agent(state: State) -> dict:
        remembered = "\n".join(f"- {fact}" for fact in state.get("memories", [])) or "- (nothing yet)"
        prompt: list[AnyMessage] = [
            SystemMessage(f"You are a grocery-delivery assistant. What you remember about this customer:\n{remembered}"),
            *state["messages"],
        ]
        if isinstance(state["messages"][-1], HumanMessage):
            print("  system prompt: " + prompt[0].content.replace("\n", " | "))
        reply = model.invoke(prompt)
        for call in reply.tool_calls:
            print(f"  model called {call['name']}({call['args']})")
        return {"messages": [reply]}

    builder = StateGraph(State, context_schema=Context)
    builder.add_node("recall", recall)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode([save_memory]))
    builder.add_edge(START, "recall")
    builder.add_edge("recall", "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile(store=store, checkpointer=checkpointer)


def save(fact: str, call_id: str) -> AIMessage:
    return AIMessage(content="", tool_calls=[{"name": "save_memory", "args": {"fact": fact}, "id": call_id}])


MONDAY = [
    ("Hi! I'm allergic to peanuts, please keep that in mind for my orders.", [
        save("Allergic to peanuts", "call-1"),
        AIMessage("Noted: I'll keep peanuts out of your orders."),
    ]),
    ("Also, deliveries should go to my office, not my home.", [
        save("Deliveries go to the office, not home", "call-2"),
        AIMessage("Got it: office delivery from now on."),
    ]),
]
TUESDAY = [
    ("Can you suggest a snack to add to this week's order?", [
        AIMessage("How about the dried-fruit mix? It is made in a nut-free kitchen."),
    ]),
]


def converse(thread_id: str, turns, store: LichenStore, checkpointer: InMemorySaver) -> None:
    replies = [message for _, script in turns for message in script]
    graph = build_agent(FakeMessagesListChatModel(responses=replies), store, checkpointer)
    config = {"configurable": {"thread_id": thread_id}}
    for text, _ in turns:
        print(f"[{thread_id}] customer: {text}")
        result = graph.invoke({"messages": [HumanMessage(text)]}, config, context=Context(user_id=USER_ID))
        print(f"[{thread_id}] assistant: {result['messages'][-1].content}")
    print(f"[{thread_id}] thread holds {len(graph.get_state(config).values['messages'])} messages")


def main() -> None:
    # Client() stores indexes under LICHEN_HOME; the memories of every user share one index.
    store = LichenStore.open(Client(), "agent-memory", index={"fields": ["text"]})
    known = store.search(namespace(USER_ID), limit=100)
    print(f"[store] 'agent-memory' opened with {len(known)} memories for {USER_ID}")
    checkpointer = InMemorySaver()  # per-thread message history (short-term, this process only)
    if not known:
        converse("monday", MONDAY, store, checkpointer)
    converse("tuesday", TUESDAY, store, checkpointer)
    result = store.push()
    print(f"[store] pushed {len(store.search(namespace(USER_ID), limit=100))} memories (version {result.version})")


if __name__ == "__main__":
    main()
