"""Settings: dynaconf, validated once at the entry point, frozen, passed down.

Sources: ``settings.toml``, ``.secrets.toml`` and ``LLMOPT_*`` variables (``__`` for nesting).

Every default lives in :data:`_VALIDATORS`; ``settings.toml`` holds per-environment overrides.
A value that fails validation raises :class:`core.errors.ConfigurationError` whose message names
the key, the value and the rule.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dynaconf import Dynaconf, ValidationError, Validator

from core.durations import parse_duration
from core.errors import ConfigurationError
from core.event_limits import MAX_MESSAGE_BYTES_LIMIT, MAX_RECORD_BYTES

__all__ = [
    "AnalyzerSettings",
    "ApiSettings",
    "BudgetSettings",
    "CanarySettings",
    "CollectorSettings",
    "DecisionSettings",
    "GrpcSettings",
    "IntegrationSettings",
    "KafkaSettings",
    "ModelPrice",
    "OrchestratorSettings",
    "ProcessorSettings",
    "ProviderLimit",
    "RouteRule",
    "Settings",
    "StorageSettings",
    "load_settings",
]

ENV_PREFIX = "LLMOPT"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """Where telemetry comes from and where bad records go.

    ``max_message_bytes`` is the one size limit of a record: larger records are rejected by
    the decoder, the topics the optimizer creates get it as ``max.message.bytes``, and the DLQ
    producer's ``message.max.bytes`` leaves room above it for the DLQ headers.
    """

    bootstrap_servers: str = ""
    telemetry_topic: str = "llm.telemetry"
    dlq_topic: str = "llm.telemetry.dlq"
    tail: bool = True
    partitions: int = 3
    embedded_port: int = 9092
    max_message_bytes: int = MAX_RECORD_BYTES

    @property
    def embedded(self) -> bool:
        """True when no cluster is configured and the embedded broker must be started."""
        return not self.bootstrap_servers

    @property
    def brokers(self) -> list[str]:
        """The bootstrap servers as a list of ``host:port``."""
        return [b.strip() for b in self.bootstrap_servers.split(",") if b.strip()]


@dataclass(frozen=True, slots=True)
class StorageSettings:
    """Databases: PostgreSQL or the SQLite fallback, Redis or the in-process fallback."""

    database_url: str = ""
    redis_url: str = ""
    data_dir: str = "./var"

    @property
    def resolved_database_url(self) -> str:
        """The database URL, or the embedded SQLite file under ``data_dir`` when none is set."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{Path(self.data_dir).resolve() / 'llmopt.sqlite3'}"


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """A price that overrides or adds to the genai-prices table (USD per million tokens)."""

    input_per_mtok: float
    output_per_mtok: float
    cache_read_per_mtok: float | None = None


@dataclass(frozen=True, slots=True)
class ProcessorSettings:
    """The Bytewax dataflow."""

    tumbling_window: timedelta = timedelta(seconds=60)
    sliding_window: timedelta = timedelta(seconds=300)
    sliding_step: timedelta = timedelta(seconds=60)
    allowed_lateness: timedelta = timedelta(seconds=30)
    dedup_ttl: timedelta = timedelta(hours=1)
    feedback_join_window: timedelta = timedelta(minutes=10)
    workers: int = 1
    processes: int = 1
    recovery: bool = True
    recovery_dir: str = ""
    recovery_partitions: int = 1
    snapshot_interval: timedelta = timedelta(seconds=10)
    max_clock_skew: timedelta = timedelta(hours=1)
    database_retry_max_delay: timedelta = timedelta(seconds=30)  # longest wait, database away
    migrate_on_start: bool = True  # false: wait for `llmopt migrate` instead of migrating
    prices: Mapping[str, ModelPrice] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """The REST (and later gRPC) surface."""

    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 0  # server worker processes; 0: one per core with Redis, else 1
    tls_cert_path: str = ""  # PEM certificate: HTTPS with h2 by ALPN (with tls_key_path)
    tls_key_path: str = ""  # PEM private key of tls_cert_path
    bootstrap_admin_key: str = field(default="", repr=False)
    jwt_algorithm: str = "HS256"  # HS256 (jwt_secret) or RS256 (key pair files)
    jwt_secret: str = field(default="", repr=False)  # HS256; empty: no tokens are issued
    jwt_private_key_path: str = ""  # RS256: PEM that signs (only replicas that issue tokens)
    jwt_public_key_path: str = ""  # RS256: PEM that verifies
    jwt_ttl: timedelta = timedelta(minutes=15)  # lifetime of a token from /api/v1/auth/token
    jwt_issuer: str = "llmopt"
    cors_origins: tuple[str, ...] = ()  # allowed CORS origins; empty: no CORS headers
    rate_limit_per_s: float = 1000.0  # requests/s per API key or JWT subject; 0: off
    rate_limit_burst: int = 2000
    anonymous_rate_limit_per_s: float = 20.0  # requests/s per client IP without credentials
    anonymous_rate_limit_burst: int = 100
    rate_limit_prefix: str = "llmopt:rl"  # Redis key prefix of the shared limiter state
    request_timeout: timedelta = timedelta(seconds=30)
    max_body_bytes: int = 10 * 1024 * 1024  # largest request body (telemetry batches)
    max_batch_events: int = 10_000  # events per telemetry request
    config_cache_ttl: timedelta = timedelta(seconds=5)  # how long a replica trusts a cached config
    console_session_ttl: timedelta = timedelta(hours=8)  # a console log-in lasts this long
    # signs console session cookies; empty: a random key kept in the shared cache
    console_secret: str = field(default="", repr=False)


