"""The agent-framework recipes (LangGraph, Pipecat) run as a user would run them
(``run_recipe`` from ``conftest.py``) and show what they promise."""

from __future__ import annotations


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
