"""Cost of calls that did not report ``cost_usd``: settings overrides, then genai-prices.

Flat per-token prices are looked up once per (provider, model) and applied with a few
multiplications (per call or vectorised per bucket); tiered prices (which depend on each
request's size) fall back to the library's own calculation per call. Unknown models cost
``None``: callers count them as 0 and never guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

import numpy as np
from genai_prices import Usage, calc_price

from core.call_batch import F64, I64
from core.events import LlmCall
from core.settings import ModelPrice

__all__ = ["DEFAULT_PRICES", "PriceTable", "call_cost"]

_MTOK = 1_000_000.0


@dataclass(frozen=True, slots=True)
class _FlatRates:
    input: float
    output: float
    cache_read: float | None


def _flat(value: Any) -> float | None:
    if value is None:
        return 0.0
    if isinstance(value, Decimal | int | float):
        return float(value) / _MTOK
    return None  # a tiered price: not linear in tokens


@lru_cache(maxsize=4096)
def _lookup(model: str, provider: str | None) -> tuple[Any, _FlatRates | None] | None:
    try:
        found = calc_price(Usage(input_tokens=0, output_tokens=0), model, provider_id=provider)
    except LookupError:
        if provider is None:
            return None
        return _lookup(model, None)
    price = found.model_price
    rates = (_flat(price.input_mtok), _flat(price.output_mtok), _flat(price.cache_read_mtok))
    if rates[0] is None or rates[1] is None:
        return price, None
    return price, _FlatRates(rates[0], rates[1], rates[2] if price.cache_read_mtok else None)


class PriceTable:
    """Prices by model: ``processor.prices`` from settings first, then the genai-prices table."""

    def __init__(self, overrides: Mapping[str, ModelPrice] | None = None) -> None:
        self._overrides = {
            model: _FlatRates(
                p.input_per_mtok / _MTOK,
                p.output_per_mtok / _MTOK,
                None if p.cache_read_per_mtok is None else p.cache_read_per_mtok / _MTOK,
            )
            for model, p in (overrides or {}).items()
        }

    def _rates(self, model: str, provider: str | None) -> tuple[Any, _FlatRates | None] | None:
        override = self._overrides.get(model)
        return (None, override) if override is not None else _lookup(model, provider)

    def call_cost(self, call: LlmCall) -> float | None:
        """The call's cost in USD: its own ``cost_usd``, else from the table, else ``None``."""
        if call.cost_usd is not None:
            return call.cost_usd
        tokens = np.array(
            [[call.input_tokens, call.output_tokens, call.cache_read_tokens or 0]], dtype=np.int64
        )
        cost = self.tokens_cost(call.model, call.provider, tokens)
        return None if cost is None else float(cost[0])

    def tokens_cost(self, model: str, provider: str | None, tokens: I64) -> F64 | None:
        """Costs in USD of many calls of one model from their tokens, or ``None`` if unknown.

        Args:
            model: The model every row used.
            provider: Its provider, when known.
            tokens: Shape (n, 3): input, output and cache-read tokens per call.
        """
        found = self._rates(model, provider)
        if found is None:
            return None
        price, rates = found
        inputs, outputs = tokens[:, 0], tokens[:, 1]
        cached = np.minimum(tokens[:, 2], inputs)
        if rates is not None:
            cached_rate = rates.cache_read if rates.cache_read is not None else rates.input
            cost: F64 = (
                (inputs - cached) * rates.input + cached * cached_rate + outputs * rates.output
            )
            return cost
        return np.fromiter(
            (
                float(
                    price.calc_price(
                        Usage(
                            input_tokens=int(i),
                            output_tokens=int(o),
                            cache_read_tokens=int(c) or None,
                        )
                    )["total_price"]
                )
                for i, o, c in zip(inputs, outputs, cached, strict=True)
            ),
            np.float64,
            len(tokens),
        )


DEFAULT_PRICES = PriceTable()


def call_cost(call: LlmCall) -> float | None:
    """The call's cost with the default table (no settings overrides)."""
    return DEFAULT_PRICES.call_cost(call)
