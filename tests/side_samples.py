"""Synthetic sides and windows for the canary judge's tests (values drawn from known truths)."""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec
import numpy as np

from core.events import LlmCall
from core.stats import PairedQuality, WindowKey, WindowStats
from operators.side_summary import LATENCY_SAMPLE, SideSummary
from operators.window_stats import summarize


def side(
    rng: np.random.Generator,
    n: int,
    *,
    latency: float = 400.0,
    quality: float = 0.85,
    quality_sd: float = 0.08,
    binary: bool = False,
    error_rate: float = 0.003,
    cost: float = 0.001,
) -> SideSummary:
    """``n`` calls: lognormal latency, normal (or 0/1) quality, binomial errors."""
    errors = int(rng.binomial(n, error_rate))
    lat = rng.lognormal(np.log(latency), 0.3, n)
    if binary:
        q = rng.binomial(1, quality, n).astype(float)
    else:
        q = np.clip(rng.normal(quality, quality_sd, n), 0, 1)
    logs = np.log1p(lat)
    step = max(n // LATENCY_SAMPLE, 1)
    return SideSummary(
        calls=n,
        errors=errors,
        cost_usd=cost * n,
        quality_count=n,
        quality_sum=float(q.sum()),
        quality_sq_sum=float((q * q).sum()),
        log_latency_n=float(n),
        log_latency_sum=float(logs.sum()),
        log_latency_sq_sum=float((logs * logs).sum()),
        latency=tuple(np.sort(lat)[::step][:LATENCY_SAMPLE].tolist()),
    )


def pairs(
    rng: np.random.Generator, n: int, served: float, shadow: float, rho: float
) -> PairedQuality:
    """``n`` correlated 0/1 pairs (a hard prompt is hard for both models)."""
    from scipy.special import ndtri

    u = rng.normal(size=n)
    a = rho * u + np.sqrt(1 - rho**2) * rng.normal(size=n) < ndtri(served)
    b = rho * u + np.sqrt(1 - rho**2) * rng.normal(size=n) < ndtri(shadow)
    x, y = a.astype(float), b.astype(float)
    return PairedQuality(n, float(x.sum()), float(y.sum()), float(((y - x) ** 2).sum()))


def window(
    rng: np.random.Generator,
    start: datetime,
    *,
    model: str,
    variant: str,
    n: int,
    quality: float = 0.85,
    binary: bool = False,
    latency: float = 400.0,
    config_version: int | None = None,
    shadow: dict[str, PairedQuality] | None = None,
    app: str = "shop",
    task: str = "classify",
) -> WindowStats:
    """One real tumbling window of ``n`` calls, summarised by the processor's own code."""
    q = (
        rng.binomial(1, quality, n).astype(float)
        if binary
        else np.clip(rng.normal(quality, 0.05, n), 0, 1)
    )
    lat = rng.lognormal(np.log(latency), 0.3, n)
    calls = [
        LlmCall(
            event_id=f"{start.isoformat()}-{variant}-{i}",
            timestamp=start + timedelta(seconds=i * 59 / max(n, 1)),
            app=app,
            task=task,
            model=model,
            latency_ms=float(lat[i]),
            input_tokens=100,
            output_tokens=20,
            cost_usd=0.001,
            quality=float(q[i]),
            variant=variant,  # type: ignore[arg-type]
        )
        for i in range(n)
    ]
    w = summarize(
        "tumbling", start, start + timedelta(minutes=1), WindowKey(app, task, model, variant), calls
    )
    return msgspec.structs.replace(w, config_version=config_version, shadow=shadow or {})
