"""Room learned online around what the profiles predict.

`Margin`: the room a critical task's predicted remaining time is given.

`aaron` sizes a critical stage by its slack: the fewest threads whose predicted time to the end of
the frame, times this margin, still ends by the deadline. Predictions are medians of what was
profiled; what they cannot see (stages granted beside it later, the tail) is what the margin
covers. It widens sharply after a miss, a little after a near miss (a frame ending in the last
tenth of its deadline), and narrows slowly after frames with room to spare.

`Tail`: how much longer than its profiled 95th percentile a stage runs live. A profile is taken
on a quiet machine; live, the frame source, the decisions and the thread hand-offs share the
cores, and a stage on all of them waits for the slowest of its threads. On the reference machine
a two-thread stage alone ran up to 2x its profiled tail (`aaron` reads it when it checks whether a
full-size critical frame would push normal frames out of their queues).
"""
from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass, field

START, FLOOR, CEILING = 1.25, 1.05, 4.0
WIDEN, NEAR_WIDEN, NARROW = 1.5, 1.1, 0.98
NEAR = 0.9  # of the deadline used: a near miss


@dataclass
class Margin:
    factor: float = START

    def observe(self, used: float | None) -> None:
        """One critical frame ended: `used` is its latency over its deadline, None when it missed
        without finishing (dropped as too late)."""
        if used is None or used > 1.0:
            step = WIDEN
        elif used > NEAR:
            step = NEAR_WIDEN
        else:
            step = NARROW
        self.factor = min(CEILING, max(FLOOR, self.factor * step))


TAIL_QUANTILE, TAIL_WINDOW = 0.95, 64


@dataclass
class Tail:
    """The 95th percentile of the latest ratios of a live stage time over its profiled tail, and
    never below 1 (the profile's own tail). A few stages are enough to start: until the window
    fills, it is close to the longest seen."""

    factor: float = 1.0
    window: deque = field(default_factory=lambda: deque(maxlen=TAIL_WINDOW))  # in arrival order
    ranked: list[float] = field(default_factory=list)  # the same ratios, sorted

    def observe(self, ratio: float) -> None:
        if len(self.window) == TAIL_WINDOW:
            self.ranked.remove(self.window[0])  # the append below drops it from the window
        self.window.append(ratio)
        bisect.insort(self.ranked, ratio)
        self.factor = max(1.0, self.ranked[int(TAIL_QUANTILE * (len(self.ranked) - 1))])
