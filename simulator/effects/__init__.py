"""What each non-model override does to the calls a simulated app serves.

One small module per strategy, each applied by :class:`simulator.fleet.Fleet` to one side's
batch of calls through the application SDK's own helpers, as a user's app applies them:

- :mod:`.cache`: the ``cache`` override's exact-match response cache (the SDK's
  :func:`~llmopt_client.cache.cache_key` and :class:`~llmopt_client.cache.LruCache` on the
  simulated clock); an answer stored before the task's correct answer changed is *stale*.
- :mod:`.limits`: the provider's rate (429 ``rate_limited`` beyond it) and the ``rate_limit``
  override's client-side token buckets (the SDK's :class:`~llmopt_client.ratelimit.TokenBucket`),
  which trade those errors for queueing latency (and time out calls queued too long).
- :mod:`.batching`: the ``batching`` override's micro-batches: wait latency, a per-item slowdown
  of the batched request and the provider's batch discount.
- :mod:`.prompt`: the ``prompt`` override: provider prompt caching of the fixed prompt, and a
  trimmed template (fewer fixed tokens, and the quality it may cost).

Every effect is neutral when its override is absent, and draws no random numbers: a scenario
without these overrides is served exactly as before.
"""

from simulator.effects.batching import Batches, form_batches
from simulator.effects.cache import AnswerCache, CacheOutcome, answer_version
from simulator.effects.limits import Paced, RateLimits
from simulator.effects.prompt import PromptEffect, prompt_effect

__all__ = [
    "AnswerCache",
    "Batches",
    "CacheOutcome",
    "Paced",
    "PromptEffect",
    "RateLimits",
    "answer_version",
    "form_batches",
    "prompt_effect",
]
