"""The LiveKit voice recipe runs as a user would run it (``run_recipe`` from
``conftest.py``) and shows what it promises: session and FAQ context per turn, the
query prepared while the customer spoke, the search tool, the call pushed and resumed.
(The Pipecat recipe's tests are in ``test_agent_recipes.py``.)"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from lichen import Client, DocumentInfo

HERE = Path(__file__).parent


def test_livekit_voice_agent_injects_session_and_faq_context_and_resumes_the_call(run_recipe):
    lines = run_recipe("livekit_voice_agent.py").splitlines()
    assert lines[0] == "[livekit-call-9] session opened with 0 earlier turns"
    first = lines.index("  customer: Hi, I was billed twice for my annual renewal this morning.")
    assert lines[first + 1].split()[:2] == ["[support-faqs", "faq-double-charge"]  # no earlier turns yet
    money = lines.index("  customer: How long until I get the money back?")
    context = [line.split()[:2] for line in lines[money + 1 : money + 4]]
    assert [c[0] for c in context[:2]] == ["[session", "[session"]
    assert {c[1] for c in context[:2]} <= {"turn-1", "turn-2", "turn-3", "turn-4"}  # earlier turns only
    assert context[2] == ["[support-faqs", "faq-refund-time"]
    # Every final transcript matched the interim one before it: the query was ready.
    prepared = [line for line in lines if line.startswith("    (lichen context in ")]
    assert len(prepared) == 4 and all(line.endswith("query prepared while speaking: exact)") for line in prepared)
    assert lines[money + 5] == "  agent: The refund goes back to your card within 3 to 5 business days."
    assert "[livekit-call-9] pushed 6 turns (version 1)" in lines  # 3 customer + 3 agent turns

    callback = lines[lines.index("[livekit-call-9] session opened with 6 earlier turns") :]
    recalled = [line.split()[1] for line in callback if line.startswith("    [session ")]
    assert recalled and set(recalled) <= {f"turn-{n}" for n in range(1, 7)}  # from the first call
    assert "    (the LLM called search_knowledge: 3 passages)" in callback  # the function tool
    assert callback[-2] == "  agent: Sorry about that: the duplicate charge is refunded automatically."
    assert lines[-1] == "[livekit-call-9] pushed 8 turns (version 2)"


def load_recipe(name: str, monkeypatch):
    """Import a recipe as a module (recipes import each other by file name)."""
    monkeypatch.syspath_prepend(str(HERE))
    spec = importlib.util.spec_from_file_location(name.removesuffix(".py"), HERE / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_livekit_recipe_agent_in_a_text_turn(tmp_path, monkeypatch):
    """The recipe's agent and stand-in LLM under LiveKit's own test helper, session.run:
    a text turn asking to look something up calls the search tool."""
    from livekit.agents import AgentSession

    recipe = load_recipe("livekit_voice_agent.py", monkeypatch)
    client = Client(home=tmp_path)
    await client.create_index("faqs", [DocumentInfo(id="faq-refund-time", text="Refunds take 3-5 business days.")])
    await client.load_index("faqs")
    lichen = recipe.lichen_context(await client.session("text-call"), client, "faqs")
    async with AgentSession(llm=recipe.ScriptedLLM()) as session:
        lichen.attach(session)
        await session.start(recipe.SupportAgent(lichen))
        result = await session.run(user_input="Please look up how long refunds take.")
        result.expect.next_event().is_function_call(name="search_knowledge")
        assert "[faqs faq-refund-time " in result.expect.next_event().is_function_call_output().event().item.output
        result.expect.next_event().is_message(role="assistant")
        result.expect.no_more_events()
    assert (await lichen.aclose()).doc_count == 2  # the text turn and the reply, pushed on close
