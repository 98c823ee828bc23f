"""The OpenAPI document: security schemes and the problem+json answers every operation can give.

Litestar documents only its own 400 (as ``application/json``); :func:`document_problems`
replaces that with the problem format of :mod:`api.rest.errors` and adds the statuses the
guards, limiter and error mapping produce, so clients and schemathesis see what is sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from http import HTTPStatus

import msgspec
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import RedocRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import (
    Components,
    Link,
    OpenAPI,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Reference,
    RequestBody,
    Schema,
    SecurityScheme,
)

from api.rest.auth import is_open
from api.rest.errors import PROBLEM_JSON
from api.service.integration_shapes import IntegrationShape
from core.events import Feedback, LlmCall

__all__ = [
    "document_closed_bodies",
    "document_integration_body",
    "document_links",
    "document_problems",
    "document_telemetry_body",
    "openapi_config",
]

_PROBLEM = Schema(
    type=OpenAPIType.OBJECT,
    required=["type", "title", "status", "detail"],
    properties={
        "type": Schema(type=OpenAPIType.STRING),
        "title": Schema(type=OpenAPIType.STRING),
        "status": Schema(type=OpenAPIType.INTEGER),
        "detail": Schema(type=OpenAPIType.STRING),
        "instance": Schema(type=OpenAPIType.STRING),
        "request_id": Schema(type=OpenAPIType.STRING),
        "errors": Schema(type=[OpenAPIType.ARRAY, OpenAPIType.OBJECT, OpenAPIType.NULL]),
    },
    description="RFC 9457 problem details",
)
_GUARDED = (400, 401, 403, 404, 409, 413, 429, 503, 504)
_OPEN = (400, 404, 429, 503, 504)


def openapi_config() -> OpenAPIConfig:
    """OpenAPI 3.1 at ``/schema`` (Swagger UI, ReDoc), API key and Bearer schemes."""
    return OpenAPIConfig(
        title="LLM Auto Optimizer",
        version="1.0.0",
        path="/schema",
        render_plugins=[SwaggerRenderPlugin(), RedocRenderPlugin()],
        components=Components(
            security_schemes={
                "apiKey": SecurityScheme(
                    type="apiKey", name="x-api-key", security_scheme_in="header"
                ),
                "bearer": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT"),
            }
        ),
        security=[{"apiKey": []}, {"bearer": []}],
    )


def document_problems(schema: OpenAPI) -> None:
    """Document problem+json for every error status an operation can answer (in place)."""
    components = schema.components
    if isinstance(components, list):  # pragma: no cover - Litestar builds one Components
        components = components[0]
    components.schemas = {**(components.schemas or {}), "Problem": _PROBLEM}
    ref = Reference(ref="#/components/schemas/Problem")
    for path, item in (schema.paths or {}).items():
        for method in ("get", "put", "post", "delete", "patch"):
            operation = getattr(item, method, None)
            if operation is None:
                continue
            responses = operation.responses = dict(operation.responses or {})
            for status in (_OPEN if is_open(path) else _GUARDED) + (500,):
                responses[str(status)] = OpenAPIResponse(
                    description=HTTPStatus(status).phrase,
                    content={PROBLEM_JSON: OpenAPIMediaType(schema=ref)},
                )
            if is_open(path):
                operation.security = []


# (method, path, status) -> links to the operations whose parameters its answer supplies, so
# clients and stateful testers (schemathesis) can follow a created or listed resource.
_LINKS: dict[tuple[str, str, str], dict[str, tuple[str, str, dict[str, str]]]] = {
    ("post", "/api/v1/integrations", "201"): {
        name: (
            method,
            "/api/v1/integrations/{integration_id}" + tail,
            {"integration_id": "$response.body#/id"},
        )
        for name, method, tail in (
            ("GetIntegration", "get", ""),
            ("UpdateIntegration", "patch", ""),
            ("DeleteIntegration", "delete", ""),
            ("TestIntegration", "post", "/test"),
        )
    },
    ("get", "/api/v1/integrations", "200"): {
        "GetFirstIntegration": (
            "get",
            "/api/v1/integrations/{integration_id}",
            {"integration_id": "$response.body#/0/id"},
        )
    },
    ("get", "/api/v1/optimize/recommendations", "200"): {
        name: (
            method,
            "/api/v1/optimize/recommendations/{decision_id}" + tail,
            {"decision_id": "$response.body#/items/0/id"},
        )
        for name, method, tail in (
            ("GetRecommendation", "get", ""),
            ("ApproveRecommendation", "post", "/approve"),
            ("RejectRecommendation", "post", "/reject"),
            ("RollBackRecommendation", "post", "/rollback"),
        )
    },
    ("post", "/api/v1/optimize/recommendations/{decision_id}/rollback", "200"): {
        "GetDeployment": (
            "get",
            "/api/v1/deployments/{deployment_id}",
            {"deployment_id": "$response.body#/id"},
        )
    },
    ("get", "/api/v1/deployments", "200"): {
        "GetFirstDeployment": (
            "get",
            "/api/v1/deployments/{deployment_id}",
            {"deployment_id": "$response.body#/items/0/id"},
        )
    },
    ("put", "/api/v1/config/{app}", "200"): {
        "GetVersion": (
            "get",
            "/api/v1/config/{app}/versions/{version}",
            {"app": "$request.path.app", "version": "$response.body#/version"},
        )
    },
    ("post", "/api/v1/admin/keys", "201"): {
        "RevokeKey": (
            "delete",
            "/api/v1/admin/keys/{key_id}",
            {"key_id": "$response.body#/info/id"},
        )
    },
}


def document_links(schema: OpenAPI) -> None:
    """Add the links of :data:`_LINKS` to the answers that supply them (in place)."""
    paths = schema.paths or {}
    for (method, path, status), links in _LINKS.items():
        source = getattr(paths[path], method)
        response = source.responses[status]
        response.links = {
            name: Link(
                operation_id=getattr(paths[target], target_method).operation_id,
                parameters=dict(parameters),
            )
            for name, (target_method, target, parameters) in links.items()
        }


def document_telemetry_body(schema: OpenAPI, max_events: int) -> None:
    """The telemetry batch's body (the handler reads it raw): events as JSON or NDJSON."""
    refs, events = msgspec.json.schema_components(
        (LlmCall, Feedback), ref_template="#/components/schemas/{name}"
    )
    components = schema.components
    if isinstance(components, list):  # pragma: no cover - Litestar builds one Components
        components = components[0]
    components.schemas = {
        **(components.schemas or {}),
        **events,  # JSON Schema dicts, serialized as they are
    }
    batch = Schema(
        type=OpenAPIType.ARRAY,
        min_items=1,
        max_items=max_events,
        items=Schema(one_of=[Reference(ref=r["$ref"]) for r in refs]),
        description="Events of the contract; each is validated on its own (invalid ones go to "
        "the DLQ and are listed in the answer)",
    )
    operation = (schema.paths or {})["/api/v1/telemetry"].post
    assert operation is not None  # the telemetry controller's route
    operation.request_body = RequestBody(
        required=True,
        content={
            "application/json": OpenAPIMediaType(schema=batch),
            "application/x-ndjson": OpenAPIMediaType(
                schema=Schema(type=OpenAPIType.STRING, description="one JSON event per line")
            ),
        },
    )


