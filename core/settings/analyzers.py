"""``[analyzers]``: every number an analyzer compares against (anomaly, drift, cache tables)."""

from __future__ import annotations

from dataclasses import dataclass

from core.settings.spec import section, setting

__all__ = ["AnalyzerSettings", "AnomalySettings", "CachePotentialSettings", "DriftSettings"]


def _old(name: str) -> str:
    return f"analyzers.{name}"


@dataclass(frozen=True, slots=True)
class AnomalySettings:
    """The anomaly analyzer: robust z, CUSUM level shifts, spread, novelty, incident lifecycle."""

    z_warning: float = setting(
        4.0, "robust |z| (MAD) that starts an anomaly", old=_old("anomaly_z_warning")
    )
    z_critical: float = setting(
        8.0, "|z| from which an anomaly start is critical", old=_old("anomaly_z_critical")
    )
    z_calm: float = setting(
        3.0,
        "|z| below which a period of an open anomaly counts as calm",
        old=_old("anomaly_z_calm"),
    )
    cusum_k: float = setting(
        1.0, "CUSUM allowance per period, in robust sigmas", old=_old("anomaly_cusum_k")
    )
    cusum_h: float = setting(
        20.0,
        "CUSUM sum that starts (with a new level) or confirms a level shift",
        old=_old("anomaly_cusum_h"),
    )
    cusum_clip: float = setting(6.0, "|z| clip before the CUSUM", old=_old("anomaly_cusum_clip"))
    level_windows: int = setting(
        12,
        "periods whose median is the level a shift must make new",
        old=_old("anomaly_level_windows"),
    )
    spread_windows: int = setting(
        48,
        "periods whose spread (median step between periods) is the recent spread (`0`: off)",
        old=_old("anomaly_spread_windows"),
    )
    spread_factor: float = setting(
        3.0,
        "recent over baseline spread that starts an anomaly, when also beyond the scale floors "
        "and every spread of the novelty span",
        old=_old("anomaly_spread_factor"),
    )
    recurring_days: int = setting(
        2,
        "earlier days with a start at the same time of day that make a start routine (`0`: off)",
        old=_old("anomaly_recurring_days"),
    )
    recurring_minutes: float = setting(
        60.0,
        "how close to the same time of day (± minutes) that is",
        old=_old("anomaly_recurring_minutes"),
    )
    season_gain: float = setting(
        0.5,
        "latency switches to residuals from its own hour-of-day profile once, over a day of its "
        "measurements, the profile's error is below this share of the flat baseline's (`0`: "
        "off); spans in periods count a sparser series' own measurements",
        old=_old("anomaly_season_gain"),
    )
    rel_floor: float = setting(
        0.05,
        "smallest anomaly scale, as a share of the baseline level",
        old=_old("anomaly_rel_floor"),
    )
    warmup_windows: int = setting(
        12,
        "learned periods before a metric is judged for anomalies",
        old=_old("anomaly_warmup_windows"),
    )
    history_windows: int = setting(
        288,
        "learned periods the anomaly median and MAD remember",
        old=_old("anomaly_history_windows"),
    )
    end_windows: int = setting(
        144,
        "consecutive calm periods that end an anomaly (an incident)",
        old=_old("anomaly_end_windows"),
    )
    relearn_windows: int = setting(
        12,
        "flagged periods after which a confirmed shift becomes the baseline",
        old=_old("anomaly_relearn_windows"),
    )
    min_calls: int = setting(
        1, "calls a period needs to be judged for anomalies", old=_old("anomaly_min_calls")
    )
    score_cap: float = setting(
        1000.0,
        "largest reported |z| (change from a constant baseline)",
        old=_old("anomaly_score_cap"),
    )
    novelty_windows: int = setting(
        2016,
        "periods whose values an anomaly start must exceed (`0`: off)",
        old=_old("anomaly_novelty_windows"),
    )


@dataclass(frozen=True, slots=True)
class DriftSettings:
    """ADWIN (river) drift on each task's quality, median latency and error-rate streams."""

    delta: float = setting(0.002, "ADWIN confidence (`0`: off)", old=_old("drift_delta"))
    grace_windows: int = setting(
        30, "periods a drift detector learns before it may report", old=_old("drift_grace_windows")
    )
    min_change: float = setting(
        0.02,
        "relative move of the mean below which a `drift` insight is `info` (else `warning`)",
        old=_old("drift_min_change"),
    )


@dataclass(frozen=True, slots=True)
class CachePotentialSettings:
    """When the pattern analyzer reports caching potential."""

    repeat_ratio: float = setting(
        0.2, "prompt repeat ratio from which caching pays", old=_old("cache_repeat_ratio")
    )
    change: float = setting(
        0.1, "change of the repeat ratio that is reported again", old=_old("cache_change")
    )


@dataclass(frozen=True, slots=True)
class AnalyzerSettings:
    """Thresholds of the analyzers; every number an analyzer compares against lives here."""

    min_samples: int = setting(30, "calls in a window before a statistic may judge it")
    warmup_windows: int = setting(5, "windows a learned baseline needs before it judges")
    baseline_windows: int = setting(30, "windows a rolling baseline remembers")
    latency_p95_warning_ms: float = setting(1000.0, "latency SLO: p95 that warns")
    latency_p95_critical_ms: float = setting(5000.0, "latency SLO: p95 that is critical")
    regression_warning: float = setting(0.20, "p95 above its baseline by this share warns")
    regression_critical: float = setting(0.50, "p95 above its baseline by this share is critical")
    success_rate_warning: float = setting(0.95, "success rate below which a task warns")
    throughput_drop: float = setting(
        0.5, "share below its baseline at which a period's calls are a throughput drop"
    )
    error_rate_warning: float = setting(0.01, "error rate that warns")
    error_rate_critical: float = setting(0.05, "error rate that is critical")
    quality_p_value: float = setting(
        0.01, "significance of error-rate increases, quality degradation and throughput drops"
    )
    quality_tolerance: float = setting(
        0.02, "absolute quality drop beyond which a significant degradation is critical"
    )
    cost_spike_factor: float = setting(2.0, "spend rate over its baseline that is a cost spike")
    burst_factor: float = setting(2.0, "a burst is a rate above this multiple of its reference")
    burst_max_windows: int = setting(
        10, "consecutive burst windows after which the new level is learned"
    )
    profile_alpha: float = setting(
        0.3, "EWMA weight of the newest day in the hour-of-day/day-of-week traffic profiles"
    )
    profile_min_days: int = setting(
        2, "days an hour must be seen before the profile gives an expected rate"
    )
    trend_p_value: float = setting(0.01, "significance of a traffic trend's slope")
    trend_min_change: float = setting(
        0.2, "minimum fitted traffic change over the span, as a share of the mean"
    )
    batching_min_peak_rate: float = setting(10.0, "peak calls per second from which batching pays")
    batching_max_output_tokens: float = setting(100.0, "mean output tokens of a small call")
    batching_max_wait_ms: float = setting(50.0, "wait a batch adds (p95 plus it must meet the SLO)")
    batching_change: float = setting(0.5, "relative change of the peak rate that is reported again")
    renotify_windows: int = setting(
        60, "windows before cache/batching potential may be reported again"
    )
    anomaly: AnomalySettings = section(AnomalySettings)
    drift: DriftSettings = section(DriftSettings)
    cache: CachePotentialSettings = section(CachePotentialSettings)
