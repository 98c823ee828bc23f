"""The OpenAPI document: security schemes and the problem+json answers every operation can give.

Litestar documents only its own 400 (as ``application/json``); :func:`document_problems`
replaces that with the problem format of :mod:`api.rest.errors` and adds the statuses the
guards, limiter and error mapping produce, so clients and schemathesis see what is sent.
"""

from __future__ import annotations

from http import HTTPStatus

from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import RedocRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import (
    Components,
    OpenAPI,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Reference,
    Schema,
    SecurityScheme,
)

from api.rest.auth import is_open
from api.rest.errors import PROBLEM_JSON

__all__ = ["document_problems", "openapi_config"]

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
