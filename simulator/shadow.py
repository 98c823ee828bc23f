"""Shadow evaluation in a simulated app: a second model scored on the same requests, unserved.

When the served config has ``shadow`` (:class:`core.app_config.ShadowConfig`), the app also
runs ``shadow.model`` on ``shadow.share`` of the calls it scores (a successful call that gets a
quality score), on the same prompt, serves its usual answer and reports the shadow model's
score as ``shadow_model`` / ``shadow_quality`` (on the call, or on its ``feedback`` event when
the score comes later). On a binary-quality task the shadow answer shares the prompt's latent
difficulty (:mod:`simulator.binary`); on a Gaussian one its score is an independent draw
from the shadow model's profile. A shadow call fails at the shadow model's error rate (no score
then). Its cost is exploration cost: :class:`~simulator.ledger.Ledger` ``shadow_usd``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator.binary import correct
from simulator.profiles import ModelProfile, TaskProfile

__all__ = ["ShadowDraw", "draw_shadow"]


@dataclass(frozen=True, slots=True)
class ShadowDraw:
    """The shadow calls of one batch of served calls."""

    ran: np.ndarray[Any, Any]  # bool per served call: the shadow model ran on it
    scored: np.ndarray[Any, Any]  # bool: ran and succeeded (a score is reported)
    quality: np.ndarray[Any, Any]  # the shadow model's score per call (valid where scored)


def draw_shadow(
    rng: np.random.Generator,
    task: TaskProfile,
    truth: ModelProfile,
    share: float,
    eligible: np.ndarray[Any, Any],
    difficulty: np.ndarray[Any, Any] | None,
) -> ShadowDraw:
    """Draw which ``eligible`` calls get a shadow run, whether it fails, and its score.

    Args:
        rng: The fleet's generator.
        task: The task (binary or Gaussian quality, its ``difficulty_rho``).
        truth: The shadow model's true profile now.
        share: ``shadow.share``.
        eligible: Bool per served call: scored and successful.
        difficulty: The served calls' latent difficulties (binary tasks), else ``None``.
    """
    n = len(eligible)
    ran = eligible & (rng.random(n) < share)
    failed = rng.random(n) < truth.error_rate
    if task.binary_quality and difficulty is not None:
        noise = rng.standard_normal(n)
        quality = correct(difficulty, noise, truth.quality_mean, task.difficulty_rho).astype(float)
    else:
        quality = np.clip(rng.normal(truth.quality_mean, truth.quality_sd, n), 0.0, 1.0)
    return ShadowDraw(ran, ran & ~failed, quality)
