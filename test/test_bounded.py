"""Work bounded in time: a teardown that hangs does not hold the process."""
from __future__ import annotations

import threading
import time

from aaron_ros.common.bounded import finished_within


def test_work_that_ends_in_time_is_waited_for():
    done = []
    assert finished_within(lambda: done.append(1), 5.0)
    assert done == [1]


def test_work_that_hangs_is_left_behind():
    release = threading.Event()  # an injected fault: a teardown that never returns on its own
    start = time.monotonic()
    assert not finished_within(release.wait, 0.2, "stuck")
    assert time.monotonic() - start < 2.0
    assert any(t.name == "stuck" and t.daemon for t in threading.enumerate())
    release.set()
