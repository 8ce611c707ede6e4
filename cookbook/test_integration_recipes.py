"""The LangChain and LlamaIndex recipes run as a user would run them (``run_recipe`` from
``conftest.py``) and show what they promise: the right passages, from the right source,
in the prompt."""

from __future__ import annotations

import re


def sections(out: str) -> dict[str, list[str]]:
    """Output lines grouped under the unindented line that precedes them."""
    grouped: dict[str, list[str]] = {}
    current = ""
    for line in out.splitlines():
        if line.startswith("  "):
            grouped[current].append(line.strip())
        else:
            current = line
            grouped[current] = []
    return grouped


def test_langchain_rag_chain_puts_tagged_turns_and_handbook_passages_in_the_prompt(run_recipe):
    out = run_recipe("langchain_rag_chain.py")
    parts = sections(out)
    retrieved = [tuple(row.split()[:2]) for row in parts["retrieved context:"]]
    by_source = {source: {doc_id for s, doc_id in retrieved if s == source} for source, _ in retrieved}
    assert set(by_source) == {"session", "support-handbook"}
    assert {"turn-1", "turn-5"} <= by_source["session"]  # the cracked jar; paid with PayPal
    assert {"returns#damaged-or-faulty-items", "billing#how-long-a-refund-takes"} <= by_source["support-handbook"]

    prompt = parts["prompt sent to the model:"]
    assert prompt[0].startswith("system> ")
    context = [line.removeprefix("human> ") for line in prompt if line.startswith("human> [")]
    # Every retrieved passage reaches the prompt, in order, under its own source tag:
    # conversation turns as [session ...], handbook sections as [support-handbook ...].
    assert [tuple(line[1:].split("]")[0].split()) for line in context] == retrieved
    for line in context:
        text = line.split("] ", 1)[1]
        is_turn = text.startswith(("Customer:", "Agent:"))
        assert is_turn == line.startswith("[session "), line
    assert "[session turn-1] Customer: Hi, my order 4821 arrived yesterday" in out
    assert "[support-handbook billing#how-long-a-refund-takes] How long a refund takes." in out
    assert "human> Question: Do I have to send the damaged blender back" in out

    answer = next(line for line in out.splitlines() if line.startswith("answer: "))
    cited = set(re.findall(r"\[(session|support-handbook) ([^\]]+)\]", answer))
    assert cited and cited <= set(retrieved)  # the answer cites only passages it was given
    assert out.splitlines()[-1] == "chat-4821 now holds 7 turns"

    # Running again reuses the stored knowledge base and gives the same result.
    assert run_recipe("langchain_rag_chain.py") == out


def test_llamaindex_query_engine_respects_filters_and_persists_through_lichen(run_recipe):
    out = run_recipe("llamaindex_query_engine.py")
    lines = out.splitlines()
    pushed = re.fullmatch(r"ingested handbook/ and pushed 'handbook-llamaindex': (\d+) nodes \(version 1\)", lines[0])
    assert pushed, lines[0]
    node_count = int(pushed.group(1))
    assert lines[1] == f"stored in Lichen: handbook-llamaindex docs={node_count} model=lichen-minilm dimension=384"
    per_topic = dict(pair.split("=") for pair in lines[2].removeprefix("  nodes per topic: ").split(", "))
    assert set(per_topic) == {"account-security", "billing", "returns", "shipping"}
    assert sum(map(int, per_topic.values())) == node_count

    parts = sections(out)
    question = "How long does a refund take?"
    unfiltered = [row.split() for row in parts[f"unfiltered retrieval: {question}"]]
    filtered = [row.split() for row in parts[f"query engine, topic == 'billing': {question}"]]
    assert len(unfiltered) == 4 and unfiltered[0][0] == "returns.md"  # other topics compete...
    assert {"returns.md", "billing.md"} <= {row[0] for row in unfiltered}
    assert len(filtered) == 2 and {row[0] for row in filtered} == {"billing.md"}  # ...until filtered out
    scores = [float(row[1]) for row in filtered]
    assert scores == sorted(scores, reverse=True)
    assert any("PayPal refunds arrive within 24 hours" in " ".join(row) for row in filtered)

    # MockLLM echoes its prompt: only billing context reached the "LLM".
    echoed = parts["response (MockLLM echoes the prompt, showing the context it was given):"]
    topics = [line.removeprefix("| topic: ") for line in echoed if line.startswith("| topic: ")]
    assert topics == ["billing", "billing"]
    assert f"| Query: {question}" in echoed

    # The next run resumes the pushed index from Lichen instead of ingesting again.
    again = run_recipe("llamaindex_query_engine.py").splitlines()
    assert again[0] == f"resumed 'handbook-llamaindex' from Lichen: {node_count} nodes, nothing re-embedded"
    assert again[1:] == lines[1:]
