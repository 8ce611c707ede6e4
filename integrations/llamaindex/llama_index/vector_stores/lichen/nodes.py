"""LlamaIndex nodes to Lichen documents and back.

A node is stored as one Lichen document: its id, its text (without metadata, so Lichen's
keyword index sees the words of the text only), its embedding, and as metadata the
node's own metadata keys with their values unchanged (so they are filterable) plus
LlamaIndex's serialisation of the node from ``node_to_metadata_dict`` (``_node_content``,
``_node_type``, ``ref_doc_id`` ...), from which ``metadata_dict_to_node`` rebuilds it with
its relationships. ``_node_id`` repeats the node id as a column so that a query's
``node_ids`` can be a filter.

Nested dicts of such values are columns too, filtered by dotted path
(``MetadataFilter(key="user.tier", value="gold")``). Values Lichen cannot hold as a column
(lists of dicts, dates, NaN) still round-trip inside ``_node_content`` but cannot be
filtered on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lichen import DocumentInfo, InvalidArgumentError
from lichen.filters import check_metadata
from llama_index.core.schema import BaseNode, MetadataMode, TextNode
from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict

__all__ = ["NODE_ID_KEY", "NODE_CONTENT_KEY", "REF_DOC_ID_KEY", "node_to_document", "nodes_to_documents", "document_to_node"]

NODE_ID_KEY = "_node_id"
NODE_CONTENT_KEY = "_node_content"
REF_DOC_ID_KEY = "ref_doc_id"



def _is_column_value(key: str, value: Any, node_id: str) -> bool:
    """Whether Lichen stores ``value`` as a filterable column: the core's own rule."""
    try:
        check_metadata({key: value}, node_id)
    except InvalidArgumentError:
        return False
    return True


def node_to_document(node: BaseNode) -> DocumentInfo:
    """The Lichen document for ``node``; without an embedding Lichen embeds the text."""
    serialised = node_to_metadata_dict(node, remove_text=True, flat_metadata=False)
    metadata = {key: value for key, value in serialised.items() if _is_column_value(key, value, node.node_id)}
    metadata[NODE_ID_KEY] = node.node_id
    return DocumentInfo(
        id=node.node_id,
        text=node.get_content(metadata_mode=MetadataMode.NONE),
        metadata=metadata,
        embedding=node.embedding,
    )


def nodes_to_documents(nodes: Sequence[BaseNode]) -> list[DocumentInfo]:
    return [node_to_document(node) for node in nodes]


def document_to_node(doc_id: str, text: str, metadata: dict[str, Any] | None) -> BaseNode:
    """Rebuild the node a document was made from; a document written by anything other
    than LlamaIndex (the Lichen API, LangChain) becomes a ``TextNode`` with its id, text
    and metadata."""
    metadata = metadata or {}
    if NODE_CONTENT_KEY in metadata:
        return metadata_dict_to_node(metadata, text=text)
    return TextNode(id_=doc_id, text=text, metadata=dict(metadata))
