"""How a node says a fault that may repeat on every frame: the first of each kind in full, with
where it was raised, then one line at most every few seconds, so that the log neither floods nor
hides the cause."""
from __future__ import annotations

from aaron_ros.coordinator.live import describe_failure

LOG_THROTTLE_S = 5.0


class FailureLog:
    def __init__(self, logger, throttle_s: float = LOG_THROTTLE_S):
        self._logger, self._throttle_s = logger, throttle_s
        self._seen: set[str] = set()
        self.count = 0
        self.last = ""  # the latest failure's first line (for diagnostics)

    def __call__(self, what: str, error: BaseException | str) -> None:
        """`what` failed with `error`: an exception, or an error text whose first line says what
        it is and whose other lines say where (`coordinator.live.describe_failure`)."""
        text = describe_failure(error) if isinstance(error, BaseException) else error
        first, _, where = text.strip().partition("\n")
        self.count += 1
        self.last = first
        kind = first.split(":", 1)[0] + (where.strip().splitlines() or [""])[-1]
        if kind not in self._seen:  # a new kind of fault: in full, once
            self._seen.add(kind)
            self._logger.error(f"{what} failed: {first}" + (f"\n{where}" if where else ""))
        else:
            self._logger.error(f"{what} failed: {first} ({self.count} failures so far)",
                               throttle_duration_sec=self._throttle_s)
