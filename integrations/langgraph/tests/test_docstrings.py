"""The LichenStore docstring is a user guide: its snippets run, in order, as written."""

from __future__ import annotations

import re
import textwrap

from langgraph.store.lichen import LichenStore


def snippets(doc: str) -> list[str]:
    blocks = re.findall(r"::\n\n((?:[ ]{8}.*\n|\n)+)", doc)
    return [textwrap.dedent(block) for block in blocks]


def test_every_docstring_snippet_runs(lichen_home):
    blocks = snippets(LichenStore.__doc__)
    assert len(blocks) == 6
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "LichenStore docstring", "exec"), namespace)
    store = namespace["store"]
    assert store.get(("memories", "user-1"), "food") is None  # the guide deletes what it put
    assert store.session.version == 1  # and pushes
