"""The filter language's public names, for framework adapters and users who build filters
or check metadata before adding documents. The language itself (operators, semantics,
compilation to numpy masks) lives in :mod:`lichen.engine.filters`.

* :func:`where_document_filter` turns Chroma's ``where_document`` (which the LangChain and
  LlamaIndex adapters accept) into a Lichen filter on the document text.
* :func:`compile_filter` checks and compiles a filter (``InvalidArgumentError`` naming the
  problem), e.g. to refuse a bad filter before a query runs.
* :func:`check_metadata` is the rule a document's metadata is added under: it raises
  ``InvalidArgumentError`` for what Lichen cannot store and filter by.
"""

from ._validation import check_metadata
from .engine.filters import (
    DOCUMENT_KEY,
    FIELD_OPERATORS,
    LOGICAL_OPERATORS,
    compile_filter,
    where_document_filter,
)

__all__ = ["DOCUMENT_KEY", "FIELD_OPERATORS", "LOGICAL_OPERATORS", "check_metadata", "compile_filter", "where_document_filter"]
