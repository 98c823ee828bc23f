"""Errors of the integrations package (Slack, Jira, GitHub, Anthropic clients).

They derive from :class:`core.errors.OptimizerError`, the optimizer's one exception root. Their
messages never carry a secret: no webhook URL, no token, no response body that could echo one.
"""

from __future__ import annotations

from core.errors import OptimizerError

__all__ = ["IntegrationError"]


class IntegrationError(OptimizerError):
    """An outside service could not be reached or kept failing after the retries.

    Attributes:
        target: Which integration failed (``"slack"``, ``"jira"``...).
        attempts: How many requests were made before giving up.
        status: The last HTTP status seen, or ``None`` when no response arrived.
        reason: A short, secret-free reason (an exception type or an error code).
    """

    def __init__(
        self, target: str, reason: str, *, attempts: int, status: int | None = None
    ) -> None:
        self.target = target
        self.reason = reason
        self.attempts = attempts
        self.status = status
        super().__init__(f"{target}: gave up after {attempts} attempt(s): {reason}")
