"""Work that must not hold a process for ever."""
from __future__ import annotations

import faulthandler
import signal
import sys
import threading
from collections.abc import Callable
from typing import TextIO

# `kill -USR1 PID` has an aaron-ros process write every thread's stack to stderr, and go on: how one
# stuck in a call that never returns (a model load, a DDS participant) says where it is.
DUMP_STACKS = signal.SIGUSR1
DUMP_WAIT_S = 1.0  # for a process sent DUMP_STACKS to have written them


def dump_stacks_on_signal(out: TextIO | None = None) -> None:
    """From now on DUMP_STACKS writes the stacks to `out` (default: the process's own stderr, not
    one a caller swapped in, which may have no file number)."""
    out = out or sys.__stderr__
    if out is not None:
        faulthandler.register(DUMP_STACKS, file=out, all_threads=True)


def finished_within(fn: Callable[[], object], seconds: float, name: str = "bounded") -> bool:
    """Run `fn` on a daemon thread and wait for it at most `seconds`: False when it has not ended
    by then. It is left running, so the caller should leave without it (e.g. `os._exit`): a DDS
    participant's teardown can hang for ever (eProsima/Fast-DDS#6066 with TCP transports)."""
    thread = threading.Thread(target=fn, name=name, daemon=True)
    thread.start()
    thread.join(seconds)
    return not thread.is_alive()
