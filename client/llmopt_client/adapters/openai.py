"""The OpenAI Python SDK, sync and async, routed and reported by the optimizer.

``wrap_openai(OpenAI(), llmopt)`` (or an ``AsyncOpenAI``) returns the same client with
``chat.completions.create`` taking two more keyword arguments, ``task`` and ``request_id``:
the call goes to the route's model with its params, waits for the route's rate limit, is
answered from the response cache when the route turns it on, and is reported with tokens,
latency, time to first chunk (streams), finish reason, errors and the variant / config version.
Everything else of the client is passed through.
"""

from __future__ import annotations

from typing import Any

from openai import AsyncOpenAI, OpenAI
from openai.types.chat import ChatCompletion

from llmopt_client.adapters.calls import (
    AsyncMeteredStream,
    CallMeter,
    MeteredStream,
    prepare,
    request_cache_key,
)
from llmopt_client.client import LlmoptClient

__all__ = ["wrap_openai"]


class _Completions:
    def __init__(self, inner: Any, llmopt: LlmoptClient, provider: str) -> None:
        self._inner = inner
        self._llmopt = llmopt
        self._provider = provider

    def create(self, *, task: str = "default", request_id: str | None = None, **kwargs: Any) -> Any:
        """``chat.completions.create`` routed for ``task`` (see the module docstring)."""
        llmopt = self._llmopt
        route = llmopt.route(task, request_id)
        request = prepare(llmopt, route, kwargs, self._provider)
        bucket = llmopt.rate_limiter(route)
        if bucket is not None:
            bucket.acquire()
        meter = CallMeter(llmopt, route, str(request.get("model")), self._provider)
        key = request_cache_key(route, request)
        if key is not None and (hit := llmopt.cache.get(key)) is not None:
            meter.cache_hit()
            return ChatCompletion.model_validate_json(hit)
        try:
            response = self._inner.create(**request)
        except Exception as exc:
            meter.failed(exc)
            raise
        if request.get("stream"):
            return MeteredStream(response, meter)
        meter.ok(response)
        if key is not None and route.config.cache is not None:
            llmopt.cache.set(key, response.model_dump_json().encode(), route.config.cache.ttl_s)
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _AsyncCompletions(_Completions):
    async def create(
        self, *, task: str = "default", request_id: str | None = None, **kwargs: Any
    ) -> Any:
        """``chat.completions.create`` (async) routed for ``task``."""
        llmopt = self._llmopt
        route = llmopt.route(task, request_id)
        request = prepare(llmopt, route, kwargs, self._provider)
        bucket = llmopt.rate_limiter(route)
        if bucket is not None:
            await bucket.acquire_async()
        meter = CallMeter(llmopt, route, str(request.get("model")), self._provider)
        key = request_cache_key(route, request)
        if key is not None and (hit := llmopt.cache.get(key)) is not None:
            meter.cache_hit()
            return ChatCompletion.model_validate_json(hit)
        try:
            response = await self._inner.create(**request)
        except Exception as exc:
            meter.failed(exc)
            raise
        if request.get("stream"):
            return AsyncMeteredStream(response, meter)
        meter.ok(response)
        if key is not None and route.config.cache is not None:
            llmopt.cache.set(key, response.model_dump_json().encode(), route.config.cache.ttl_s)
        return response


class _Chat:
    def __init__(self, inner: Any, completions: _Completions) -> None:
        self._inner = inner
        self.completions = completions

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _Wrapped:
    def __init__(self, client: OpenAI | AsyncOpenAI, chat: _Chat) -> None:
        self._client = client
        self.chat = chat

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def wrap_openai(
    client: OpenAI | AsyncOpenAI, llmopt: LlmoptClient, *, provider: str = "openai"
) -> Any:
    """``client`` with its chat completions routed and reported (see the module docstring).

    Args:
        client: An ``openai.OpenAI`` or ``openai.AsyncOpenAI``.
        llmopt: The application's optimizer client.
        provider: ``gen_ai.provider.name`` to report (an OpenAI-compatible server's own name).
    """
    kind = _AsyncCompletions if isinstance(client, AsyncOpenAI) else _Completions
    completions = kind(client.chat.completions, llmopt, provider)
    return _Wrapped(client, _Chat(client.chat, completions))
