"""Cost of a call from the genai-prices table (`operators/pricing.py`)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from genai_prices import Usage, calc_price
from hypothesis import given, settings
from hypothesis import strategies as st

from core.events import LlmCall
from operators.pricing import call_cost

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def call(**changes: Any) -> LlmCall:
    fields: dict[str, Any] = {
        "event_id": "e1",
        "timestamp": T0,
        "app": "support",
        "model": "gpt-4o-mini",
        "provider": "openai",
        "latency_ms": 100.0,
        "input_tokens": 1000,
        "output_tokens": 500,
    }
    fields.update(changes)
    return LlmCall(**fields)


def test_the_library_prices_gpt_4o_mini_as_these_tests_assume() -> None:
    price = calc_price(Usage(input_tokens=0, output_tokens=0), "gpt-4o-mini", provider_id="openai")
    assert price.model_price.input_mtok == Decimal("0.15")
    assert price.model_price.output_mtok == Decimal("0.6")
    assert price.model_price.cache_read_mtok == Decimal("0.075")


def test_table_cost_of_gpt_4o_mini() -> None:
    cost = call_cost(call())
    assert cost == pytest.approx(1000 * 0.15 / 1e6 + 500 * 0.6 / 1e6, rel=1e-12, abs=0)
    assert cost == pytest.approx(0.00045, rel=1e-12, abs=0)


def test_table_cost_matches_the_library() -> None:
    for inp, out in [(0, 0), (1, 0), (0, 1), (123_456, 7_890), (10**7, 10**6)]:
        expected = calc_price(
            Usage(input_tokens=inp, output_tokens=out), "gpt-4o-mini", provider_id="openai"
        )
        cost = call_cost(call(input_tokens=inp, output_tokens=out))
        assert cost == pytest.approx(float(expected.total_price), rel=1e-12, abs=1e-18)


def test_cache_read_tokens_are_billed_at_the_cache_rate() -> None:
    cost = call_cost(call(cache_read_tokens=400))
    expected = 600 * 0.15 / 1e6 + 400 * 0.075 / 1e6 + 500 * 0.6 / 1e6
    assert cost == pytest.approx(expected, rel=1e-12, abs=0)
    library = calc_price(
        Usage(input_tokens=1000, output_tokens=500, cache_read_tokens=400),
        "gpt-4o-mini",
        provider_id="openai",
    )
    assert cost == pytest.approx(float(library.total_price), rel=1e-12, abs=0)


def test_cache_read_tokens_beyond_the_input_are_clamped() -> None:
    cost = call_cost(call(input_tokens=100, cache_read_tokens=1000, output_tokens=0))
    assert cost == pytest.approx(100 * 0.075 / 1e6, rel=1e-12, abs=0)


def test_explicit_cost_wins_over_the_table() -> None:
    assert call_cost(call(cost_usd=0.125)) == 0.125
    assert call_cost(call(cost_usd=0.0)) == 0.0
    assert call_cost(call(model="no-such-model-xyz", cost_usd=2.5)) == 2.5


@pytest.mark.parametrize("provider", [None, "openai", "no-such-provider"])
def test_unknown_model_costs_none(provider: str | None) -> None:
    assert call_cost(call(model="no-such-model-xyz", provider=provider)) is None


@pytest.mark.parametrize("provider", [None, "no-such-provider"])
def test_unknown_or_missing_provider_falls_back_to_the_model(provider: str | None) -> None:
    assert call_cost(call(provider=provider)) == pytest.approx(0.00045, rel=1e-12, abs=0)


def test_tiered_prices_use_the_library_calculation() -> None:
    # gemini-1.5-pro has a price tier above 128k prompt tokens.
    for inp in (1_000, 300_000):
        usage = Usage(input_tokens=inp, output_tokens=500)
        expected = float(calc_price(usage, "gemini-1.5-pro", provider_id="google").total_price)
        cost = call_cost(call(model="gemini-1.5-pro", provider="google", input_tokens=inp))
        assert cost == pytest.approx(expected, rel=1e-12, abs=0)


@settings(max_examples=100, deadline=None)
@given(
    st.integers(min_value=0, max_value=10**8),
    st.integers(min_value=0, max_value=10**8),
    st.integers(min_value=0, max_value=10**8),
)
def test_flat_cost_is_linear_in_tokens(inp: int, out: int, cached: int) -> None:
    cost = call_cost(call(input_tokens=inp, output_tokens=out, cache_read_tokens=cached))
    read = min(cached, inp)
    expected = (inp - read) * 0.15e-6 + read * 0.075e-6 + out * 0.6e-6
    assert cost == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_settings_prices_override_and_extend_the_table() -> None:
    from core.settings import ModelPrice
    from operators.pricing import PriceTable

    table = PriceTable(
        {
            "my-finetune": ModelPrice(input_per_mtok=1.0, output_per_mtok=2.0),
            "gpt-4o-mini": ModelPrice(
                input_per_mtok=10.0, output_per_mtok=20.0, cache_read_per_mtok=5.0
            ),
        }
    )
    assert table.call_cost(
        call(model="my-finetune", input_tokens=1_000_000, output_tokens=500_000)
    ) == pytest.approx(2.0)
    overridden = table.call_cost(call(input_tokens=1000, cache_read_tokens=400, output_tokens=100))
    assert overridden == pytest.approx((600 * 10 + 400 * 5 + 100 * 20) / 1e6)
    assert call_cost(call(model="my-finetune")) is None  # the default table does not know it
    assert table.call_cost(call(model="my-finetune", cost_usd=0.5)) == 0.5  # reported cost wins


def test_settings_prices_are_loaded_and_validated(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from core.errors import ConfigurationError
    from core.settings import ModelPrice, load_settings

    (tmp_path / "settings.toml").write_text(
        '[default.processor.prices."my-finetune"]\ninput_per_mtok = 1.5\noutput_per_mtok = 3\n'
    )
    monkeypatch.chdir(tmp_path)
    settings = load_settings(root=tmp_path)
    assert settings.processor.prices == {"my-finetune": ModelPrice(1.5, 3)}
    monkeypatch.setenv(
        "LLMOPT_PROCESSOR__PRICES", '@json {"x": {"input_per_mtok": -1, "output_per_mtok": 1}}'
    )
    with pytest.raises(ConfigurationError, match=r"processor\.prices\.x.*-1"):
        load_settings(root=tmp_path)
