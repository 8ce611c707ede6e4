"""The folder-sync recipe runs as a user would run it (a fresh process, offline, an empty
embedded store) and does what it says: a first sync adds every file, the query answers
by file with sections in order, an edit re-chunks one file and a deletion removes
another, the answer changes with the edit, and a third sync changes nothing."""

from __future__ import annotations


def test_folder_docs_sync_follows_the_folder(run_recipe):
    out = run_recipe("folder_docs_sync.py")
    lines = out.splitlines()
    assert lines[:5] == [
        "+ handbook/account-security.md (5 chunks)", "+ handbook/billing.md (6 chunks)",
        "+ handbook/returns.md (5 chunks)", "+ handbook/shipping.md (5 chunks)",
        "first sync: 4 files added, 21 chunks",
    ]
    first, second = [i for i, line in enumerate(lines) if line.startswith("Q")]
    assert lines[first + 1].split()[0] == "handbook/billing.md"  # one result per file, best first
    sections = [line.split()[0] for line in lines[first + 2 : first + 4]]
    assert sections == ["#3", "#4"]  # the file's matching sections, in file order
    first_answer = next(line for line in lines[first:] if line.startswith("  answer:"))
    assert "answer: Card refunds take 3-5 business days" in first_answer
    assert lines[second - 3 : second] == [
        "~ handbook/billing.md (6 chunks)", "- handbook/shipping.md",
        "second sync: 1 changed, 1 deleted, 2 unchanged; 6 chunks embedded, 5 removed",
    ]
    answer = next(line for line in lines[second:] if line.startswith("  answer:"))
    assert answer == "  answer: Card refunds now take 1-2 business days to appear on the statement after we issue them."
    assert lines[-1] == "third sync: 0 changes; index version 2"  # nothing pushed the third time
    assert run_recipe("folder_docs_sync.py") == out  # the same on every run