@dataclass(frozen=True, slots=True)
class AnalyzerSettings:
    """Thresholds of the analyzers; every number an analyzer compares against lives here."""

    min_samples: int = 30  # calls in a window before a statistic may judge it
    warmup_windows: int = 5  # windows a learned baseline needs before it judges
    baseline_windows: int = 30  # windows a rolling baseline remembers
    latency_p95_warning_ms: float = 1000.0  # SLO
    latency_p95_critical_ms: float = 5000.0
    regression_warning: float = 0.20  # p95 above the baseline by this share
    regression_critical: float = 0.50
    success_rate_warning: float = 0.95
    throughput_drop: float = 0.5  # calls of a period below their baseline by this share warn
    error_rate_warning: float = 0.01
    error_rate_critical: float = 0.05
    quality_p_value: float = 0.01  # significance of a quality degradation
    quality_tolerance: float = 0.02  # absolute quality drop that makes a degradation critical
    cost_spike_factor: float = 2.0  # spend rate over its baseline
    burst_factor: float = 2.0  # a burst is a rate above this multiple of its reference
    burst_max_windows: int = 10  # consecutive burst windows after which the new level is learned
    profile_alpha: float = (
        0.3  # EWMA weight of the newest day in an hour-of-day/day-of-week profile
    )
    profile_min_days: int = 2  # days an hour must be seen before the profile gives an expected rate
    trend_p_value: float = 0.01  # significance of a traffic trend's slope
    trend_min_change: float = (
        0.2  # minimum fitted traffic change over the span, as a share of the mean
    )
    cache_repeat_ratio: float = 0.2  # prompt repeat ratio from which caching pays
    cache_change: float = 0.1  # change of the repeat ratio that is reported again
    batching_min_peak_rate: float = 10.0  # peak calls per second from which batching pays
    batching_max_output_tokens: float = 100.0  # mean output tokens of a small call
    batching_max_wait_ms: float = 50.0  # wait a batch adds (p95 plus it must meet the SLO)
    batching_change: float = 0.5  # relative change of the peak rate that is reported again
    renotify_windows: int = 60  # windows before cache/batching potential may be reported again
    anomaly_z_warning: float = 4.0  # robust |z| (MAD) that starts an anomaly
    anomaly_z_critical: float = 8.0  # |z| from which an anomaly start is critical
    anomaly_z_calm: float = 3.0  # |z| below which a period of an open anomaly counts as calm
    anomaly_cusum_k: float = 1.0  # CUSUM allowance per period, in robust sigmas
    anomaly_cusum_h: float = 20.0  # CUSUM sum that starts or confirms a level shift
    anomaly_cusum_clip: float = 6.0  # |z| clip before the CUSUM
    anomaly_level_windows: int = 12  # periods whose median is a level (a shift's must be new)
    anomaly_spread_windows: int = 48  # periods whose robust spread is the recent spread (0: off)
    anomaly_spread_factor: float = 3.0  # recent over baseline spread that starts an anomaly
    anomaly_recurring_days: int = 2  # earlier days starting at this time of day: routine (0: off)
    anomaly_recurring_minutes: float = 60.0  # how close to the same time of day that is
    drift_delta: float = 0.002  # ADWIN confidence on quality, latency and error streams (0: off)
    drift_grace_windows: int = 30  # periods a drift detector learns before it may report
    drift_min_change: float = 0.02  # relative move of the mean below which a drift is only info
    anomaly_season_gain: float = 0.5  # profile error over flat error that makes latency seasonal
    anomaly_rel_floor: float = 0.05  # smallest anomaly scale, as a share of the baseline level
    anomaly_warmup_windows: int = 12  # learned periods before a metric is judged for anomalies
    anomaly_history_windows: int = 288  # learned periods the anomaly median and MAD remember
    anomaly_end_windows: int = 144  # consecutive calm periods that end an anomaly
    anomaly_relearn_windows: int = (
        12  # flagged periods after which a confirmed shift becomes the baseline
    )
    anomaly_min_calls: int = 1  # calls a period needs to be judged for anomalies
    anomaly_score_cap: float = 1000.0  # largest reported |z| (change from a constant baseline)
    anomaly_novelty_windows: int = (
        2016  # periods whose values an anomaly start must exceed (0: off)
    )


@dataclass(frozen=True, slots=True)
class BudgetSettings:
    """Spend limits per app (0: no budget) and the shares of them that warn."""

    daily_usd: float = 0.0
    monthly_usd: float = 0.0
    warning: float = 0.8
    critical: float = 0.9


@dataclass(frozen=True, slots=True)
class OrchestratorSettings:
    """The service manager."""

    health_interval: timedelta = timedelta(seconds=30)
    shutdown_timeout: timedelta = timedelta(seconds=30)
    start_timeout: timedelta = timedelta(seconds=60)
    metrics_port: int = 9090
    failure_threshold: int = 3  # consecutive failed health checks before a restart
    max_restarts: int = 3  # restarts of one service before it is marked Failed
    health_timeout: timedelta = timedelta(seconds=10)  # longest wait for one health check
    log_format: str = "auto"  # json | console | auto (json in production, console otherwise)
    otlp_endpoint: str = ""  # OTLP/HTTP traces endpoint, e.g. http://otel:4318; empty: no traces
    pipeline_metrics_interval: timedelta = timedelta(seconds=15)  # database/Kafka sampling
    supervise_processor: bool = True  # false: the Bytewax processes run elsewhere (Compose, k8s)
    bytewax_api_port: int = 0  # first Bytewax metrics port (one per process); 0: free ports
    # host:port of each Bytewax process's metrics API when the processes run elsewhere
    processor_endpoints: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CollectorSettings:
    """The OTLP collector: receivers, rate limits, backpressure, circuit breaker, spill buffer."""

    enabled: bool = True
    host: str = "127.0.0.1"
    http_port: int = 4318  # OTLP/HTTP (POST /v1/traces), also /metrics and /health
    grpc_port: int = 4317  # OTLP/gRPC TraceService/Export
    max_request_bytes: int = 16 * 1024 * 1024  # largest OTLP/HTTP body, after gzip
    source_rate: float = 20_000.0  # events/s per source (API key or service.name); 0: off
    source_burst: int = 40_000  # events a source may send at once
    global_rate: float = 100_000.0  # events/s over all sources; 0: off
    global_burst: int = 200_000
    queue_high_watermark: int = 50_000  # events waiting for Kafka above which ingest says 429
    queue_low_watermark: int = 25_000  # ... until the queue is back below this
    breaker_failure_threshold: int = 3  # consecutive failed deliveries that open the breaker
    breaker_reset_timeout: timedelta = timedelta(seconds=5)  # open → half-open probe
    delivery_timeout: timedelta = timedelta(seconds=10)  # Kafka ack wait before a record spills
    linger_ms: int = 5  # producer batching delay
    spill_dir: str = ""  # default: <storage.data_dir>/collector-spill
    spill_max_bytes: int = 1024 * 1024 * 1024  # on-disk buffer bound; beyond it: 429
    spill_segment_bytes: int = 8 * 1024 * 1024  # size at which a spill segment is sealed
    spill_adopt_interval: timedelta = timedelta(seconds=30)  # look for orphaned spill folders

    def resolved_spill_dir(self, data_dir: str) -> Path:
        """The spill folder: ``spill_dir``, or ``collector-spill`` under ``data_dir``."""
        return Path(self.spill_dir) if self.spill_dir else Path(data_dir) / "collector-spill"


