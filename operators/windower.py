"""Window assignment: which tumbling and sliding windows hold a time bucket.

Every window start and end is a multiple of the bucket width (the gcd of the tumbling length and
the sliding step), so a call is stored once, in its bucket, however many windows hold it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from enum import IntEnum
from typing import Literal, NamedTuple

import numpy as np

from core.call_batch import I64
from core.settings import ProcessorSettings

__all__ = ["Window", "WindowKind", "WindowSpec"]


class WindowKind(IntEnum):
    """The two kinds of window (ints in recovery snapshots of earlier releases)."""

    TUMBLING = 0
    SLIDING = 1

    @property
    def label(self) -> Literal["tumbling", "sliding"]:
        """The name the contract's window records carry."""
        return "tumbling" if self is WindowKind.TUMBLING else "sliding"


class Window(NamedTuple):
    """One window: its kind and its event-time span [start, end) in epoch ms."""

    kind: WindowKind
    start: int
    end: int


def _ms(value: timedelta) -> int:
    return round(value.total_seconds() * 1000)


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """Window geometry and time limits, in milliseconds."""

    tumbling: int
    sliding: int
    step: int
    lateness: int
    feedback_join: int
    dedup_ttl: timedelta

    @property
    def bucket(self) -> int:
        """Bucket width: every window start and end is a multiple of it."""
        return math.gcd(self.tumbling, self.step)

    @property
    def retention(self) -> int:
        """How long behind the watermark buckets stay, for corrections and feedback."""
        return max(self.tumbling, self.sliding) + max(self.feedback_join, self.lateness)

    @staticmethod
    def from_settings(p: ProcessorSettings) -> WindowSpec:
        """The spec of the processor settings."""
        return WindowSpec(
            tumbling=_ms(p.tumbling_window),
            sliding=_ms(p.sliding_window),
            step=_ms(p.sliding_step),
            lateness=_ms(p.allowed_lateness),
            feedback_join=_ms(p.feedback_join_window),
            dedup_ttl=p.dedup_ttl,
        )

    def windows_of_bucket(self, index: int) -> list[Window]:
        """Every window that holds bucket ``index``: its tumbling one, then the sliding ones."""
        start = index * self.bucket
        t_start = start - start % self.tumbling
        out = [Window(WindowKind.TUMBLING, t_start, t_start + self.tumbling)]
        end = start - start % self.step + self.step
        while end - self.sliding <= start:
            out.append(Window(WindowKind.SLIDING, end - self.sliding, end))
            end += self.step
        return out

    def earliest_start(self, index: int) -> int:
        """Earliest start of the windows holding bucket ``index``."""
        return min(w.start for w in self.windows_of_bucket(index))

    def earliest_starts(self, index: I64) -> I64:
        """:meth:`earliest_start` of each bucket of ``index`` (vectorised)."""
        start = index * self.bucket
        tumbling = start - start % self.tumbling
        sliding = start - start % self.step + self.step - self.sliding
        result: I64 = np.minimum(tumbling, sliding)
        return result

    def tumbling_end(self, index: int) -> int:
        """End of the tumbling window holding bucket ``index``."""
        start = index * self.bucket
        return start - start % self.tumbling + self.tumbling
