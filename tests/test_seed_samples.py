"""Every code sample of the seed spec runs against Lichen (embedded store).

The samples live verbatim in ``tests/seed_samples/``; see its README for the two lines
that differ from the spec.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import lichen
from lichen import Client, DocumentInfo

SAMPLES = Path(__file__).parent / "seed_samples"

FAQS = [
    DocumentInfo(id="faq-double-charge", text="If you were charged twice, the duplicate charge is refunded automatically within 5 days."),
    DocumentInfo(id="faq-password", text="To reset your password, use the 'Forgot password' link on the sign-in page."),
    DocumentInfo(id="faq-shipping", text="Standard shipping takes 3 to 7 business days."),
]


def run_program(name: str, env_extra: dict[str, str] | None = None) -> str:
    env = {**os.environ, **(env_extra or {})}
    completed = subprocess.run(
        [sys.executable, str(SAMPLES / name)], capture_output=True, text=True, env=env, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


async def run_fragment(name: str, namespace: dict) -> None:
    source = (SAMPLES / name).read_text()
    code = compile(source, name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(code, namespace)
    if result is not None:
        await result


def seed_support_faqs() -> None:
    Client().create_index_sync("support-faqs", FAQS)


async def test_create_or_resume_starts_empty_then_resumes_pushed_docs(capsys):
    assert run_program("sample_1_create_or_resume.py").strip() == "0 existing docs loaded"
    namespace = {"client": Client(), "DocumentInfo": lichen.DocumentInfo, "QueryOptions": lichen.QueryOptions}
    await run_fragment("sample_4_extend.py", namespace)
    assert sorted(hit.id for hit in namespace["results"].docs) == ["follow-up-1", "follow-up-2"]
    assert run_program("sample_1_create_or_resume.py").strip() == "2 existing docs loaded"


async def test_mutate_query_and_persist_fragments(capsys):
    namespace = {"client": Client(), "DocumentInfo": lichen.DocumentInfo, "QueryOptions": lichen.QueryOptions}
    await run_fragment("sample_2_mutate_and_query.py", namespace)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "2 added, 0 updated (total: 2)"
    assert lines[1].startswith("turn-2 score=")  # the refund turn answers "refund timeline"
    assert len(namespace["some"]) == 2
    assert namespace["session"].doc_count == 1  # turn-1 deleted

    await run_fragment("sample_3_persist.py", namespace)
    out = capsys.readouterr().out.strip()
    assert out.startswith("Pushed 1 docs (job ") and out.endswith("status=completed")
    resumed = await Client().session("call-123")
    assert [d.id for d in await resumed.get_docs()] == ["turn-2"]


async def test_extend_twice_keeps_one_copy_per_id():
    namespace = {"client": Client(), "DocumentInfo": lichen.DocumentInfo, "QueryOptions": lichen.QueryOptions}
    await run_fragment("sample_4_extend.py", namespace)
    await run_fragment("sample_4_extend.py", namespace)
    assert (await Client().get_index("my-session-index")).doc_count == 2


def test_live_call_queries_session_and_long_term_index():
    seed_support_faqs()
    lines = run_program("sample_5_live_call.py").splitlines()
    ids = [line.split()[0] for line in lines]
    assert ids[0] == "turn-1"
    assert ids[1] == "faq-double-charge"  # the most relevant FAQ comes first
    assert set(ids) == {"turn-1", *(faq.id for faq in FAQS)}
    assert Client().get_index_sync("call-abc").doc_count == 1