@dataclass(frozen=True, slots=True)
class CanarySettings:
    """Canary rollouts and the judge that advances, holds or rolls them back."""

    stages: tuple[float, ...] = (0.01, 0.05, 0.1, 0.25, 0.5)  # canary weights a rollout may take
    min_stage_duration: timedelta = timedelta(minutes=5)  # each weight is held at least this long
    min_samples: int = 100  # calls per side before anything is judged
    alpha: float = 0.05  # error rate of each anytime-valid band (promote worse, fail good)
    max_error_rate: float = 0.05  # canary error rate shown above this fails
    max_error_rate_increase: float = 0.01  # tolerated absolute error-rate increase (effect size)
    max_p95_ms: float = 5000.0  # gate: canary p95 latency above this fails
    max_p99_ms: float = 10000.0  # gate: canary p99 latency above this fails
    max_latency_increase: float = 0.10  # tolerated relative increase of the geometric mean
    quality_floor: float = 0.0  # gate: canary mean quality below this fails (0: off)
    max_cost_increase: float = 0.10  # gate: relative cost-per-success increase that fails
    max_rollout_duration: timedelta = timedelta(days=3)  # no verdict this long: roll back
    risk_budget: float = 0.005  # quality a task may lose per call while a change is tested
    shadow_share: float = 0.5  # share of scored calls apps run a candidate model on (0: none)
    post_promotion_watch: timedelta = timedelta(minutes=30)  # health checks after promotion
    holdback: float = 0.05  # share of calls kept on the old config while watched (0: none)


@dataclass(frozen=True, slots=True)
class ProviderLimit:
    """A provider's limits for one account (``None``: not limited)."""

    requests_per_s: float | None = None
    tokens_per_min: float | None = None


@dataclass(frozen=True, slots=True)
class DecisionSettings:
    """The decision strategies and their coordinator: every threshold they compare against."""

    cooldown: timedelta = timedelta(minutes=15)  # between two changes of one (app, task)
    repropose_after: timedelta = timedelta(hours=1)  # before a strategy proposes the same again
    min_confidence: float = 0.7
    max_cost_increase_pct: float = 10.0
    max_latency_increase_pct: float = 20.0
    min_quality: float = 0.0  # floor of the expected quality after a change (0: none)
    min_samples: int = 100  # calls (quality scores for models) before a strategy judges
    history_windows: int = 60  # periods of per-model statistics model selection remembers
    candidates: tuple[str, ...] = ()  # models model selection may propose, for every app
    app_candidates: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # app → models
    quality_tolerance: float = 0.02  # absolute quality a candidate may lose to the incumbent
    quality_alpha: float = 0.05  # one-sided significance of "statistically worse"
    prior_quality_sd: float = 0.02  # prior spread of an unseen model's quality gap
    thompson_draws: int = 2000  # posterior draws estimating each model's chance to be best
    weight_cost: float = 1.0  # objective (lower wins): relative cost ...
    weight_latency: float = 0.0  # ... plus relative p95 latency ...
    weight_quality: float = 0.0  # ... minus quality gain in tolerances
    cache_min_hit_rate: float = 0.2
    cache_ttl_coverage: float = 0.95  # share of repeat intervals the cache TTL should cover
    cache_min_ttl: timedelta = timedelta(seconds=30)
    cache_max_ttl: timedelta = timedelta(hours=24)
    cache_exclude_params: tuple[str, ...] = ("multi_turn", "tools")  # params that forbid a cache
    provider_limits: Mapping[str, ProviderLimit] = field(default_factory=dict)
    rate_limited_share: float = 0.01  # share of calls failing with rate_limited that triggers
    rate_limit_step: float = 0.2  # largest relative change of a limit per step
    rate_limit_spacing: timedelta = timedelta(minutes=30)  # between two limit steps
    rate_limit_burst: timedelta = timedelta(seconds=1)  # token-bucket burst, as time at the rate
    batching_headroom_share: float = 0.5  # share of the p95 SLO headroom a batch may wait
    batching_max_size: int = 32
    prompt_fixed_share: float = 0.5  # fixed prompt share of the input from which prompts change
    prompt_trim_target: float = 0.3  # share of the fixed prompt a trimmed template should drop
    prompt_rewrite: bool = False  # ask the actuator for an LLM rewrite of the template
    require_approval: tuple[str, ...] = ()  # strategies or apps whose decisions wait for a person
    rolled_back_memory: timedelta = timedelta(days=1)  # a rolled-back change is not retried sooner

    def __post_init__(self) -> None:
        # Loaded mappings arrive as plain JSON data: give them their types (frozen: set directly).
        apps = {str(k): tuple(str(m) for m in v) for k, v in self.app_candidates.items()}
        object.__setattr__(self, "app_candidates", apps)
        limits = {
            str(k): v if isinstance(v, ProviderLimit) else ProviderLimit(**dict(v))
            for k, v in self.provider_limits.items()
        }
        object.__setattr__(self, "provider_limits", limits)

    def candidates_for(self, app: str) -> tuple[str, ...]:
        """The candidate models of ``app``: the global list, then the app's own."""
        own = self.app_candidates.get(app, ())
        return tuple(dict.fromkeys((*self.candidates, *own)))


