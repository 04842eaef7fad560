"""Work that must not hold a process for ever."""
from __future__ import annotations

import threading
from collections.abc import Callable


def finished_within(fn: Callable[[], object], seconds: float, name: str = "bounded") -> bool:
    """Run `fn` on a daemon thread and wait for it at most `seconds`: False when it has not ended
    by then. It is left running, so the caller should leave without it (e.g. `os._exit`): a DDS
    participant's teardown can hang for ever (eProsima/Fast-DDS#6066 with TCP transports)."""
    thread = threading.Thread(target=fn, name=name, daemon=True)
    thread.start()
    thread.join(seconds)
    return not thread.is_alive()
