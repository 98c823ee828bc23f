"""A fleet of simulated LLM applications that closes the optimizer's loop (``llmopt simulate``).

Ground-truth profiles per (app, task, model) (:mod:`.profiles`), Gaussian or binary quality
(:mod:`.binary`, the seeded fleet of :mod:`.binary_fleet`), shadow evaluation
(:mod:`.shadow`); calls routed by the application SDK (:mod:`llmopt_client`) to the active
config or its canary (:mod:`.fleet`); configs read over REST or from the config
manager (:mod:`.sources`); telemetry to Kafka, REST or in-process (:mod:`.sinks`, :mod:`.loop`);
a report against the oracle (:mod:`.report`).
"""

from llmopt_client.split import bucket, serves_canary

from simulator.binary import correct, score_correlation
from simulator.binary_fleet import binary_fleet
from simulator.fleet import Fleet
from simulator.ledger import ConfigChange, Ledger
from simulator.loop import InProcessOptimizer
from simulator.otlp import OtlpSink
from simulator.profiles import (
    Burst,
    Incident,
    ModelProfile,
    Scenario,
    TaskProfile,
    load_scenario,
)
from simulator.report import Report, build_report, rollouts_from_db, rollouts_from_rest
from simulator.run import Simulation, WallClockPacer, default_start
from simulator.scenarios import SCENARIOS
from simulator.sinks import CallbackSink, KafkaSink, ListSink, RestSink
from simulator.sources import (
    ConfigSource,
    ManagerConfigSource,
    RestConfigSource,
    StaticConfigSource,
)

__all__ = [
    "SCENARIOS",
    "Burst",
    "CallbackSink",
    "ConfigChange",
    "ConfigSource",
    "Fleet",
    "InProcessOptimizer",
    "Incident",
    "KafkaSink",
    "Ledger",
    "ListSink",
    "ManagerConfigSource",
    "ModelProfile",
    "OtlpSink",
    "Report",
    "RestConfigSource",
    "RestSink",
    "Scenario",
    "Simulation",
    "StaticConfigSource",
    "TaskProfile",
    "WallClockPacer",
    "binary_fleet",
    "bucket",
    "build_report",
    "correct",
    "default_start",
    "load_scenario",
    "rollouts_from_db",
    "rollouts_from_rest",
    "score_correlation",
    "serves_canary",
]
