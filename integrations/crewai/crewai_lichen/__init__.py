"""CrewAI integration for Lichen: a search tool over a session or a loaded index, and a
knowledge storage backend, both embedded in process by Lichen's model."""

from .knowledge_storage import LichenKnowledgeStorage, knowledge_index_name, lichen_knowledge_storage_factory
from .search_tool import LichenSearchInput, LichenSearchTool

__all__ = [
    "LichenKnowledgeStorage",
    "LichenSearchInput",
    "LichenSearchTool",
    "knowledge_index_name",
    "lichen_knowledge_storage_factory",
]
