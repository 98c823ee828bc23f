"""Model prices for strategies: provider of a model, cost of a call shape, input-token rates."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from genai_prices import Usage, calc_price

from operators.pricing import PriceTable

__all__ = ["call_cost", "input_rates", "provider_of"]

_PER_TOKEN = 1_000_000  # tokens used to read a per-token rate with enough precision


@lru_cache(maxsize=1024)
def provider_of(model: str) -> str | None:
    """The provider id genai-prices knows ``model`` by (``None``: unknown model)."""
    try:
        return str(calc_price(Usage(input_tokens=0, output_tokens=0), model).provider.id)
    except LookupError:
        return None


def call_cost(
    table: PriceTable, model: str, input_tokens: float, output_tokens: float
) -> float | None:
    """USD of one call of ``model`` with these (mean) token counts; ``None``: unknown price."""
    tokens = np.array([[round(input_tokens), round(output_tokens), 0]], dtype=np.int64)
    cost = table.tokens_cost(model, provider_of(model), tokens)
    return None if cost is None else float(cost[0])


def input_rates(table: PriceTable, model: str) -> tuple[float, float] | None:
    """USD per input token uncached and read from the provider's prompt cache.

    ``None`` when the price is unknown. Without a cache-read price both rates are equal.
    """
    provider = provider_of(model)
    plain = table.tokens_cost(model, provider, np.array([[_PER_TOKEN, 0, 0]], dtype=np.int64))
    cached = table.tokens_cost(
        model, provider, np.array([[_PER_TOKEN, 0, _PER_TOKEN]], dtype=np.int64)
    )
    if plain is None or cached is None:
        return None
    return float(plain[0]) / _PER_TOKEN, float(cached[0]) / _PER_TOKEN
