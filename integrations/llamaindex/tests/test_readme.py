"""What the README says where a reader looks for it. (The snippets themselves are run,
and their stated outputs compared, by the repository's tests/test_readme.py.)"""

from __future__ import annotations

import re
from pathlib import Path

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_the_embed_model_requirement_stands_next_to_the_main_snippet():
    """A reader copying the first snippet meets LlamaIndex's OpenAI default before it:
    the prose between the ``LichenVectorStore`` heading and its first code block says to
    pass ``embed_model=`` (and why), not a section about the tests further up."""
    section = README.split("\n## LichenVectorStore\n", 1)[1]
    before_code = section.split("```python", 1)[0]
    assert "embed_model=" in before_code and "OpenAI" in before_code
    assert "LichenEmbedding()" in before_code and "load_index_from_storage" in before_code
    snippet = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert "embed_model=LichenEmbedding()" in snippet
