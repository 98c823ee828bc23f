"""Binary quality with per-prompt difficulty shared by every model (a one-factor probit model).

Each call is a prompt with a latent difficulty ``u ~ N(0, 1)``. Model ``m`` answers it right
(score 1, else 0) iff::

    rho * u + sqrt(1 - rho**2) * e_m  <  Phi^-1(acc_m)

with ``e_m ~ N(0, 1)`` drawn independently per model and call, ``acc_m`` the model's accuracy
on the task (its profile's ``quality_mean``) and ``rho`` the task's ``difficulty_rho``. The
left side is standard normal, so each model is right with probability exactly ``acc_m``; two
models' latent values correlate by ``rho**2`` (a hard prompt is hard for both), and their 0/1
scores by the smaller phi coefficient of :func:`score_correlation`. ``rho = 0``: independent.
A shadow call re-uses the served call's ``u`` (the same prompt) with its own ``e``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import special, stats

__all__ = ["correct", "score_correlation", "threshold"]


def threshold(accuracy: float) -> float:
    """``Phi^-1(accuracy)`` clipped to a finite value (accuracy 0 or 1 stays 0 or 1)."""
    return float(special.ndtri(min(max(accuracy, 1e-12), 1 - 1e-12)))


def correct(
    difficulty: np.ndarray[Any, Any],
    noise: np.ndarray[Any, Any],
    accuracy: float,
    rho: float,
) -> np.ndarray[Any, Any]:
    """Whether the model of ``accuracy`` answers each prompt right (bool per call).

    Args:
        difficulty: The prompts' latent difficulties ``u`` (standard normal).
        noise: This model's own standard normal draws ``e``, one per call.
        accuracy: The model's probability of a right answer.
        rho: The difficulty's loading, in [0, 1).
    """
    latent = rho * difficulty + math.sqrt(1.0 - rho * rho) * noise
    result: np.ndarray[Any, Any] = latent < threshold(accuracy)
    return result


def score_correlation(acc_a: float, acc_b: float, rho: float) -> float:
    """The phi coefficient (Pearson correlation) of two models' 0/1 scores on the same prompts.

    ``P(both right)`` is the bivariate normal CDF at both thresholds with correlation
    ``rho**2``; phi follows from it and the two accuracies.
    """
    both = float(
        stats.multivariate_normal(mean=[0.0, 0.0], cov=[[1.0, rho * rho], [rho * rho, 1.0]]).cdf(
            [threshold(acc_a), threshold(acc_b)]
        )
    )
    spread = math.sqrt(acc_a * (1 - acc_a) * acc_b * (1 - acc_b))
    return (both - acc_a * acc_b) / spread if spread > 0 else 0.0
