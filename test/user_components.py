"""Fault injectors for the container, not components to use: a component class whose own frame
handling raises on every image (as a user's component with a bug would)."""
from __future__ import annotations

from aaron_ros.ros.perception import PerceptionComponent


class BrokenCallback(PerceptionComponent):
    def _take(self, got) -> None:
        raise RuntimeError("injected fault: this component's callback raises")