ROUTE_EVENTS = (
    "critical_insight",
    "insight",
    "verdict",
    "rollback",
    "approval_needed",
    "decision",
    "decision_approved",
    "decision_rejected",
)
ROUTE_TARGETS = ("slack", "jira", "github")
SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True, slots=True)
class RouteRule:
    """One routing rule of the integrations: matching events go to each of ``targets``.

    An empty ``events``, ``apps`` or ``strategies`` matches anything; ``strategies`` only
    constrains events that name a strategy (decisions, approvals, rollbacks).
    """

    targets: tuple[str, ...] = ()
    events: tuple[str, ...] = ()
    min_severity: str = "info"
    apps: tuple[str, ...] = ()
    strategies: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("targets", "events", "apps", "strategies"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise ConfigurationError(
                    f"invalid settings: integrations.routes[].{name} must be a list of strings "
                    f"but it is {value!r}"
                )
            object.__setattr__(self, name, tuple(value))
        rules = (
            ("targets", ROUTE_TARGETS, self.targets),
            ("events", ROUTE_EVENTS, self.events),
            ("min_severity", SEVERITIES, (self.min_severity,)),
        )
        for name, allowed, values in rules:
            bad = [v for v in values if v not in allowed]
            if bad or (name == "targets" and not values):
                raise ConfigurationError(
                    f"invalid settings: integrations.routes[].{name} must be one or more of "
                    f"{', '.join(allowed)} but it is {bad or list(values)!r}"
                )


DEFAULT_ROUTES = (
    RouteRule(targets=("slack",), events=("critical_insight", "verdict", "rollback")),
    RouteRule(
        targets=("jira", "github"),
        events=("approval_needed", "decision", "decision_approved", "decision_rejected"),
    ),
)


@dataclass(frozen=True, slots=True)
class IntegrationSettings:
    """Slack, Jira, GitHub and Anthropic: credentials, routing, retries, outbox delivery.

    A client is on when its credentials are set; secrets never show in a ``repr``.
    """

    enabled: bool = True  # false: the integrations service delivers nothing
    slack_webhook_url: str = field(default="", repr=False)
    jira_base_url: str = ""  # e.g. https://example.atlassian.net
    jira_email: str = ""
    jira_api_token: str = field(default="", repr=False)
    jira_project: str = ""  # project key issues are created in
    jira_issue_type: str = "Task"
    github_token: str = field(default="", repr=False)
    github_repo: str = ""  # owner/name
    github_api_url: str = "https://api.github.com"
    github_config_path: str = ""  # folder for config-change files (contents API); empty: off
    github_branch: str = ""  # branch of those files; empty: the default branch
    anthropic_api_key: str = field(default="", repr=False)
    anthropic_model: str = "claude-haiku-4-5"
    anthropic_base_url: str = "https://api.anthropic.com"
    anthropic_max_tokens: int = 1024
    link_base_url: str = ""  # base of "open details" links (the REST API as users reach it)
    routes: tuple[RouteRule, ...] = DEFAULT_ROUTES
    timeout: timedelta = timedelta(seconds=10)  # per request
    retry_attempts: int = 4  # requests per delivery attempt
    retry_base: timedelta = timedelta(milliseconds=500)  # backoff ceiling after a failure
    retry_cap: timedelta = timedelta(seconds=8)  # largest backoff ceiling
    max_retry_after: timedelta = timedelta(seconds=60)  # longer waits go back to the outbox
    breaker_failure_threshold: int = 5  # consecutive failures that open a client's breaker
    breaker_reset_timeout: timedelta = timedelta(seconds=30)  # open → half-open probe
    poll_interval: timedelta = timedelta(seconds=5)  # outbox polling
    batch_size: int = 50  # outbox rows per poll
    outbox_retry_interval: timedelta = timedelta(seconds=30)  # first redelivery delay, doubling
    outbox_max_retry_interval: timedelta = timedelta(hours=1)  # largest redelivery delay
    max_attempts: int = 10  # delivery attempts before a row is parked as failed

    def __post_init__(self) -> None:
        routes = tuple(r if isinstance(r, RouteRule) else _route(r) for r in self.routes)
        object.__setattr__(self, "routes", routes)


@dataclass(frozen=True, slots=True)
class GrpcSettings:
    """The gRPC API (``llmopt.v1``): address, TLS, message limits, deadlines, streams."""

    enabled: bool = True  # false: the orchestrator does not start the gRPC server
    host: str = "127.0.0.1"
    port: int = 50051  # 0: a free port (tests)
    tls_cert_path: str = ""  # PEM certificate chain; with tls_key_path: TLS (1.3 where possible)
    tls_key_path: str = ""  # PEM private key of the certificate
    tls_client_ca_path: str = ""  # PEM CA bundle: when set, clients must present a certificate
    max_receive_message_bytes: int = 16 * 1024 * 1024  # largest request message
    max_send_message_bytes: int = 16 * 1024 * 1024  # largest response message
    unary_timeout: timedelta = timedelta(seconds=30)  # server-side deadline of unary calls
    grace: timedelta = timedelta(seconds=5)  # in-flight calls may finish this long on shutdown
    watch_poll_interval: timedelta = timedelta(seconds=1)  # streams re-read storage this often
    stream_lookback: timedelta = timedelta(hours=1)  # how far back streams look for new records
    health_interval: timedelta = timedelta(seconds=5)  # dependency probes of the health service


def _route(raw: Any) -> RouteRule:
    if not isinstance(raw, Mapping):
        raise ConfigurationError(
            f"invalid settings: integrations.routes must be a list of tables but has {raw!r}"
        )
    values = {str(k).lower(): v for k, v in raw.items()}
    unknown = sorted(set(values) - {f.name for f in fields(RouteRule)})
    if unknown:
        raise ConfigurationError(
            f"invalid settings: integrations.routes[] has unknown keys {unknown} in {raw!r}"
        )
    return RouteRule(**values)


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting of the optimizer, frozen; built once by :func:`load_settings`."""

    env: str = "development"
    log_level: str = "INFO"
    kafka: KafkaSettings = KafkaSettings()
    storage: StorageSettings = StorageSettings()
    processor: ProcessorSettings = ProcessorSettings()
    api: ApiSettings = ApiSettings()
    orchestrator: OrchestratorSettings = OrchestratorSettings()
    analyzers: AnalyzerSettings = AnalyzerSettings()
    budgets: BudgetSettings = BudgetSettings()
    canary: CanarySettings = CanarySettings()
    collector: CollectorSettings = CollectorSettings()
    decisions: DecisionSettings = DecisionSettings()
    integrations: IntegrationSettings = IntegrationSettings()
    grpc: GrpcSettings = GrpcSettings()

    def with_overrides(self, **sections: Any) -> Settings:
        """Return a copy with whole sections replaced (tests, resolved embedded addresses)."""
        return replace(self, **sections)

    def as_env(self) -> dict[str, str]:
        """The ``LLMOPT_*`` variables that reproduce these settings in a child process."""
        out: dict[str, str] = {
            f"{ENV_PREFIX}_ENV": self.env,
            f"{ENV_PREFIX}_LOG_LEVEL": self.log_level,
        }
        for name in section_names():
            section = getattr(self, name)
            for key in section.__dataclass_fields__:
                value = getattr(section, key)
                # '@str' keeps dynaconf from parsing the value as TOML (e.g. "1e3" or "true").
                if isinstance(value, timedelta):
                    text = f"@str {value.total_seconds()}s"
                elif isinstance(value, bool):
                    text = "true" if value else "false"
                elif isinstance(value, int | float):
                    text = repr(value)
                elif isinstance(value, Mapping | list | tuple):
                    text = "@json " + json.dumps(_plain(value))
                else:
                    text = f"@str {value}"
                out[f"{ENV_PREFIX}_{name.upper()}__{key.upper()}"] = text
        return out


def _is_duration(value: Any) -> bool:
    try:
        parse_duration(value)
    except (ValueError, TypeError, AttributeError):
        return False
    return True


def _is_url(schemes: tuple[str, ...]) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        if value == "":
            return True
        if not isinstance(value, str):
            return False
        return urlsplit(value).scheme in schemes

    return check


def _is_broker_list(value: Any) -> bool:
    if value == "":
        return True
    if not isinstance(value, str):
        return False
    for broker in value.split(","):
        host, sep, port = broker.strip().rpartition(":")
        if not (sep and host and port.isdigit()):
            return False
    return True


def _duration(key: str, default: str, *, positive: bool = True) -> Validator:
    rule = "a positive duration such as 60s, 10min or 1h" if positive else "a duration"

    def check(value: Any) -> bool:
        return _is_duration(value) and (not positive or parse_duration(value) > timedelta(0))

    return Validator(
        key,
        default=default,
        condition=check,
        messages={"condition": f"{{name}} must be {rule} but it is {{value!r}} in env {{env}}"},
    )


def _port(key: str, default: int, lowest: int = 1) -> Validator:
    return Validator(key, default=default, is_type_of=int, gte=lowest, lte=65535)


def _is_stage_list(value: Any) -> bool:
    if not isinstance(value, list | tuple) or not value:
        return False
    if not all(isinstance(v, int | float) and 0 < v <= 1 for v in value):
        return False
    return list(value) == sorted(set(value)) and value[0] < 1


_BIG = 1e9  # upper bound of the unbounded percentages and weights


def _decision_validators() -> list[Validator]:
    """Ranges of the ``decisions.*`` numbers (durations are checked generically)."""
    floats = (
        ("min_confidence", 0.0, 1.0),
        ("max_cost_increase_pct", 0.0, _BIG),
        ("max_latency_increase_pct", 0.0, _BIG),
        ("min_quality", 0.0, 1.0),
        ("quality_tolerance", 0.0, 1.0),
        ("quality_alpha", 1e-9, 0.5),
        ("prior_quality_sd", 1e-6, 1.0),
        ("weight_cost", 0.0, _BIG),
        ("weight_latency", 0.0, _BIG),
        ("weight_quality", 0.0, _BIG),
        ("cache_min_hit_rate", 0.0, 1.0),
        ("cache_ttl_coverage", 1e-6, 0.999999),
        ("rate_limited_share", 0.0, 1.0),
        ("rate_limit_step", 1e-6, 1.0),
        ("batching_headroom_share", 1e-6, 1.0),
        ("prompt_fixed_share", 0.0, 1.0),
        ("prompt_trim_target", 1e-6, 1.0),
    )
    ints = (("min_samples", 1), ("history_windows", 1), ("thompson_draws", 100))
    d = DecisionSettings()
    return [
        *(
            Validator(
                f"decisions.{n}", default=getattr(d, n), is_type_of=(int, float), gte=lo, lte=hi
            )
            for n, lo, hi in floats
        ),
        *(
            Validator(f"decisions.{n}", default=getattr(d, n), is_type_of=int, gte=lo)
            for n, lo in ints
        ),
        Validator(
            "decisions.batching_max_size", default=d.batching_max_size, is_type_of=int, gte=2
        ),
        Validator("decisions.prompt_rewrite", default=False, is_type_of=bool),
    ]


def _url_rule(key: str, default: str, schemes: tuple[str, ...], what: str) -> Validator:
    return Validator(
        key,
        default=default,
        condition=_is_url(schemes),
        messages={"condition": f"{{name}} must be {what} but it is {{value!r}} in env {{env}}"},
    )


def _integration_validators() -> list[Validator]:
    """URLs, names and counts of ``integrations.*`` (durations are checked generically)."""
    d = IntegrationSettings()
    https = ("http", "https")
    return [
        Validator("integrations.enabled", default=True, is_type_of=bool),
        Validator(
            "integrations.slack_webhook_url",
            default="",
            condition=lambda v: v == "" or (isinstance(v, str) and urlsplit(v).scheme in https),
            messages={
                "condition": "{name} must be an https:// Slack webhook URL (empty: off) "
                "but it is another value in env {env}"  # never echo the secret URL
            },
        ),
        _url_rule("integrations.jira_base_url", "", https, "an https:// Jira site (empty: off)"),
        _url_rule("integrations.github_api_url", d.github_api_url, https, "an https:// API root"),
        _url_rule(
            "integrations.anthropic_base_url", d.anthropic_base_url, https, "an https:// API root"
        ),
        _url_rule("integrations.link_base_url", "", https, "an http(s):// URL (empty: no links)"),
        Validator(
            "integrations.github_repo",
            default="",
            condition=lambda v: isinstance(v, str) and (v == "" or v.count("/") == 1),
            messages={"condition": "{name} must be owner/name but it is {value!r} in env {env}"},
        ),
        *(
            Validator(f"integrations.{n}", default=getattr(d, n), is_type_of=str)
            for n in (
                "jira_email",
                "jira_project",
                "jira_issue_type",
                "github_config_path",
                "github_branch",
                "anthropic_model",
            )
        ),
        *(
            Validator(
                f"integrations.{n}",
                default="",
                condition=lambda v: isinstance(v, str),
                messages={  # never echo a secret
                    "condition": "{name} must be a string (quote it) but it is a "
                    "{value.__class__.__name__} in env {env}"
                },
            )
            for n in ("jira_api_token", "github_token", "anthropic_api_key")
        ),
        *(
            Validator(f"integrations.{n}", default=getattr(d, n), is_type_of=int, gte=1)
            for n in (
                "anthropic_max_tokens",
                "retry_attempts",
                "breaker_failure_threshold",
                "batch_size",
                "max_attempts",
            )
        ),
    ]


_VALIDATORS: list[Validator] = [
    Validator("log_level", default="INFO", is_in=LOG_LEVELS),
    Validator(
        "kafka.bootstrap_servers",
        default="",
        condition=_is_broker_list,
        messages={
            "condition": "{name} must be a comma-separated list of host:port "
            "(empty starts the embedded broker) but it is {value!r} in env {env}"
        },
    ),
    Validator("kafka.telemetry_topic", default="llm.telemetry", is_type_of=str, len_min=1),
    Validator("kafka.dlq_topic", default="llm.telemetry.dlq", is_type_of=str, len_min=1),
    Validator("kafka.tail", default=True, is_type_of=bool),
    Validator("kafka.partitions", default=3, is_type_of=int, gte=1, lte=1024),
    Validator(
        "kafka.max_message_bytes",
        default=MAX_RECORD_BYTES,
        is_type_of=int,
        gte=1024,
        lte=MAX_MESSAGE_BYTES_LIMIT,
    ),
    _port("kafka.embedded_port", 9092, lowest=0),
    Validator(
        "storage.database_url",
        default="",
        condition=_is_url(("postgresql", "postgresql+psycopg", "sqlite")),
        messages={
            "condition": "{name} must be a postgresql+psycopg:// or sqlite:/// URL (empty: SQLite "
            "under storage.data_dir) but it is {value!r} in env {env}"
        },
    ),
    Validator(
        "storage.redis_url",
        default="",
        condition=_is_url(("redis", "rediss", "unix")),
        messages={
            "condition": "{name} must be a redis:// URL (empty: in-process cache) "
            "but it is {value!r} in env {env}"
        },
    ),
    Validator("storage.data_dir", default="./var", is_type_of=str, len_min=1),
    _duration("processor.allowed_lateness", "30s", positive=False),
    Validator("processor.workers", default=1, is_type_of=int, gte=1, lte=256),
    Validator("processor.processes", default=1, is_type_of=int, gte=1, lte=256),
    Validator("processor.recovery", default=True, is_type_of=bool),
    Validator("processor.migrate_on_start", default=True, is_type_of=bool),
    Validator("processor.recovery_dir", default="", is_type_of=str),
    Validator("processor.recovery_partitions", default=1, is_type_of=int, gte=1, lte=1024),
    Validator("api.host", default="127.0.0.1", is_type_of=str, len_min=1),
    _port("api.port", 8080, lowest=0),
    Validator("api.workers", default=0, is_type_of=int, gte=0, lte=64),
    Validator("api.tls_cert_path", default="", is_type_of=str),
    Validator("api.tls_key_path", default="", is_type_of=str),
    Validator("api.bootstrap_admin_key", default="", is_type_of=str),
    Validator("api.jwt_algorithm", default="HS256", is_in=("HS256", "RS256")),
    Validator(
        "api.jwt_secret",
        default="",
        condition=lambda v: isinstance(v, str) and (v == "" or len(v.encode()) >= 32),
        messages={
            "condition": "{name} must be empty (no tokens) or at least 32 bytes long "
            "but it is a {value.__class__.__name__} of another length in env {env}"
        },
    ),
    Validator(
        "api.console_secret",
        default="",
        condition=lambda v: isinstance(v, str) and (v == "" or len(v.encode()) >= 32),
        messages={
            "condition": "{name} must be empty (a random key) or at least 32 bytes long "
            "but it is a {value.__class__.__name__} of another length in env {env}"
        },
    ),
    Validator("api.jwt_private_key_path", default="", is_type_of=str),
    Validator("api.jwt_public_key_path", default="", is_type_of=str),
    Validator("api.jwt_issuer", default="llmopt", is_type_of=str, len_min=1),
    Validator(
        "api.cors_origins",
        default=[],
        condition=lambda v: isinstance(v, list | tuple) and all(isinstance(o, str) for o in v),
        messages={"condition": "{name} must be a list of origins but it is {value!r} in env {env}"},
    ),
    Validator("api.rate_limit_per_s", default=1000.0, is_type_of=(int, float), gte=0),
    Validator("api.rate_limit_burst", default=2000, is_type_of=int, gte=1),
    Validator("api.anonymous_rate_limit_per_s", default=20.0, is_type_of=(int, float), gte=0),
    Validator("api.anonymous_rate_limit_burst", default=100, is_type_of=int, gte=1),
    Validator("api.rate_limit_prefix", default="llmopt:rl", is_type_of=str, len_min=1),
    Validator("api.max_body_bytes", default=10 * 1024 * 1024, is_type_of=int, gte=1024),
    Validator("api.max_batch_events", default=10_000, is_type_of=int, gte=1),
    _port("orchestrator.metrics_port", 9090, lowest=0),
    Validator("orchestrator.failure_threshold", default=3, is_type_of=int, gte=1, lte=100),
    Validator("orchestrator.max_restarts", default=3, is_type_of=int, gte=0, lte=100),
    Validator("orchestrator.log_format", default="auto", is_in=("auto", "json", "console")),
    Validator("orchestrator.otlp_endpoint", default="", condition=_is_url(("http", "https"))),
    Validator("orchestrator.supervise_processor", default=True, is_type_of=bool),
    _port("orchestrator.bytewax_api_port", 0, lowest=0),
    Validator(
        "orchestrator.processor_endpoints",
        default=[],
        condition=lambda v: isinstance(v, list | tuple) and all(_is_broker_list(e) for e in v),
        messages={
            "condition": "{name} must be a list of host:port but it is {value!r} in env {env}"
        },
    ),
    Validator("collector.enabled", default=True, is_type_of=bool),
    Validator("collector.host", default="127.0.0.1", is_type_of=str, len_min=1),
    _port("collector.http_port", 4318, lowest=0),
    _port("collector.grpc_port", 4317, lowest=0),
    Validator("collector.spill_dir", default="", is_type_of=str),
    *(
        Validator(f"collector.{name}", default=default, is_type_of=int, gte=lowest)
        for name, default, lowest in (
            ("max_request_bytes", 16 * 1024 * 1024, 1024),
            ("source_burst", 40_000, 1),
            ("global_burst", 200_000, 1),
            ("queue_high_watermark", 50_000, 1),
            ("queue_low_watermark", 25_000, 0),
            ("breaker_failure_threshold", 3, 1),
            ("linger_ms", 5, 0),
            ("spill_max_bytes", 1024 * 1024 * 1024, 1024),
            ("spill_segment_bytes", 8 * 1024 * 1024, 1024),
        )
    ),
    Validator("collector.source_rate", default=20_000.0, is_type_of=(int, float), gte=0),
    Validator("collector.global_rate", default=100_000.0, is_type_of=(int, float), gte=0),
    *(
        Validator(f"{section}.{f.name}", default=f.default, is_type_of=(int, float), gte=0)
        for section, cls in (
            ("analyzers", AnalyzerSettings),
            ("budgets", BudgetSettings),
            ("canary", CanarySettings),
        )
        for f in fields(cls)
        if isinstance(f.default, int | float) and not isinstance(f.default, bool)
    ),
    Validator(
        "canary.stages",
        default=list(CanarySettings().stages),
        condition=_is_stage_list,
        messages={
            "condition": "{name} must be a list of increasing weights in (0, 1) (a trailing 1.0 "
            "is allowed and means promotion) but it is {value!r} in env {env}"
        },
    ),
    *_decision_validators(),
    *_integration_validators(),
    Validator("grpc.enabled", default=True, is_type_of=bool),
    Validator("grpc.host", default="127.0.0.1", is_type_of=str, len_min=1),
    _port("grpc.port", 50051, lowest=0),
    *(
        Validator(f"grpc.{n}", default="", is_type_of=str)
        for n in ("tls_cert_path", "tls_key_path", "tls_client_ca_path")
    ),
    *(
        Validator(f"grpc.{n}", default=16 * 1024 * 1024, is_type_of=int, gte=1024)
        for n in ("max_receive_message_bytes", "max_send_message_bytes")
    ),
]


def _section(raw: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = raw.get(name) or {}
    return {str(k).lower(): v for k, v in value.items()}


def section_types() -> dict[str, type]:
    """The sections of :class:`Settings` (name → frozen dataclass), in declaration order.

    A new section is a frozen dataclass plus one field of :class:`Settings`; loading, duration
    parsing (every field whose default is a ``timedelta``), validation of those durations and
    :meth:`Settings.as_env` follow from that.
    """
    return {f.name: type(f.default) for f in fields(Settings) if f.name not in ("env", "log_level")}


def section_names() -> tuple[str, ...]:
    """The names of the settings sections."""
    return tuple(section_types())


def _field_default(f: Any) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return MISSING


def _typed(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """Turn raw values into the types of the dataclass defaults (durations, tuples)."""
    defaults = {f.name: _field_default(f) for f in fields(cls)}
    out: dict[str, Any] = {}
    for key, value in values.items():
        default = defaults[key]
        if isinstance(default, timedelta):
            value = parse_duration(value)
        elif isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        out[key] = value
    return out


def _plain(value: Any) -> Any:
    """JSON-ready form of a settings value (dataclasses inside mappings and sequences)."""
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _duration_validators(explicit: list[Validator]) -> list[Validator]:
    """A duration validator for every timedelta field that has no explicit validator."""
    named = {str(name) for v in explicit for name in v.names}
    out = []
    for section, cls in section_types().items():
        for f in fields(cls):
            key = f"{section}.{f.name}"
            default = _field_default(f)
            if key not in named and isinstance(default, timedelta):
                out.append(_duration(key, f"{default.total_seconds()}s"))
    return out


def _known(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in values.items() if k in names}


def load_settings(root: str | Path | None = None, *, environment: str | None = None) -> Settings:
    """Load, validate and freeze the settings.

    Args:
        root: Folder holding ``settings.toml`` and ``.secrets.toml`` (default: the working dir).
        environment: ``development``, ``production`` …; default from ``LLMOPT_ENV``, else
            ``development``.

    Returns:
        The frozen settings.

    Raises:
        ConfigurationError: When a value breaks a rule; the message names key, value and rule.
    """
    base = Path(root) if root is not None else Path.cwd()
    kwargs: dict[str, Any] = {}
    if environment is not None:
        kwargs["env"] = environment
    raw = Dynaconf(
        envvar_prefix=ENV_PREFIX,
        settings_files=[str(base / "settings.toml"), str(base / ".secrets.toml")],
        environments=True,
        env_switcher=f"{ENV_PREFIX}_ENV",
        default_env="default",
        merge_enabled=True,
        **kwargs,
    )
    raw.validators.register(*_VALIDATORS, *_duration_validators(_VALIDATORS))
    try:
        raw.validators.validate_all()
    except ValidationError as exc:
        raise ConfigurationError(f"invalid settings: {exc}") from exc
    data = {str(k).lower(): v for k, v in raw.as_dict().items()}
    _check_retired(data)
    sections: dict[str, Any] = {}
    for name, cls in section_types().items():
        values = _known(cls, _section(data, name))
        if name == "processor":
            values["prices"] = _prices(values.get("prices") or {})
        sections[name] = cls(**_typed(cls, values))
    settings = Settings(
        env=str(raw.current_env).lower(),
        log_level=str(data.get("log_level", "INFO")),
        **sections,
    )
    _check_relations(settings)
    return settings


# Keys that no longer exist, and what replaced them: setting one is an error, never ignored.
_RETIRED = {
    ("canary", "quality_tolerance"): "decisions.quality_tolerance (one tolerance for model "
    "selection, the judge and the plans)",
    ("canary", "max_stage_duration"): "canary.max_rollout_duration (weights are planned from "
    "the evidence; a rollout without a verdict this long is rolled back)",
}


def _check_retired(data: Mapping[str, Any]) -> None:
    for (section, key), instead in _RETIRED.items():
        if key in _section(data, section):
            raise ConfigurationError(
                f"invalid settings: {section}.{key} was retired; set {instead} instead"
            )


def _prices(raw: Mapping[str, Any]) -> dict[str, ModelPrice]:
    out: dict[str, ModelPrice] = {}
    for model, value in raw.items():
        fields_ = {str(k).lower(): v for k, v in (value or {}).items()}
        try:
            price = ModelPrice(**fields_)
            values = [price.input_per_mtok, price.output_per_mtok, price.cache_read_per_mtok]
            if not all(v is None or (isinstance(v, int | float) and v >= 0) for v in values):
                raise TypeError("prices must be numbers >= 0")
        except TypeError as exc:
            raise ConfigurationError(
                f"invalid settings: processor.prices.{model} must be a table of "
                "input_per_mtok, output_per_mtok (and optional cache_read_per_mtok), numbers >= 0, "
                f"but it is {value!r} ({exc})"
            ) from exc
        out[str(model)] = price
    return out


def _check_relations(settings: Settings) -> None:
    p = settings.processor
    if p.sliding_step > p.sliding_window:
        raise ConfigurationError(
            "invalid settings: processor.sliding_step must not exceed processor.sliding_window "
            f"but it is {p.sliding_step} > {p.sliding_window}"
        )
    c = settings.collector
    if c.queue_low_watermark >= c.queue_high_watermark:
        raise ConfigurationError(
            "invalid settings: collector.queue_low_watermark must be below "
            f"collector.queue_high_watermark but it is {c.queue_low_watermark} >= "
            f"{c.queue_high_watermark}"
        )
    a = settings.api
    if a.jwt_algorithm == "RS256" and not a.jwt_public_key_path:
        raise ConfigurationError(
            "invalid settings: api.jwt_public_key_path must name a PEM file when "
            "api.jwt_algorithm is RS256 but it is empty"
        )
    if a.workers > 1 and not settings.storage.redis_url:
        raise ConfigurationError(
            f"invalid settings: api.workers must be 0 or 1 without storage.redis_url but it is "
            f"{a.workers} (each worker would enforce its own rate limits and cache its own configs)"
        )
    if bool(a.tls_cert_path) != bool(a.tls_key_path):
        raise ConfigurationError(
            "invalid settings: api.tls_cert_path and api.tls_key_path must be set together "
            f"but they are {a.tls_cert_path!r} and {a.tls_key_path!r}"
        )
    _check_integrations(settings.integrations)
    canary = settings.canary
    for key, value, ok, rule in (
        ("alpha", canary.alpha, 0 < canary.alpha <= 0.5, "within (0, 0.5]"),
        ("risk_budget", canary.risk_budget, 0 < canary.risk_budget <= 1, "within (0, 1]"),
        ("shadow_share", canary.shadow_share, 0 <= canary.shadow_share <= 1, "within [0, 1]"),
    ):
        if not ok:
            raise ConfigurationError(
                f"invalid settings: canary.{key} must be {rule} but it is {value!r}"
            )
    if not settings.canary.holdback < 1:
        raise ConfigurationError(
            "invalid settings: canary.holdback must be below 1 (a share of calls) "
            f"but it is {settings.canary.holdback!r}"
        )
    if settings.kafka.telemetry_topic == settings.kafka.dlq_topic:
        raise ConfigurationError(
            "invalid settings: kafka.dlq_topic must differ from kafka.telemetry_topic "
            f"but both are {settings.kafka.dlq_topic!r}"
        )


def _check_integrations(i: IntegrationSettings) -> None:
    jira = {
        "jira_email": i.jira_email,
        "jira_api_token": i.jira_api_token,
        "jira_project": i.jira_project,
    }
    missing = [k for k, v in jira.items() if not v]
    if i.jira_base_url and missing:
        raise ConfigurationError(
            f"invalid settings: integrations.{missing[0]} must be set when "
            "integrations.jira_base_url is set but it is empty"
        )
    if i.github_token and not i.github_repo:
        raise ConfigurationError(
            "invalid settings: integrations.github_repo must be owner/name when "
            "integrations.github_token is set but it is empty"
        )
    if i.outbox_retry_interval > i.outbox_max_retry_interval:
        raise ConfigurationError(
            "invalid settings: integrations.outbox_retry_interval must not exceed "
            "integrations.outbox_max_retry_interval but it is "
            f"{i.outbox_retry_interval} > {i.outbox_max_retry_interval}"
        )
