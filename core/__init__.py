"""What every service shares: settings, telemetry events, window-stats types, errors."""

from core.call_batch import CallBatch
from core.errors import (
    ConfigurationError,
    NotFoundError,
    OptimizerError,
    StorageUnavailableError,
    ValidationError,
)
from core.events import Event, Feedback, LlmCall, Rejection, decode_event, decode_records
from core.settings import Settings, load_settings
from core.stats import StrayEvent, WindowKey, WindowStats

__all__ = [
    "CallBatch",
    "ConfigurationError",
    "Event",
    "Feedback",
    "LlmCall",
    "NotFoundError",
    "OptimizerError",
    "Rejection",
    "Settings",
    "StorageUnavailableError",
    "StrayEvent",
    "ValidationError",
    "WindowKey",
    "WindowStats",
    "decode_event",
    "decode_records",
    "load_settings",
]
