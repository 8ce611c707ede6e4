"""The machine-readable description of the protocol: an OpenAPI 3.1 document, served at
``GET /v1/openapi.json`` (no credentials) and kept equal to ``docs/protocol.md`` by a test
(``tests/test_live_server.py``), which also checks it against the app's real routes.

Written out here rather than generated from the handlers: the handlers stream bodies
and read headers by hand (what a generator cannot see), and the prose of
``docs/protocol.md`` is the reference this mirrors. The JSON bodies' schemas *are*
generated, from the pydantic models of :mod:`lichen.protocol` both ends use.
"""

from __future__ import annotations

from typing import Any

from ..protocol import (
    FEATURE_CHANGES,
    FEATURE_WATCH,
    HEADER_BASE_VERSION,
    HEADER_CONTENT,
    HEADER_CREATED_AT,
    HEADER_DOC_COUNT,
    HEADER_JOB_ID,
    HEADER_UPDATED_AT,
    HEADER_VERSION,
    MAX_WAIT_S,
    PROTOCOL_VERSION,
    AddDocsResultModel,
    ChangesModel,
    DeleteDocsRequest,
    DeleteDocsResultModel,
    DeleteIndexResultModel,
    DocsModel,
    ErrorResponse,
    HealthModel,
    IndexInfoModel,
    IndexListModel,
    JobModel,
    ProjectModel,
    PushResultModel,
)

__all__ = ["FEATURES", "openapi_document"]

FEATURES = (FEATURE_WATCH, FEATURE_CHANGES)
"""What this server offers beyond the routes of every version-1 server."""

_ARTIFACT = "application/vnd.lichen.index"
_MODELS = (
    AddDocsResultModel, ChangesModel, DeleteDocsRequest, DeleteDocsResultModel, DeleteIndexResultModel, DocsModel,
    ErrorResponse, HealthModel, IndexInfoModel, IndexListModel, JobModel, ProjectModel, PushResultModel,
)


def _ref(model: type) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(model: type, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _artifact(description: str) -> dict[str, Any]:
    return {"description": description, "content": {_ARTIFACT: {"schema": {"type": "string", "format": "binary"}}}}


def _error(description: str) -> dict[str, Any]:
    return _json(ErrorResponse, description)


_INDEX_HEADERS = {
    "ETag": {"description": "the artifact's manifest digest, quoted", "schema": {"type": "string"}},
    HEADER_VERSION: {"description": "the index's version", "schema": {"type": "integer"}},
    HEADER_CREATED_AT: {"schema": {"type": "string"}},
    HEADER_UPDATED_AT: {"schema": {"type": "string"}},
    HEADER_DOC_COUNT: {"schema": {"type": "integer"}},
    HEADER_JOB_ID: {"schema": {"type": "string"}},
    HEADER_CONTENT: {
        "description": "digest of the documents (not the graph); absent when written by an older server",
        "schema": {"type": "string"},
    },
}
_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1, "maxLength": 200},
         "description": "the index name, percent-encoded as one path segment"}
_CONDITIONS = [
    {"name": "If-Match", "in": "header", "schema": {"type": "string"}, "description": 'only at this version: "3"'},
    {"name": "If-None-Match", "in": "header", "schema": {"type": "string", "enum": ["*"]},
     "description": "only if the index does not exist yet"},
]
_COMMON_ERRORS = {
    "401": _error("missing or wrong credentials"),
    "404": _error("no such index"),
    "503": _error("busy (spool, merge queue or long-polls full); nothing was done; see Retry-After"),
}


def _with_errors(responses: dict[str, Any], *extra: str) -> dict[str, Any]:
    errors = {code: body for code, body in _COMMON_ERRORS.items()}
    for code in extra:
        errors[code] = _error({
            "400": "a malformed header or parameter", "409": "a write lost to others for 30 s",
            "410": "no delta from that version: download the artifact", "412": "If-Match / If-None-Match did not hold",
            "413": "request body over max_body_bytes", "422": "an invalid upload, or over a limit",
        }[code])
    return {**responses, **errors}


