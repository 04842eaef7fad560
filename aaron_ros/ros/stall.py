"""Where the container is when it stops serving.

A run once gave no result for 10 s under load and the cause was never found. A thread of its own
watches the container: when the executor has not turned for STALL_S, or frames arrive and for
STALL_S none is published, failed or refused (rejected, rate-limited), it says so and writes every
thread's stack to stderr, once per stall. `kill -USR1 <pid>` writes them on demand
(`aaron-ros` answers it from its start, while the models load too).
"""
from __future__ import annotations

import faulthandler
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

from aaron_ros.common.bounded import dump_stacks_on_signal

STALL_S = 8.0  # above the 5 s the loop may wait for a bag's subscribers
CHECK_S = 0.5


class StallWatch:
    """`progress()` gives (frames received, frames ended) over all components; `beat()` is called
    by the executor's loop each turn."""

    def __init__(self, progress: Callable[[], tuple[int, int]], stall_s: float = STALL_S,
                 out: TextIO | None = None) -> None:
        self._progress, self.stall_s, self._out = progress, stall_s, out or sys.stderr
        self._beat = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.stalls: list[str] = []  # what each stall was, as said

    def beat(self) -> None:
        self._beat = time.monotonic()

    def start(self) -> None:
        if threading.current_thread() is threading.main_thread():
            dump_stacks_on_signal(self._out)
        self._thread = threading.Thread(target=self._watch, name="stall_watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _watch(self) -> None:
        received, ended = self._progress()
        ended_at, stalled = time.monotonic(), False
        while not self._stop.wait(CHECK_S):
            now = time.monotonic()
            got, done = self._progress()
            if done != ended or got == received:  # frames end, or none arrives: no stall of frames
                received, ended, ended_at = got, done, now
            why = None
            if now - self._beat > self.stall_s:
                why = f"the executor has not turned for {now - self._beat:.1f} s"
            elif now - ended_at > self.stall_s:
                why = (f"{got - received} frame(s) arrived in {now - ended_at:.1f} s and none was published, "
                       "failed or refused")
            if why and not stalled:
                self.stalls.append(why)
                print(f"stalled: {why}; every thread's stack follows", file=self._out, flush=True)
                faulthandler.dump_traceback(file=self._out, all_threads=True)
            stalled = why is not None
