"""Fault injectors for the container, not components to use: component classes whose own code
raises (as a user's component with a bug would), on every image or in a timer."""
from __future__ import annotations

from aaron_ros.ros.perception import PerceptionComponent


class BrokenCallback(PerceptionComponent):
    def _take(self, got) -> None:
        raise RuntimeError("injected fault: this component's callback raises")


class RaisingTimer(PerceptionComponent):
    """A component with a timer whose callback raises every 0.2 s."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.create_timer(0.2, self._tick)

    def _tick(self) -> None:
        raise RuntimeError("injected fault: this component's timer raises")
