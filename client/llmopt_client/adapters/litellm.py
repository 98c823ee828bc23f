"""LiteLLM's ``completion`` and ``acompletion``, routed and reported by the optimizer.

``completion(llmopt, task=..., model=..., messages=...)`` calls ``litellm.completion`` with
the route's model and params (rate limit, response cache and prompt-caching flags applied) and
reports the call with tokens, latency, time to first chunk (streams), errors and LiteLLM's own
cost (``response._hidden_params["response_cost"]``). ``litellm`` is imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from llmopt_client.adapters.calls import (
    AsyncMeteredStream,
    CallMeter,
    MeteredStream,
    prepare,
    request_cache_key,
)
from llmopt_client.client import LlmoptClient
from llmopt_client.routing import Route

__all__ = ["acompletion", "completion"]


def _litellm() -> Any:
    return importlib.import_module("litellm")


def _provider(route: Route, model: str) -> str:
    if route.provider:
        return route.provider
    return model.split("/", 1)[0] if "/" in model else "openai"


def _cost(response: Any) -> float | None:
    hidden = getattr(response, "_hidden_params", None) or {}
    cost = hidden.get("response_cost") if isinstance(hidden, dict) else None
    return float(cost) if isinstance(cost, int | float) else None


def _cached(response_type: Any, raw: bytes) -> Any:
    return response_type.model_validate_json(raw)


def completion(
    llmopt: LlmoptClient, *, task: str = "default", request_id: str | None = None, **kwargs: Any
) -> Any:
    """``litellm.completion`` routed for ``task`` (see the module docstring)."""
    litellm = _litellm()
    route = llmopt.route(task, request_id)
    provider = _provider(route, str(route.model or kwargs.get("model", "")))
    request = prepare(llmopt, route, kwargs, provider)
    bucket = llmopt.rate_limiter(route)
    if bucket is not None:
        bucket.acquire()
    meter = CallMeter(llmopt, route, str(request.get("model")), provider)
    key = request_cache_key(route, request)
    if key is not None and (hit := llmopt.cache.get(key)) is not None:
        meter.cache_hit()
        return _cached(litellm.ModelResponse, hit)
    try:
        response = litellm.completion(**request)
    except Exception as exc:
        meter.failed(exc)
        raise
    if request.get("stream"):
        return MeteredStream(response, meter)
    meter.ok(response, cost_usd=_cost(response))
    if key is not None and route.config.cache is not None:
        llmopt.cache.set(key, response.model_dump_json().encode(), route.config.cache.ttl_s)
    return response


async def acompletion(
    llmopt: LlmoptClient, *, task: str = "default", request_id: str | None = None, **kwargs: Any
) -> Any:
    """``litellm.acompletion`` routed for ``task``."""
    litellm = _litellm()
    route = llmopt.route(task, request_id)
    provider = _provider(route, str(route.model or kwargs.get("model", "")))
    request = prepare(llmopt, route, kwargs, provider)
    bucket = llmopt.rate_limiter(route)
    if bucket is not None:
        await bucket.acquire_async()
    meter = CallMeter(llmopt, route, str(request.get("model")), provider)
    key = request_cache_key(route, request)
    if key is not None and (hit := llmopt.cache.get(key)) is not None:
        meter.cache_hit()
        return _cached(litellm.ModelResponse, hit)
    try:
        response = await litellm.acompletion(**request)
    except Exception as exc:
        meter.failed(exc)
        raise
    if request.get("stream"):
        return AsyncMeteredStream(response, meter)
    meter.ok(response, cost_usd=_cost(response))
    if key is not None and route.config.cache is not None:
        llmopt.cache.set(key, response.model_dump_json().encode(), route.config.cache.ttl_s)
    return response
