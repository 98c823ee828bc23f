"""Anytime-valid bands: their error rates checked by simulation, one look every period.

Stated guarantee (``operators.sequential``, ``operators.judge``): with a look every period,
a candidate exactly at the tolerance is promoted with probability at most ``alpha``, and an
equal candidate is failed with probability at most ``alpha``. Checked here on Bernoulli scores
(two groups and paired), where the plug-in variance makes the bound asymptotic: the observed
rates must stay below ``alpha`` plus three Monte Carlo standard errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from operators.sequential import (
    Interval,
    always_valid_p,
    information_needed,
    mean_and_variance,
    radius,
    rho_for,
)

ALPHA, TOL = 0.05, 0.02
RHO = rho_for(TOL, ALPHA)
RUNS, LOOKS = 300, 150


def _slack(p: float) -> float:
    return p + 3 * math.sqrt(p * (1 - p) / RUNS)


def _two_groups(delta: float, seed: int) -> tuple[float, float]:
    """Share of rollouts promoted and failed, 60 baseline and 30 canary scores per look."""
    rng = np.random.default_rng(seed)
    promoted = failed = 0
    for _ in range(RUNS):
        xb = rng.binomial(60, 0.8, LOOKS).cumsum()
        xc = rng.binomial(30, 0.8 + delta, LOOKS).cumsum()
        for k in range(LOOKS):
            b = mean_and_variance(60 * (k + 1), xb[k], xb[k])
            c = mean_and_variance(30 * (k + 1), xc[k], xc[k])
            assert b is not None
            assert c is not None
            band = Interval.of(c[0] - b[0], c[1] + b[1], ALPHA, RHO)
            if band.low > -TOL:
                promoted += 1
                break
            if band.high < -TOL:
                failed += 1
                break
    return promoted / RUNS, failed / RUNS


def test_a_candidate_at_the_tolerance_is_rarely_promoted() -> None:
    promoted, _ = _two_groups(-TOL, seed=1)
    assert promoted <= _slack(ALPHA)


def test_an_equal_candidate_is_rarely_failed_and_mostly_promoted() -> None:
    promoted, failed = _two_groups(0.0, seed=2)
    assert failed <= _slack(ALPHA)
    assert promoted >= 0.5  # power: 4,500 canary scores decide most equal candidates


def test_paired_differences_at_the_tolerance_are_rarely_promoted() -> None:
    from scipy.special import ndtri

    rng = np.random.default_rng(3)
    promoted = 0
    for _ in range(RUNS):
        u = rng.normal(size=(LOOKS, 40))
        served = 0.9 * u + math.sqrt(1 - 0.81) * rng.normal(size=u.shape) < ndtri(0.8)
        shadow = 0.9 * u + math.sqrt(1 - 0.81) * rng.normal(size=u.shape) < ndtri(0.8 - TOL)
        d = shadow.astype(float) - served.astype(float)
        n, s, sq = 40 * np.arange(1, LOOKS + 1), d.sum(1).cumsum(), (d * d).sum(1).cumsum()
        for k in range(LOOKS):
            mv = mean_and_variance(n[k], s[k], sq[k])
            assert mv is not None
            if Interval.of(mv[0], mv[1], ALPHA, RHO).low > -TOL:
                promoted += 1
                break
    assert promoted / RUNS <= _slack(ALPHA)


@pytest.mark.parametrize("info", [10.0, 1e3, 1e5, 1e7])
def test_the_always_valid_p_value_agrees_with_the_band(info: float) -> None:
    r = radius(info, ALPHA, RHO)
    assert always_valid_p(r * 1.001, info, RHO) < ALPHA
    assert always_valid_p(r * 0.999, info, RHO) > ALPHA
    assert always_valid_p(-1.0, info, RHO) == 1.0


def test_information_needed_inverts_the_radius_and_rho_is_the_best_choice() -> None:
    need = information_needed(TOL, ALPHA, RHO)
    assert radius(need, ALPHA, RHO) == pytest.approx(TOL, rel=1e-6)
    for other in (RHO / 10, RHO * 10):
        assert information_needed(TOL, ALPHA, other) > need
    assert information_needed(0.0, ALPHA, RHO) == math.inf


def test_a_variance_is_never_zero_and_two_values_are_needed() -> None:
    assert mean_and_variance(1, 1.0, 1.0) is None
    mv = mean_and_variance(100, 100.0, 100.0)  # a hundred ones
    assert mv is not None
    assert mv[0] == 1.0
    assert mv[1] > 0
    assert not Interval.of(0.0, 0.0, ALPHA, RHO).known
