"""The stall watch: says once, with every thread's stack, when frames arrive and none ends, or the
executor stops turning; says nothing while frames end or none arrives."""
from __future__ import annotations

import threading
import time

from aaron_ros.ros.stall import CHECK_S, StallWatch

STALL_S = 2 * CHECK_S


def watch_for(tmp_path, progress, seconds: float, beat: bool = True) -> tuple[StallWatch, str]:
    out = (tmp_path / "stderr").open("w+")
    watch = StallWatch(progress, stall_s=STALL_S, out=out)
    watch.start()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if beat:
            watch.beat()
        time.sleep(0.05)
    watch.stop()
    out.seek(0)
    return watch, out.read()


def test_frames_that_arrive_and_end_or_no_frames_at_all_are_no_stall(tmp_path):
    n = [0]

    def serving():
        n[0] += 1
        return n[0], n[0]  # one more received, one more ended, at every look
    watch, said = watch_for(tmp_path, serving, 3 * STALL_S)
    assert watch.stalls == [] and said == ""
    watch, said = watch_for(tmp_path, lambda: (7, 7), 3 * STALL_S)  # the camera is off: nothing to serve
    assert watch.stalls == [] and said == ""


def test_frames_that_arrive_and_never_end_are_said_once_with_every_threads_stack(tmp_path):
    n = [0]

    def stuck():
        n[0] += 1
        return n[0], 0  # frames keep arriving; none is published, failed or refused
    blocker = threading.Event()
    holder = threading.Thread(target=blocker.wait, name="stuck_lane", daemon=True)
    holder.start()
    watch, said = watch_for(tmp_path, stuck, 3 * STALL_S)
    blocker.set()
    assert len(watch.stalls) == 1 and "arrived in" in watch.stalls[0] and "none was published" in watch.stalls[0]
    assert said.count("stalled:") == 1 and "every thread's stack follows" in said
    assert "in wait" in said and "Current thread" in said  # the stuck thread's frames, and the watch's own


def test_an_executor_that_stops_turning_is_said(tmp_path):
    watch, said = watch_for(tmp_path, lambda: (0, 0), 3 * STALL_S, beat=False)
    assert len(watch.stalls) == 1 and watch.stalls[0].startswith("the executor has not turned for")
    assert "stalled: the executor has not turned" in said
