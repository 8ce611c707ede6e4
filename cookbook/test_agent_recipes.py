"""The agent-framework recipes (LangGraph, Pipecat) run as a user would run them
(``run_recipe`` from ``conftest.py``) and show what they promise."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from lichen import Client, DocumentInfo

HERE = Path(__file__).parent


def test_langgraph_agent_recalls_in_a_new_thread_what_an_earlier_thread_saved(run_recipe):
    lines = run_recipe("langgraph_memory_agent.py").splitlines()
    assert lines[0] == "[store] 'agent-memory' opened with 0 memories for customer-17"
    saved = [line.strip() for line in lines if "model called save_memory" in line]
    assert saved == [
        "model called save_memory({'fact': 'Allergic to peanuts'})",
        "model called save_memory({'fact': 'Deliveries go to the office, not home'})",
    ]
    tuesday = lines[lines.index("[tuesday] customer: Can you suggest a snack to add to this week's order?") :]
    # A new thread: no Monday messages in its history, yet the memories reach the prompt,
    # the allergy first.
    assert tuesday[1].split()[0] == "recalled" and tuesday[1].endswith("Allergic to peanuts")
    prompt = next(line for line in tuesday if line.strip().startswith("system prompt:"))
    assert "- Allergic to peanuts | - Deliveries go to the office, not home" in prompt
    assert "[tuesday] thread holds 2 messages" in tuesday
    assert lines[-1] == "[store] pushed 2 memories (version 1)"

    # The next process resumes the pushed memories instead of learning them again.
    again = run_recipe("langgraph_memory_agent.py").splitlines()
    assert again[0] == "[store] 'agent-memory' opened with 2 memories for customer-17"
    assert not any(line.startswith("[monday]") for line in again)
    assert again[1:-1] == tuesday[:-1] and again[-1] == "[store] pushed 2 memories (version 2)"


def test_pipecat_voice_agent_injects_session_and_faq_context_and_resumes_the_call(run_recipe):
    out = run_recipe("pipecat_voice_agent.py")
    lines = out.splitlines()
    assert lines[0] == "[voice-call-7] session opened with 0 earlier turns"
    first = lines.index("  customer: Hi, I was billed twice for my annual renewal this morning.")
    assert lines[first + 1].split()[:2] == ["[support-faqs", "faq-double-charge"]  # no earlier turns yet
    money = lines.index("  customer: How long until I get the money back?")
    context = [line.split()[:2] for line in lines[money + 1 :] if line.startswith("    [")][:3]
    assert [c[0] for c in context[:2]] == ["[session", "[session"]
    assert {c[1] for c in context[:2]} <= {"turn-1", "turn-2", "turn-3", "turn-4"}  # earlier turns only
    assert context[2] == ["[support-faqs", "faq-refund-time"]
    # The LLM stand-in answers from the context it was given, and the reply is a turn too.
    assert lines[money + 5] == (
        "  agent: The refund goes back to your card within 3 to 5 business days."
    )
    # Every final transcript matched the interim one before it: the query was ready.
    prepared = [line for line in lines if line.startswith("    (lichen context in ")]
    assert len(prepared) == 4 and all(line.endswith("query prepared while speaking: exact)") for line in prepared)
    assert "[voice-call-7] pushed 6 turns (version 1)" in lines  # 3 customer + 3 agent turns
    callback = lines[lines.index("[voice-call-7] session opened with 6 earlier turns") :]
    recalled = [line.split()[1] for line in callback if line.startswith("    [session ")]
    assert recalled and set(recalled) <= {f"turn-{n}" for n in range(1, 7)}  # from the first call
    assert lines[-1] == "[voice-call-7] pushed 8 turns (version 2)"
    # Calling back again resumes everything pushed so far.
    assert "[voice-call-7] session opened with 8 earlier turns" in run_recipe("pipecat_voice_agent.py")


def load_recipe(name: str, monkeypatch):
    """Import a recipe as a module (recipes import each other by file name)."""
    monkeypatch.syspath_prepend(str(HERE))
    spec = importlib.util.spec_from_file_location(name.removesuffix(".py"), HERE / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_pipecat_processor_under_pipecats_run_test(tmp_path, monkeypatch):
    from pipecat.frames.frames import LLMContextFrame
    from pipecat.processors.aggregators.llm_context import LLMContext
    from pipecat.tests.utils import run_test

    recipe = load_recipe("pipecat_voice_agent.py", monkeypatch)
    client = Client(home=tmp_path)
    await client.create_index("faqs", [DocumentInfo(id="faq-refund", text="Refunds take 3-5 business days.")])
    await client.load_index("faqs")
    session = await client.session("call")
    processor = recipe.lichen_processor(session, client, "faqs")
    context = LLMContext([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "I was billed twice."}])

    down, _ = await run_test(processor, frames_to_send=[LLMContextFrame(context)], expected_down_frames=[LLMContextFrame])
    messages = down[0].context.get_messages()
    assert [m["role"] for m in messages] == ["system", "system", "user"]  # context just before the user's turn
    assert messages[1]["content"].splitlines()[1].startswith("[faqs faq-refund ")
    assert [doc.text for doc in await session.get_docs()] == ["customer: I was billed twice."]

    # Next turn: the agent replied, the customer spoke again. The old context message is
    # replaced, not stacked; both new turns are indexed; the session now answers too.
    context.add_messages([{"role": "assistant", "content": "Sorry about that."}, {"role": "user", "content": "When is my refund?"}])
    down, _ = await run_test(processor, frames_to_send=[LLMContextFrame(context)], expected_down_frames=[LLMContextFrame])
    messages = down[0].context.get_messages()
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "system", "user"]
    assert "[session turn-1 " in messages[3]["content"]
    assert [doc.id for doc in await session.get_docs()] == ["turn-1", "turn-2", "turn-3"]
    assert (await session.get_docs(["turn-2"]))[0].metadata == {"speaker": "agent", "turn": 2}
