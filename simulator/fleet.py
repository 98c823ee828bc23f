"""The simulated fleet: serves each task's calls with its active config and keeps the truth.

Every tick of simulated time, each task gets Poisson arrivals at its traffic shape's rate. A
call is routed by the application SDK (:class:`llmopt_client.RoutingTable`: the canary serves
the calls whose request id hashes below its weight, with its overrides applied), is served by
the model the route names, and is drawn from that model's true profile at that moment
(incidents applied). The
:class:`Ledger` of each task records what was served against the two counterfactuals: the
default model all along, and the oracle (the cheapest model meeting the task's SLOs, at every
moment).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import msgspec
import numpy as np
from llmopt_client import AppConfig as SdkAppConfig
from llmopt_client import RoutingTable
from llmopt_client import TaskConfig as ServedConfig

from core.app_config import AppConfig, TaskConfig
from operators.pricing import PriceTable
from operators.strategies.prices import call_cost, provider_of
from simulator.binary import correct
from simulator.effects import (
    AnswerCache,
    Batches,
    Paced,
    RateLimits,
    form_batches,
    prompt_effect,
)
from simulator.events import Drawn, render_events
from simulator.ledger import Ledger
from simulator.profiles import Incident, ModelProfile, Scenario, TaskProfile
from simulator.shadow import draw_shadow

__all__ = ["Fleet", "Ledger"]


_MTOK = 1_000_000


def _utc_ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _whole_stream(
    stream: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]] | None,
    times: np.ndarray[Any, Any],
    hit: np.ndarray[Any, Any],
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """The tick's sent calls as if one side's config served the whole task, and which are its.

    Batches and rate limits depend on the whole traffic: each side's are run over every call
    of the tick (minus the side's own cache hits), so its calls are a sample of the world where
    its config serves the task, and a canary at 5 % shows what its full rollout would do.
    Returns the sent calls' times (epoch seconds) and the mask of the side's own among them.
    """
    if stream is None:
        return times[~hit], np.ones(int((~hit).sum()), dtype=bool)
    offsets, rows = stream
    base = float(times[0] - offsets[rows[0]]) if len(rows) else 0.0
    sent = np.ones(len(offsets), dtype=bool)
    sent[rows[hit]] = False
    mine = np.zeros(len(offsets), dtype=bool)
    mine[rows[~hit]] = True
    return base + offsets[sent], mine[sent]


class Fleet:
    """Generates the fleet's calls tick by tick; see the module docstring."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        start: datetime | None = None,
        prices: PriceTable | None = None,
        seed: int | None = None,
    ) -> None:
        begin = start or scenario.start or datetime.now(UTC) - scenario.duration
        self.scenario = replace(scenario, start=begin)
        self.start = begin
        self._prices = prices or PriceTable()
        self._rng = np.random.default_rng(scenario.seed if seed is None else seed)
        self._seq = 0
        self.ledgers: dict[tuple[str, str], Ledger] = {
            (t.app, t.task): Ledger() for t in scenario.tasks
        }
        self._expected: dict[tuple[str, int, int], tuple[float, float]] = {}
        self._rates: dict[str, tuple[float, float, float] | None] = {}
        self._feedback: list[dict[str, Any]] = []  # feedback events due in a later tick
        self._answers = AnswerCache()  # the apps' response caches (cache override)
        self._limits = RateLimits()  # the provider's and the clients' rate limits
        self._tables: dict[str, tuple[AppConfig | None, RoutingTable]] = {}

    @property
    def apps(self) -> list[str]:
        """The fleet's apps."""
        return sorted({t.app for t in self.scenario.tasks})

    def add_incident_now(self, at: datetime, **incident: Any) -> None:
        """Inject an incident from ``at`` on (see :class:`Incident` for the fields)."""
        self.scenario = self.scenario.with_incident(Incident(at=at - self.start, **incident))

    # -- truth ------------------------------------------------------------------------------
    def expected_cost(self, task: TaskProfile, model: str, profile: ModelProfile) -> float:
        """Expected USD of one call of ``model`` on ``task`` (errors bill their input only)."""
        tokens_in = profile.input_tokens + task.prompt_tokens_fixed
        key = (model, round(tokens_in), round(profile.output_tokens))
        found = self._expected.get(key)
        if found is None:
            full = call_cost(self._prices, model, tokens_in, profile.output_tokens)
            failed = call_cost(self._prices, model, tokens_in, 0) or 0.0
            found = self._expected[key] = (0.0 if full is None else full, failed)
        return (1 - profile.error_rate) * found[0] + profile.error_rate * found[1]

    def oracle(self, task: TaskProfile, at: datetime) -> str:
        """The cheapest model meeting the task's SLOs at ``at`` (the default when none does)."""
        best, best_cost = task.model, math.inf
        for model in sorted(task.models):
            profile = self.scenario.profile(task, model, at)
            if profile is None or not task.meets_slo(profile):
                continue
            cost = self.expected_cost(task, model, profile)
            if cost < best_cost:
                best, best_cost = model, cost
        return best

    def is_good(self, app: str, task: str, model: str, at: datetime) -> bool | None:
        """Whether ``model`` meets the SLOs of (app, task) at ``at`` (None: unknown model)."""
        for t in self.scenario.tasks:
            if (t.app, t.task) == (app, task):
                profile = self.scenario.profile(t, model, at)
                return None if profile is None else t.meets_slo(profile)
        return None

    def incident_active(self, app: str, task: str, at: datetime) -> bool:
        """Whether an incident hits any model of (app, task) at ``at``."""
        offset = at - self.start
        return any(i.active(app, task, i.model, offset) for i in self.scenario.incidents)

    def task_profile(self, app: str, task: str) -> TaskProfile | None:
        """The profile of (app, task)."""
        return next((t for t in self.scenario.tasks if (t.app, t.task) == (app, task)), None)

    def _costs(self, model: str, tokens: np.ndarray[Any, Any]) -> np.ndarray[Any, Any] | None:
        """USD of each call (rows: input, output, cache-read tokens) at per-token rates."""
        if model not in self._rates:
            table, provider = self._prices, provider_of(model)
            unit = np.array([[_MTOK, 0, 0], [0, _MTOK, 0], [_MTOK, 0, _MTOK]], dtype=np.int64)
            found = table.tokens_cost(model, provider, unit)
            self._rates[model] = (
                None
                if found is None
                else (found[0] / _MTOK, found[1] / _MTOK, (found[0] - found[2]) / _MTOK)
            )
        rates = self._rates[model]
        if rates is None:
            return None
        rate_in, rate_out, saved = rates
        costs: np.ndarray[Any, Any] = (
            tokens[:, 0] * rate_in + tokens[:, 1] * rate_out - tokens[:, 2] * saved
        )
        return np.round(costs, 9)

    # -- traffic ----------------------------------------------------------------------------
    def rate(self, task: TaskProfile, at: datetime) -> float:
        """Calls per second of ``task`` at ``at``: base rate, daily cycle, bursts."""
        hour = at.hour + at.minute / 60 + at.second / 3600
        rate = task.rate_per_s * (
            1 + task.daily_amplitude * math.sin(2 * math.pi * (hour - task.peak_hour + 6) / 24)
        )
        offset = at - self.start
        for burst in task.bursts:
            if burst.at <= offset < burst.at + burst.duration:
                rate *= burst.factor
        return max(rate, 0.0)

    def routing(self, app: str, config: AppConfig | None) -> RoutingTable:
        """The SDK's routing table of ``config`` (rebuilt only when the config changes)."""
        held = self._tables.get(app)
        if held is not None and held[0] == config:
            return held[1]
        sdk_config = None
        if config is not None:
            sdk_config = msgspec.convert(msgspec.to_builtins(config), SdkAppConfig)
        table = RoutingTable(sdk_config)
        self._tables[app] = (config, table)
        return table

    def calls(
        self, start: datetime, end: datetime, configs: Mapping[str, AppConfig | None]
    ) -> list[dict[str, Any]]:
        """Every call of ``[start, end)``, served with ``configs`` (app → active config).

        Feedback events come in the tick their own time falls in (after their call).
        """
        out: list[dict[str, Any]] = []
        for task in self.scenario.tasks:
            config = configs.get(task.app)
            task_config = config.tasks.get(task.task) if config is not None else None
            table = self.routing(task.app, config)
            out += self._task_calls(task, table, task_config, start, end)
        end_ms = _utc_ms(end)
        waiting = self._feedback + [e for e in out if e.get("kind") == "feedback"]
        out = [e for e in out if e.get("kind") != "feedback"]
        out += [e for e in waiting if e["timestamp"] < end_ms]
        self._feedback = [e for e in waiting if e["timestamp"] >= end_ms]
        out.sort(key=lambda e: e["timestamp"])
        return out

    def _task_calls(
        self,
        task: TaskProfile,
        table: RoutingTable,
        task_config: TaskConfig | None,
        start: datetime,
        end: datetime,
    ) -> list[dict[str, Any]]:
        seconds = (end - start).total_seconds()
        rng = self._rng
        clump = task.clump_size
        n = int(rng.poisson(self.rate(task, start + (end - start) / 2) * seconds / clump))
        ledger = self.ledgers[(task.app, task.task)]
        base = task_config or TaskConfig(model=task.model)
        ledger.baseline_model = base.model or task.model
        ledger.observe(start, base)
        if n == 0:
            return []
        offsets = np.sort(rng.uniform(0.0, seconds, n))
        if clump > 1:  # each arrival is a clump of calls sent together (a fan-out)
            offsets, n = np.repeat(offsets, clump), n * clump
        rids = [f"{task.app}-{v:016x}" for v in rng.integers(0, 2**62, n).tolist()]
        routes = [table.route(task.task, r) for r in rids]
        out: list[dict[str, Any]] = []
        for on_canary in (False, True):
            rows = [i for i, r in enumerate(routes) if (r.variant == "canary") == on_canary]
            if not rows:
                continue
            route = routes[rows[0]]  # one config (and version) per side
            served, tag = route.config, route.config_version
            out += self._serve(
                task, served, start, offsets[rows], [rids[i] for i in rows], on_canary, tag, base,
                (offsets, np.asarray(rows)),
            )  # fmt: skip
        return out

    def _serve(
        self,
        task: TaskProfile,
        served: ServedConfig,
        start: datetime,
        offsets: np.ndarray[Any, Any],
        rids: list[str],
        on_canary: bool,
        version: int | None,
        base: TaskConfig,
        stream: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]] | None = None,
    ) -> list[dict[str, Any]]:
        rng = self._rng
        n = len(rids)
        model = served.model or task.model
        truth = self._truth(task, model, start)
        prompt = prompt_effect(
            task.prompt_tokens_fixed,
            task.template,
            served.prompt.template if served.prompt is not None else None,
            served.prompt is not None and served.prompt.prompt_cache,
            task.trimmed_quality_delta,
        )
        if prompt.quality_delta:  # a trimmed template's answers
            truth = replace(
                truth, quality_mean=min(1.0, max(0.0, truth.quality_mean + prompt.quality_delta))
            )
        latency = np.exp(rng.normal(math.log(truth.latency_median_ms), truth.latency_sigma, n))
        difficulty: np.ndarray[Any, Any] | None = None
        if task.binary_quality:  # 0/1 scores; the prompt's difficulty is shared by all models
            difficulty = rng.standard_normal(n)
            noise = rng.standard_normal(n)
            quality = correct(difficulty, noise, truth.quality_mean, task.difficulty_rho) * 1.0
        else:
            quality = np.clip(rng.normal(truth.quality_mean, truth.quality_sd, n), 0.0, 1.0)
        scored = rng.random(n) < task.quality_share
        later = rng.random(n) < task.feedback_share
        delay = rng.uniform(1.0, max(task.feedback_delay_s, 1.0), n)
        failed = rng.random(n) < truth.error_rate
        kinds = sorted(truth.error_types) or ["error"]
        weights = np.array([truth.error_types.get(k, 1.0) for k in kinds], dtype=float)
        kind_of = rng.choice(len(kinds), n, p=weights / weights.sum())
        tokens_in = rng.poisson(truth.input_tokens, n) + prompt.fixed_tokens
        tokens_out = np.where(failed, 0, rng.poisson(truth.output_tokens, n))
        repeat = rng.random(n) < task.repeat_ratio
        pool = rng.integers(0, max(task.distinct_prompts, 1), n)
        ttft = latency * rng.uniform(0.15, 0.35, n)
        cached = np.full(n, prompt.cached_tokens, dtype=np.int64)
        provider = provider_of(model)
        tokens = np.stack([tokens_in, tokens_out, cached], axis=1).astype(np.int64)
        costs = self._costs(model, tokens)
        variant = "canary" if on_canary else "baseline"
        times = start.timestamp() + offsets
        stale_loss = 0.0
        hit = np.zeros(n, dtype=bool)
        if served.cache is not None and served.cache.enabled:
            request = {
                "model": model,
                "params": served.params,
                "system_prompt": prompt.fixed_tokens,
            }
            found = self._answers.serve(
                (task.app, task.task, variant), request,
                (served.cache.ttl_s, served.cache.key_fields), times, repeat, pool, failed,
                task.answer_lifetime_s,
            )  # fmt: skip
            hit = found.hit
            if found.stale.any():  # an out-of-date answer: wrong (binary) or much worse
                worse = 0.0 if task.binary_quality else quality - task.stale_quality_drop
                stale = np.where(found.stale, np.clip(worse, 0.0, 1.0), quality)
                stale_loss = float((quality - stale).sum())
                quality = stale
        failed &= ~hit  # the cache returns a stored successful answer
        hit_ms = rng.uniform(2.0, 10.0, n) if hit.any() else latency  # same draws without hits
        latency, costs, failed, kinds, kind_of, tokens_out = self._limits_and_batches(
            task, served, truth, (variant, stream), times, latency, costs, failed, hit,
            (kinds, kind_of), tokens_in, tokens_out,
        )  # fmt: skip
        ttft = np.minimum(ttft, latency)
        shadow = served.shadow
        shadow_truth = (
            None
            if shadow is None or shadow.model == model
            else self.scenario.profile(task, shadow.model, start)
        )
        shadow_scored = np.zeros(n, dtype=bool)
        shadow_quality = quality
        shadow_ran = 0
        if shadow is not None and shadow_truth is not None:
            eligible = scored & ~failed & ~hit
            draw = draw_shadow(rng, task, shadow_truth, shadow.share, eligible, difficulty)
            shadow_scored, shadow_quality = draw.scored, draw.quality
            shadow_ran = int(draw.ran.sum())
        drawn = Drawn(
            task.app, task.task, model, provider, variant, version, rids, offsets, latency, ttft,
            tokens_in, tokens_out, failed, kinds, kind_of, quality, scored, later, delay, repeat,
            pool, costs, hit, hit_ms, prompt.fixed_tokens, prompt.cached_tokens > 0,
            shadow.model if shadow is not None else None, shadow_scored, shadow_quality,
        )  # fmt: skip
        out = render_events(drawn, start)
        if costs is not None:
            costs = np.where(hit, 0.0, costs)
        hits = int(hit.sum())
        self._account(task, model, truth, start, n, on_canary, int(failed.sum()), costs, hits)
        ledger = self.ledgers[(task.app, task.task)]
        ledger.served_quality -= stale_loss
        if shadow is not None and shadow_truth is not None and shadow_ran:
            ledger.shadow_calls += shadow_ran
            ledger.shadow_usd += shadow_ran * self.expected_cost(task, shadow.model, shadow_truth)
        if on_canary:  # what testing the canary cost against serving these calls as the baseline
            base_model = base.model or task.model
            base_truth = self._truth(task, base_model, start)
            ledger.explore_quality_lost += n * max(
                0.0, base_truth.quality_mean - truth.quality_mean
            )
            extra = self.expected_cost(task, model, truth) - self.expected_cost(
                task, base_model, base_truth
            )
            ledger.explore_usd += (n - hits) * max(0.0, extra)
        return out

    def _truth(self, task: TaskProfile, model: str, at: datetime) -> ModelProfile:
        """``model``'s truth on ``task`` (an unknown model gets the default model's)."""
        return self.scenario.profile(task, model, at) or task.models[task.model]

    def _limits_and_batches(
        self,
        task: TaskProfile,
        served: ServedConfig,
        truth: ModelProfile,
        side: tuple[str, tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]] | None],
        times: np.ndarray[Any, Any],
        latency: np.ndarray[Any, Any],
        costs: np.ndarray[Any, Any] | None,
        failed: np.ndarray[Any, Any],
        hit: np.ndarray[Any, Any],
        errors: tuple[list[str], np.ndarray[Any, Any]],
        tokens_in: np.ndarray[Any, Any],
        tokens_out: np.ndarray[Any, Any],
    ) -> tuple[
        np.ndarray[Any, Any],
        np.ndarray[Any, Any] | None,
        np.ndarray[Any, Any],
        list[str],
        np.ndarray[Any, Any],
        np.ndarray[Any, Any],
    ]:
        """Batching, the client's rate limit and the provider's on the calls the cache missed.

        Returns latency, costs, failed, error kinds, each call's kind, output tokens.
        """
        kinds, kind_of = errors
        variant, stream = side
        sent = ~hit
        limit = served.rate_limit
        client = (
            None if limit is None else (limit.requests_per_s, limit.tokens_per_min, limit.burst)
        )
        if served.batching is None and client is None and truth.provider_rps is None:
            return latency, costs, failed, kinds, kind_of, tokens_out
        rows = np.flatnonzero(sent)
        latency = latency.copy()
        whole, mine = _whole_stream(stream, times, hit)
        if served.batching is not None and len(rows):
            formed = form_batches(
                whole, served.batching.max_batch_size, served.batching.max_wait_ms
            )
            batches = Batches(formed.wait_s[mine], formed.size[mine])
            factor = batches.latency_factor(truth.batch_item_latency)
            latency[rows] = latency[rows] * factor + batches.wait_s * 1000.0
            if costs is not None and truth.batch_discount:
                costs = costs.copy()
                costs[rows] = np.where(
                    batches.size > 1, costs[rows] * (1 - truth.batch_discount), costs[rows]
                )
        tokens = (tokens_in + tokens_out)[rows]
        full_tokens = np.full(len(whole), float(tokens.mean()) if len(tokens) else 0.0)
        full_tokens[mine] = tokens
        paced = self._limits.pace(
            (task.app, task.task, variant), whole, full_tokens, 1.0, client, truth.provider_rps,
            task.queue_timeout_s,
        )  # fmt: skip
        paced = Paced(paced.wait_s[mine], paced.throttled[mine], paced.timed_out[mine])
        if not (paced.throttled.any() or paced.timed_out.any() or paced.wait_s.any()):
            return latency, costs, failed, kinds, kind_of, tokens_out
        kinds = [*kinds, "rate_limited", "timeout"]
        kind_of, failed, tokens_out = kind_of.copy(), failed.copy(), tokens_out.copy()
        throttled, timed_out = rows[paced.throttled], rows[paced.timed_out]
        latency[rows] += paced.wait_s * 1000.0
        latency[throttled] = truth.throttled_latency_ms + paced.wait_s[paced.throttled] * 1000.0
        for picked, kind in ((throttled, len(kinds) - 2), (timed_out, len(kinds) - 1)):
            failed[picked] = True
            kind_of[picked] = kind
            tokens_out[picked] = 0
            if costs is not None:  # neither a 429 nor a call never sent is billed
                costs = costs.copy()
                costs[picked] = 0.0
        return latency, costs, failed, kinds, kind_of, tokens_out

    def _account(
        self,
        task: TaskProfile,
        model: str,
        truth: ModelProfile,
        at: datetime,
        n: int,
        on_canary: bool,
        errors: int,
        costs: np.ndarray[Any, Any] | None,
        hits: int = 0,
    ) -> None:
        ledger = self.ledgers[(task.app, task.task)]
        default = self.scenario.profile(task, task.model, at) or task.models[task.model]
        oracle_model = self.oracle(task, at)
        oracle = self.scenario.profile(task, oracle_model, at) or default
        ledger.calls += n
        ledger.canary_calls += n if on_canary else 0
        ledger.errors += errors
        ledger.billed_usd += float(costs.sum()) if costs is not None else 0.0
        ledger.served_usd += (n - hits) * self.expected_cost(task, model, truth)
        ledger.cache_hits += hits
        ledger.default_usd += n * self.expected_cost(task, task.model, default)
        ledger.oracle_usd += n * self.expected_cost(task, oracle_model, oracle)
        ledger.served_quality += n * truth.quality_mean
        ledger.default_quality += n * default.quality_mean
        ledger.oracle_quality += n * oracle.quality_mean
        ledger.off_slo_calls += 0 if task.meets_slo(truth) else n
        ledger.by_model[model] = ledger.by_model.get(model, 0) + n