def _operation(summary: str, responses: dict[str, Any], *, parameters: list[Any] | None = None,
               body: dict[str, Any] | None = None, public: bool = False) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = body
    if public:
        operation["security"] = []
    return operation


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of protocol version 1 as this server speaks it."""
    schemas: dict[str, Any] = {}
    for model in _MODELS:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    upload = {"required": True, "content": {_ARTIFACT: {"schema": {"type": "string", "format": "binary"}}}}
    paths: dict[str, Any] = {
        "/v1/project": {"get": _operation(
            "who the credentials belong to, the protocol version, limits and features",
            _with_errors({"200": _json(ProjectModel, "the project")}),
        )},
        "/v1/indexes": {"get": _operation(
            "every index of the project, sorted by name", _with_errors({"200": _json(IndexListModel, "the indexes")}),
        )},
        "/v1/indexes/{name}": {
            "get": _operation(
                "one index; with wait and If-None-Match, a long-poll that answers when the index changes",
                _with_errors({
                    "200": {**_json(IndexInfoModel, "the index (changed, for a long-poll)"), "headers": _INDEX_HEADERS},
                    "304": {"description": "a long-poll's wait ran out: the index still has that ETag",
                            "headers": _INDEX_HEADERS},
                }, "400"),
                parameters=[_NAME,
                            {"name": "wait", "in": "query", "schema": {"type": "number", "minimum": 0, "maximum": MAX_WAIT_S},
                             "description": f"seconds to wait for a change (at most {MAX_WAIT_S}; feature 'watch')"},
                            {"name": "If-None-Match", "in": "header", "schema": {"type": "string"},
                             "description": "the ETag the client has: a long-poll waits while it is current"}],
            ),
            "delete": _operation(
                "delete the index", _with_errors({"200": _json(DeleteIndexResultModel, "deleted")}, "400", "412"),
                parameters=[_NAME, _CONDITIONS[0]],
            ),
        },
        "/v1/indexes/{name}/artifact": {
            "get": _operation(
                "download the artifact",
                _with_errors({"200": {**_artifact("the artifact"), "headers": _INDEX_HEADERS},
                              "304": {"description": "the client's copy is current", "headers": _INDEX_HEADERS}}),
                parameters=[_NAME, {"name": "If-None-Match", "in": "header", "schema": {"type": "string"}}],
            ),
            "put": _operation(
                "create or replace the index with the uploaded artifact",
                _with_errors({"200": _json(PushResultModel, "replaced"), "201": _json(PushResultModel, "created")},
                             "400", "409", "412", "413", "422"),
                parameters=[_NAME, *_CONDITIONS], body=upload,
            ),
        },
        "/v1/indexes/{name}/docs": {
            "get": _operation(
                "documents by id, or all up to max_docs_per_read",
                _with_errors({"200": _json(DocsModel, "the documents, in the order asked")}, "422"),
                parameters=[_NAME,
                            {"name": "ids", "in": "query", "schema": {"type": "array", "items": {"type": "string"}},
                             "style": "form", "explode": True},
                            {"name": "include_embeddings", "in": "query", "schema": {"type": "boolean"}}],
            ),
            "post": _operation(
                "upsert the documents of the uploaded artifact (vectors included)",
                _with_errors({"200": _json(AddDocsResultModel, "merged")}, "400", "409", "412", "413", "422"),
                parameters=[_NAME, *_CONDITIONS], body=upload,
            ),
        },
        "/v1/indexes/{name}/docs/delete": {"post": _operation(
            "delete documents by id",
            _with_errors({"200": _json(DeleteDocsResultModel, "deleted")}, "400", "409", "412", "413", "422"),
            parameters=[_NAME, *_CONDITIONS],
            body={"required": True, "content": {"application/json": {"schema": _ref(DeleteDocsRequest)}}},
        )},
        "/v1/indexes/{name}/changes": {"get": _operation(
            "what changed since a version the client holds (feature 'changes'): an artifact of the documents "
            "to upsert, whose manifest's extra.lichen_changes (ChangesModel) lists the ids to delete first",
            _with_errors({"200": {**_artifact("the delta"), "headers": {
                **_INDEX_HEADERS, HEADER_BASE_VERSION: {"schema": {"type": "integer"}}}}}, "400", "410"),
            parameters=[_NAME,
                        {"name": "since", "in": "query", "required": True, "schema": {"type": "integer", "minimum": 0}},
                        {"name": "content", "in": "query", "required": True, "schema": {"type": "string"},
                         "description": "the content digest of the client's copy (Lichen-Content-Digest)"}],
        )},
        "/v1/jobs/{job_id}": {"get": _operation(
            "a write's job record", _with_errors({"200": _json(JobModel, "the job")}),
            parameters=[{"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}],
        )},
        "/v1/openapi.json": {"get": _operation(
            "this document", {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}}, public=True,
        )},
        "/healthz": {"get": _operation(
            "the process answers (liveness)", {"200": _json(HealthModel, "up")}, public=True,
        )},
        "/readyz": {"get": _operation(
            "the storage answers (readiness)",
            {"200": _json(HealthModel, "ready"), "503": _json(HealthModel, "the storage does not answer")}, public=True,
        )},
        "/metrics": {"get": _operation(
            "Prometheus metrics (text exposition format)",
            {"200": {"description": "metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}}, public=True,
        )},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Lichen server protocol",
            "version": str(PROTOCOL_VERSION),
            "description": "Protocol version 1 (docs/protocol.md). Features: " + ", ".join(FEATURES) + ".",
        },
        "servers": [{"url": "/"}],
        "security": [{"projectKey": []}],
        "components": {
            "securitySchemes": {"projectKey": {
                "type": "http", "scheme": "bearer", "bearerFormat": "<project_id>:<project_key>",
            }},
            "schemas": schemas,
        },
        "paths": paths,
    }
