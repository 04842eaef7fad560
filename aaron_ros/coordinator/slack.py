"""The room a critical task's predicted remaining time is given: a margin learned online.

`aaron` sizes a critical stage by its slack: the fewest threads whose predicted time to the end of
the frame, times this margin, still ends by the deadline. Predictions are medians of what was
profiled; what they cannot see (stages granted beside it later, the tail) is what the margin
covers. It widens sharply after a miss, a little after a near miss (a frame ending in the last
tenth of its deadline), and narrows slowly after frames with room to spare.
"""
from __future__ import annotations

from dataclasses import dataclass

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