def _structs(base: type[msgspec.Struct]) -> Iterator[type[msgspec.Struct]]:
    for sub in base.__subclasses__():
        yield sub
        yield from _structs(sub)


def document_closed_bodies(schema: OpenAPI) -> None:
    """``additionalProperties: false`` on the bodies whose struct refuses unknown fields.

    Litestar leaves it out; the decoder answers 400 to an unknown field, so the schema says so.
    Only the components of this project's structs (``api``, ``core``, ``storage``) are touched.
    """
    components = schema.components
    if isinstance(components, list):  # pragma: no cover - Litestar builds one Components
        components = components[0]
    shown = components.schemas or {}
    for struct in _structs(msgspec.Struct):
        if struct.__module__.split(".")[0] not in ("api", "core", "storage"):
            continue
        found = shown.get(struct.__name__)
        if isinstance(found, Schema) and struct.__struct_config__.forbid_unknown_fields:
            found.additional_properties = False


def document_integration_body(schema: OpenAPI) -> None:
    """``POST /api/v1/integrations`` takes one of the per-kind shapes the service checks."""
    refs, shapes = msgspec.json.schema_components(
        (IntegrationShape,), ref_template="#/components/schemas/{name}"
    )
    components = schema.components
    if isinstance(components, list):  # pragma: no cover - Litestar builds one Components
        components = components[0]
    components.schemas = {**(components.schemas or {}), **shapes}
    operation = (schema.paths or {})["/api/v1/integrations"].post
    assert operation is not None  # the integrations controller's route
    operation.request_body = RequestBody(
        required=True,
        content={"application/json": OpenAPIMediaType(schema=refs[0])},  # type: ignore[arg-type]
    )
