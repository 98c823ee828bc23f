"""Ground truth of a simulated fleet: per (app, task, model) profiles, traffic, incidents.

A :class:`Scenario` is what ``llmopt simulate --scenario FILE`` reads (JSON or TOML with the
same field names as these dataclasses; durations as seconds or strings like ``"90s"``,
``"15min"``). Built-in scenarios live in :data:`simulator.scenarios.SCENARIOS`.
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from core.durations import parse_duration

__all__ = [
    "Burst",
    "Incident",
    "ModelProfile",
    "Scenario",
    "TaskProfile",
    "load_scenario",
    "scenario_from_dict",
]

_Z95 = 1.6448536269514722  # standard normal 95th percentile


@dataclass(frozen=True, slots=True)
class ModelProfile:
    """How one model serves one task: the truth the optimizer has to discover.

    Latency is lognormal (``latency_median_ms``, ``latency_sigma``); quality is normal, clipped
    to [0, 1], or, on a task with ``binary_quality``, 0/1 with ``quality_mean`` the model's
    accuracy (:mod:`simulator.binary`); ``error_types`` are relative weights of the error
    kinds.
    """

    quality_mean: float = 0.85
    quality_sd: float = 0.08
    latency_median_ms: float = 500.0
    latency_sigma: float = 0.3
    error_rate: float = 0.005
    error_types: Mapping[str, float] = field(
        default_factory=lambda: {"timeout": 0.5, "server_error": 0.5}
    )
    input_tokens: float = 800.0  # mean variable input tokens (the fixed prompt comes on top)
    output_tokens: float = 200.0
    provider_rps: float | None = None  # the provider answers 429 beyond this rate (None: never)
    throttled_latency_ms: float = 40.0  # how fast a 429 comes back
    batch_discount: float = 0.0  # share of the price the provider takes off a batched call
    batch_item_latency: float = 0.0  # a batch of k takes 1 + this · (k - 1) times one call

    @property
    def latency_p95_ms(self) -> float:
        """The true p95 latency."""
        return self.latency_median_ms * math.exp(_Z95 * self.latency_sigma)

    def degraded(self, incident: Incident) -> ModelProfile:
        """This profile with ``incident`` applied."""
        return replace(
            self,
            quality_mean=min(1.0, max(0.0, self.quality_mean + incident.quality_delta)),
            latency_median_ms=self.latency_median_ms * incident.latency_factor,
            error_rate=min(1.0, self.error_rate + incident.error_rate_add),
        )


@dataclass(frozen=True, slots=True)
class Burst:
    """Traffic multiplied by ``factor`` from ``at`` (offset from the start) for ``duration``."""

    at: timedelta
    duration: timedelta
    factor: float = 3.0


@dataclass(frozen=True, slots=True)
class Incident:
    """A model regresses from ``at`` (offset from the start) until ``until`` (``None``: end).

    ``app`` / ``task`` ``None`` means every app / task that uses ``model``.
    """

    model: str
    at: timedelta
    until: timedelta | None = None
    latency_factor: float = 1.0
    quality_delta: float = 0.0
    error_rate_add: float = 0.0
    app: str | None = None
    task: str | None = None

    def active(self, app: str, task: str, model: str, offset: timedelta) -> bool:
        """Whether this incident hits ``model`` of (app, task) at ``offset`` from the start."""
        return (
            self.model == model
            and (self.app is None or self.app == app)
            and (self.task is None or self.task == task)
            and self.at <= offset
            and (self.until is None or offset < self.until)
        )


@dataclass(frozen=True, slots=True)
class TaskProfile:
    """One call site of one app: its traffic, its default model and every model's truth.

    SLOs (what the oracle must meet): quality at least ``quality_slo`` (default: the default
    model's quality minus ``quality_tolerance``), p95 latency at most ``latency_p95_slo_ms``,
    error rate at most ``error_rate_slo`` (default: the default model's plus 0.01).
    """

    app: str
    task: str
    model: str
    models: Mapping[str, ModelProfile]
    rate_per_s: float = 20.0
    daily_amplitude: float = 0.0  # 0..1: rate · (1 + a · sin(2π (hour - peak_hour + 6) / 24))
    peak_hour: float = 14.0
    bursts: tuple[Burst, ...] = ()
    clump_size: int = 1  # calls arrive in clumps of this many at once (fan-out requests)
    repeat_ratio: float = 0.0  # share of calls that repeat one of ``distinct_prompts`` prompts
    distinct_prompts: int = 50
    prompt_tokens_fixed: int = 0  # system prompt / template tokens of every call
    quality_share: float = 1.0  # share of calls that carry a quality score
    feedback_share: float = 0.0  # share of those scores sent later as ``feedback`` events
    feedback_delay_s: float = 20.0  # feedback arrives up to this long after its call
    answer_lifetime_s: float | None = None  # a prompt's correct answer changes this often
    stale_quality_drop: float = 0.5  # quality lost by an out-of-date cached answer (binary: 0)
    queue_timeout_s: float = 30.0  # a call queued by the client's rate limit gives up after
    template: str | None = None  # the task's own prompt template (None: not simulated)
    trimmed_quality_delta: float = 0.0  # quality change of answers with a trimmed template
    binary_quality: bool = False  # scores are 0/1: correct or not (see simulator.binary)
    difficulty_rho: float = 0.0  # binary: loading of the prompt's difficulty shared by models
    quality_tolerance: float = 0.02
    quality_slo: float | None = None
    latency_p95_slo_ms: float = 1000.0
    error_rate_slo: float | None = None

    def __post_init__(self) -> None:
        if self.model not in self.models:
            raise ValueError(f"{self.app}/{self.task}: default model {self.model!r} has no profile")
        if not 0.0 <= self.difficulty_rho < 1.0:
            raise ValueError(f"{self.app}/{self.task}: difficulty_rho must be within [0, 1)")

    def slo_quality(self) -> float:
        """The quality SLO."""
        if self.quality_slo is not None:
            return self.quality_slo
        return self.models[self.model].quality_mean - self.quality_tolerance

    def slo_error_rate(self) -> float:
        """The error-rate SLO."""
        if self.error_rate_slo is not None:
            return self.error_rate_slo
        return self.models[self.model].error_rate + 0.01

    def meets_slo(self, profile: ModelProfile) -> bool:
        """Whether a model with ``profile`` meets this task's quality, latency and error SLOs."""
        return (
            profile.quality_mean >= self.slo_quality() - 1e-12
            and profile.latency_p95_ms <= self.latency_p95_slo_ms
            and profile.error_rate <= self.slo_error_rate() + 1e-12
        )


@dataclass(frozen=True, slots=True)
class Scenario:
    """A fleet, its incidents, when simulated time starts and how long it runs."""

    name: str
    tasks: tuple[TaskProfile, ...]
    incidents: tuple[Incident, ...] = ()
    duration: timedelta = timedelta(hours=1)
    start: datetime | None = None  # None: chosen by the runner (so events never pass the clock)
    seed: int = 7

    def profile(self, task: TaskProfile, model: str, at: datetime) -> ModelProfile | None:
        """The true profile of ``model`` on ``task`` at ``at``, incidents applied."""
        base = task.models.get(model)
        if base is None:
            return None
        offset = at - self.start if self.start is not None else timedelta(0)
        for incident in self.incidents:
            if incident.active(task.app, task.task, model, offset):
                base = base.degraded(incident)
        return base

    def with_incident(self, incident: Incident) -> Scenario:
        """This scenario with one more incident."""
        return replace(self, incidents=(*self.incidents, incident))


# -- loading --------------------------------------------------------------------------------


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float):
        return timedelta(seconds=float(value))
    return parse_duration(str(value))


def _model(data: Mapping[str, Any]) -> ModelProfile:
    return ModelProfile(**dict(data))


def _task(data: Mapping[str, Any]) -> TaskProfile:
    d = dict(data)
    d["models"] = {name: _model(m) for name, m in d["models"].items()}
    d["bursts"] = tuple(
        Burst(at=_duration(b["at"]), duration=_duration(b["duration"]), factor=b.get("factor", 3.0))
        for b in d.get("bursts", ())
    )
    return TaskProfile(**d)


def _incident(data: Mapping[str, Any]) -> Incident:
    d = dict(data)
    d["at"] = _duration(d["at"])
    if d.get("until") is not None:
        d["until"] = _duration(d["until"])
    return Incident(**d)


def scenario_from_dict(data: Mapping[str, Any]) -> Scenario:
    """A scenario from plain data (the scenario-file format).

    Raises:
        ValueError: When a field is missing, unknown or invalid.
    """
    try:
        start = data.get("start")
        return Scenario(
            name=str(data.get("name", "custom")),
            tasks=tuple(_task(t) for t in data["tasks"]),
            incidents=tuple(_incident(i) for i in data.get("incidents", ())),
            duration=_duration(data.get("duration", 3600)),
            start=None if start is None else datetime.fromisoformat(str(start)).astimezone(UTC),
            seed=int(data.get("seed", 7)),
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"invalid scenario: {exc!r}") from exc


def load_scenario(path: Path) -> Scenario:
    """Read a scenario file (``.json`` or ``.toml``)."""
    text = path.read_text()
    data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    return scenario_from_dict(data)
