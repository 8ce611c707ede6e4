"""Each recipe runs as a user would run it (a fresh process, offline, an empty embedded
store) and prints what it promises."""

from __future__ import annotations


def test_live_call_context_resumes_the_call_and_finds_the_right_faqs(run_recipe):
    out = run_recipe("live_call_context.py")
    assert "[call-42] session opened with 0 earlier turns" in out
    assert "[call-42] pushed 3 turns (version 1)" in out
    assert "[call-42] session opened with 3 earlier turns" in out  # resumed by name
    assert "[call-42] pushed 4 turns (version 2)" in out
    lines = out.splitlines()
    money_back = lines.index("  user: How long until I get the money back?")
    # One context list per turn, merged by score: the FAQ that answers comes first.
    assert lines[money_back + 1].split()[:2] == ["knowledge", "faq-refund-time"]
    turn = lines[money_back + 1 : money_back + 4]
    scores = [float(line.split()[2]) for line in turn]
    assert {line.split()[0] for line in turn} == {"knowledge", "session"} and scores == sorted(scores, reverse=True)
    first = lines.index("  user: Hi, I was billed twice for my annual renewal this morning.")
    assert lines[first + 1].split()[:2] == ["knowledge", "faq-double-charge"]
    # Running it again (the same store) is the same demo: a fresh call, resumed once.
    assert run_recipe("live_call_context.py") == out


def test_per_user_working_sets_are_isolated_and_filtered(run_recipe):
    out = run_recipe("per_user_working_set.py")
    sections = {}
    current = None
    for line in out.splitlines():
        if not line.startswith("  "):
            current = line
            sections[current] = []
        else:
            sections[current].append(line.split())
    ana = sections["user-ana: where should we eat dinner?"]
    ben = sections["user-ben: where should we eat dinner?"]
    assert {row[0] for row in ana} == {"user-ana"} and {row[0] for row in ben} == {"user-ben"}
    assert {row[2] for row in sections["user-ana, preferences only:"]} == {"[preference]"}
    assert [row[1] for row in sections["user-ana, last 24 hours only:"]] == ["n2"]
    assert {row[1] for row in sections["user-ben, recent requests or context:"]} == {"n1", "n2"}


def test_bring_your_own_embeddings_uses_the_custom_vectors(run_recipe):
    out = run_recipe("bring_your_own_embeddings.py").splitlines()
    assert out[0] == "model_id=custom dimension=256 docs=3"
    assert out[1].startswith("kb-2 score=")


def test_agent_handoff_resumes_over_a_real_server(run_recipe):
    lines = run_recipe("agent_handoff.py").splitlines()
    assert lines[0].startswith("[server] lichen serve on http://127.0.0.1:")
    assert "[triage] pushed 3 notes to 'ticket-1042' (version 1)" in lines
    assert "[specialist] resumed 'ticket-1042' with 3 notes from the triage agent" in lines
    context = [line.split()[2] for line in lines if line.startswith("[specialist]   context")]
    assert context and set(context) <= {"triage-1", "triage-2", "triage-3"}
    assert "triage-3" in context  # the note about backup codes answers "what has been tried"
    assert "[specialist] pushed 5 notes (version 2)" in lines
    assert lines[-1] == "[server] 'ticket-1042' now holds 5 notes at version 2"
