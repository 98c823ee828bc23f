"""Keeping secrets (webhook URLs, tokens) out of reprs and log lines.

:class:`Secret` holds a value whose ``repr`` and ``str`` are masked. :func:`register_secret` also
teaches a filter on the ``httpx`` logger to mask it, because httpx logs each request's full URL at
INFO, and a Slack webhook URL *is* its credential.
"""

from __future__ import annotations

import logging
import threading

__all__ = ["MASK", "Secret", "redact", "register_secret"]

MASK = "***"

_lock = threading.Lock()
_secrets: set[str] = set()


class Secret:
    """A secret value that does not show itself in ``repr``, ``str`` or f-strings.

    Args:
        value: The secret; read it back with :meth:`reveal` where it is used, and nowhere else.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret value."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def register_secret(value: str) -> None:
    """Mask ``value`` in every record of the ``httpx`` and ``httpcore`` loggers from now on.

    Args:
        value: A secret string (at least 8 characters; shorter ones are too common to mask).
    """
    if len(value) < 8:
        return
    with _lock:
        _secrets.add(value)
    _install_filter()


def redact(text: str, extra: tuple[str, ...] = ()) -> str:
    """Mask every registered secret (and each of ``extra``) in ``text``.

    Args:
        text: Text that may contain a secret.
        extra: More secret strings to mask in this text only (empty ones are ignored).

    Returns:
        ``text`` with each secret replaced by ``***``.
    """
    with _lock:
        secrets = [*_secrets, *(s for s in extra if s)]
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


class _RedactSecrets(logging.Filter):
    """Renders a record's message with the registered secrets masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        with _lock:
            empty = not _secrets
        if not empty:
            try:
                message = record.getMessage()
            except (TypeError, ValueError):  # a malformed record: let logging report it
                return True
            masked = redact(message)
            if masked != message:
                record.msg, record.args = masked, None
        return True


_filter = _RedactSecrets()


def _install_filter() -> None:
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        if _filter not in logger.filters:
            logger.addFilter(_filter)
