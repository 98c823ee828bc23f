"""The rollout domain: config versions, canaries, their judged stages, rollback, prompt rewrites.

Used by the actuator sink (``sinks.actuator``) and the API alike; below both. Modules:
``config_manager`` (versioned, audited, published configs), ``canary_controller`` (a decision
becomes a canary config and a deployment; approval and rejection), ``sides`` (which calls are
baseline, canary or holdback), ``policy`` (the pure rollout state machine: a period's judgement
and the transition it leads to), ``stages`` (one period persisted: totals, verdict, transition),
``rollback`` (back to the config before the change), ``prompt_rewrite`` (rewrites before the
canary starts).
"""

from rollout.canary_controller import approve_decision, reject_decision, start_canary
from rollout.config_manager import ConfigManager, config_channel, encode_config
from rollout.rollback import rollback_deployment

__all__ = [
    "ConfigManager",
    "approve_decision",
    "config_channel",
    "encode_config",
    "reject_decision",
    "rollback_deployment",
    "start_canary",
]
