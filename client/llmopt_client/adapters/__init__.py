"""Adapters for the LLM clients applications already call (OpenAI SDK, LiteLLM).

Each wraps the call: routes it (:meth:`llmopt_client.LlmoptClient.route`), applies the route's
model, params, rate limit, cache and prompt-caching flags, measures latency and time to first
token (streams), and reports tokens, errors and cost. Import the adapter module you need:
``llmopt_client.adapters.openai`` (needs ``openai``) or ``llmopt_client.adapters.litellm``.
"""

__all__: list[str] = []
