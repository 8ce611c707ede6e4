"""The class docstrings are user guides: every ```python snippet in them runs, in order,
as one program (top-level ``await`` included), against a fresh embedded store."""

from __future__ import annotations

import ast
import inspect
import re
import textwrap

import langchain_lichen
import pytest
from langchain_lichen import LichenContextRetriever, LichenEmbeddings, LichenRetriever, LichenVectorStore

_SNIPPET = re.compile(r"^([ \t]*)```python\n(.*?)^\1```", re.DOTALL | re.MULTILINE)


def snippets(cls: type) -> list[str]:
    doc = inspect.getdoc(cls) or ""
    return [textwrap.dedent(body) for _, body in _SNIPPET.findall(doc)]


@pytest.mark.parametrize("cls", [LichenVectorStore, LichenEmbeddings, LichenRetriever, LichenContextRetriever])
async def test_docstring_snippets_run(cls, capsys):
    blocks = snippets(cls)
    assert len(blocks) >= 3, f"{cls.__name__} docstring should be a guide with snippets"
    namespace: dict = {"__name__": f"doc_{cls.__name__}"}
    for block in blocks:
        code = compile(block, f"<{cls.__name__} docstring>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        result = eval(code, namespace)  # noqa: S307 - our own documentation
        if inspect.iscoroutine(result):
            await result


def test_public_api():
    assert set(langchain_lichen.__all__) >= {"LichenVectorStore", "LichenEmbeddings", "LichenRetriever", "LichenContextRetriever"}
