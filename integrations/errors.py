"""Errors of the integrations package (Slack, Jira, GitHub, Anthropic clients).

They derive from :class:`core.errors.OptimizerError`, the optimizer's one exception root. Their
messages never carry a secret: no webhook URL, no token, no response body that could echo one.
"""

from __future__ import annotations

from core.errors import OptimizerError

__all__ = ["IntegrationError"]


class IntegrationError(OptimizerError):
    """An outside service could not be reached, kept failing, or refused the request.

    Attributes:
        target: Which integration failed (``"slack"``, ``"jira"``...).
        attempts: How many requests were made before giving up (0: the breaker was open).
        status: The last HTTP status seen, or ``None`` when no response arrived.
        reason: A short, secret-free reason (an exception type, an error code, the service's
            own error message with secrets masked).
        retry_after: Seconds the service (or the breaker) asked to wait before the next try.
    """

    def __init__(
        self,
        target: str,
        reason: str,
        *,
        attempts: int,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.target = target
        self.reason = reason
        self.attempts = attempts
        self.status = status
        self.retry_after = retry_after
        if status is None:
            message = f"{target}: gave up after {attempts} attempt(s): {reason}"
        else:
            message = f"{target}: HTTP {status} after {attempts} attempt(s): {reason}"
        super().__init__(message)

    @property
    def transient(self) -> bool:
        """Whether trying again later may succeed.

        True without an answer, for 408, 409, 425, 429 and 5xx, and whenever the service (or an
        open breaker) said how long to wait (e.g. GitHub's rate-limit 403).
        """
        if self.status is None or self.retry_after is not None:
            return True
        return self.status in (408, 409, 425, 429) or self.status >= 500
