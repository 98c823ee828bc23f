"""The integration shapes (the schema of ``POST /api/v1/integrations``) and the clients agree.

Each example is checked both ways: by :func:`check_shape` (what the schema says) and by building
the client (what the integration accepts); they must give the same verdict. The OpenAPI
document describes the body with the shapes, and closes every body that refuses unknown fields.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from litestar.serialization import encode_json

from api.rest.app import create_app
from api.service.integration_shapes import check_shape
from api.service.integrations import build_client
from core.errors import ValidationError
from tests.unit.api.rest_support import rest_settings

JIRA = {"base_url": "https://acme.atlassian.net", "email": "ops@acme.io", "project": "OPS"}
CASES: list[tuple[str, str, dict[str, Any], bool]] = [
    ("slack", "https://hooks.slack.com/services/T0/B0/x", {}, True),
    ("slack", "http://127.0.0.1:46915/hooks/T0/B0/x", {}, True),
    ("slack", "http://localhost/hook", {}, True),
    ("slack", "http://example.com/hook", {}, False),  # http only to the loopback host
    ("slack", "https://hooks.slack.com:70000/x", {}, False),  # port out of range
    ("slack", "not a url", {}, False),
    ("jira", "token", JIRA, True),
    ("jira", "token", {**JIRA, "project": "ops"}, False),
    ("jira", "token", {**JIRA, "email": ""}, False),
    ("jira", "token", {k: v for k, v in JIRA.items() if k != "base_url"}, False),
    ("jira", "token", {**JIRA, "base_url": "http://acme.atlassian.net"}, False),
    ("jira", "", JIRA, False),
    ("github", "ghp_x", {"repo": "acme/shop"}, True),
    ("github", "ghp_x", {"repo": "acme/shop", "base_url": "https://ghe.acme.io/api/v3"}, True),
    ("github", "ghp_x", {"repo": "acme"}, False),
    ("github", "ghp_x", {}, False),
    ("anthropic", "sk-ant", {}, True),
    ("anthropic", "sk-ant", {"model": "claude-sonnet-4-5"}, True),
    ("anthropic", "sk-ant", {"base_url": "ftp://x"}, False),
    ("anthropic", "", {}, False),
    ("anthropic", "sk-\u00e9\u00e8", {}, False),  # not ASCII: cannot be an HTTP header
    ("anthropic", " sk-ant", {}, False),
    ("github", "ghp_\u2603", {"repo": "acme/shop"}, False),
    ("jira", "t\u00f6ken", JIRA, True),  # sent base64-encoded inside Basic auth
]


def _client_accepts(kind: str, secret: str, config: dict[str, Any]) -> bool:
    if not secret:
        return False  # the service refuses an empty secret before building the client
    try:
        build_client(kind, secret, config)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize(("kind", "secret", "config", "valid"), CASES)
def test_the_shape_and_the_client_give_the_same_verdict(
    kind: str, secret: str, config: dict[str, Any], valid: bool
) -> None:
    assert _client_accepts(kind, secret, config) is valid
    if valid:
        check_shape(name="ops-1", kind=kind, secret=secret, config=config, enabled=True)
    else:
        with pytest.raises(ValidationError, match=f"invalid {kind} integration"):
            check_shape(name="ops-1", kind=kind, secret=secret, config=config, enabled=True)


def test_a_bad_name_or_unknown_field_is_refused() -> None:
    with pytest.raises(ValidationError, match="name"):
        check_shape(name="a b", kind="anthropic", secret="k", config={}, enabled=True)
    with pytest.raises(ValidationError, match=r"Invalid value .nope. - at `\$.kind`"):
        check_shape(name="a", kind="nope", secret="k", config={}, enabled=True)


def test_the_openapi_document_says_what_the_validation_does() -> None:
    schema = json.loads(
        encode_json(create_app(rest_settings("sqlite://")).openapi_schema.to_schema())
    )
    shapes = schema["components"]["schemas"]
    body = schema["paths"]["/api/v1/integrations"]["post"]["requestBody"]["content"]
    union = body["application/json"]["schema"]
    assert union["discriminator"]["propertyName"] == "kind"
    assert set(union["discriminator"]["mapping"]) == {"slack", "jira", "github", "anthropic"}
    assert shapes["JiraShape"]["required"] == ["kind", "name", "secret", "config"]
    for closed in ("ActionRequest", "AnalyzeRequest", "IntegrationPatch", "SlackShape"):
        assert shapes[closed]["additionalProperties"] is False, closed
    assert shapes["IntegrationPatch"]["properties"]["secret"]["minLength"] == 1
