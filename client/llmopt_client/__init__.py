"""The LLM Auto Optimizer's application SDK.

An application holds one :class:`LlmoptClient`: it follows the app's active config in the
background (fail static), routes each call (``client.route(task, request_id)``: model,
provider, overrides, variant, config version; the canary split the optimizer's judge assumes),
applies the overrides (:mod:`.cache`, :mod:`.ratelimit`, :mod:`.batching`, prompt caching),
reports each call as telemetry (REST events, or OpenTelemetry GenAI spans with
:class:`llmopt_client.otel.OtelReporter`), and reports feedback and shadow scores. Adapters
wrap the OpenAI SDK (:mod:`llmopt_client.adapters.openai`) and LiteLLM
(:mod:`llmopt_client.adapters.litellm`).
"""

from llmopt_client.batching import Batcher
from llmopt_client.cache import LruCache, RedisCache, ResponseCache, cache_key
from llmopt_client.client import LlmoptClient
from llmopt_client.config import (
    AppConfig,
    BatchingConfig,
    CacheConfig,
    CanaryConfig,
    PromptConfig,
    RateLimitConfig,
    ShadowConfig,
    TaskConfig,
    apply_overrides,
    decode_config,
)
from llmopt_client.ratelimit import TokenBucket
from llmopt_client.routing import Route, RoutingTable
from llmopt_client.split import bucket, serves_canary
from llmopt_client.telemetry import (
    CallRecord,
    ListReporter,
    Reporter,
    RestReporter,
    call_event,
    feedback_event,
)
from llmopt_client.watcher import ConfigStats, ConfigWatcher

__all__ = [
    "AppConfig",
    "Batcher",
    "BatchingConfig",
    "CacheConfig",
    "CallRecord",
    "CanaryConfig",
    "ConfigStats",
    "ConfigWatcher",
    "ListReporter",
    "LlmoptClient",
    "LruCache",
    "PromptConfig",
    "RateLimitConfig",
    "RedisCache",
    "Reporter",
    "ResponseCache",
    "RestReporter",
    "Route",
    "RoutingTable",
    "ShadowConfig",
    "TaskConfig",
    "TokenBucket",
    "apply_overrides",
    "bucket",
    "cache_key",
    "call_event",
    "decode_config",
    "feedback_event",
    "serves_canary",
]
