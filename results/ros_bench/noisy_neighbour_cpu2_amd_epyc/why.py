"""Why `aaron` drops normal frames beside the neighbour: one container (`config/f1tenth.yaml`,
`aaron`) run in this process, two plays of the bag (each after a 1-s lead-in) from a process of
its own. The coordinator's decisions and `aaron`'s sizing of critical stages are wrapped to count
(a probe, not a fault: what they decide is unchanged). From the repository's root, alone and
beside `neighbour.py 20 30`:

    FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA PYTHONPATH=. \\
        .venv/bin/python results/ros_bench/noisy_neighbour_cpu2_amd_epyc/why.py

Printed after the container's own table:
- what ran while the normal frames that were dropped waited (from release to drop), beside the
  share of the whole run (`det2`: the detector on two threads; `seg1 + sig1`: one each);
- per stage of the detector, why it ran at its size: sized down by its slack, at full size as no
  normal frame would be lost, or at full size as no smaller version fits the deadline (with a
  normal frame lost at the critical frame's profiled tail, or only in its live tail, where the fit
  weighs the live tail too); and where none fitted, the figures the fit weighed (medians): the
  learned margin, the live tail factors.
"""
import bisect
import collections
import os
import signal
import statistics
import subprocess
import sys
import threading
import time

from aaron_ros.coordinator import coordinator as coord_mod
from aaron_ros.coordinator.policies.aaron import Aaron
from aaron_ros.ros.run import run

PLAYS = 2
timeline: list[tuple[float, tuple[str, ...]]] = []  # after each decision: what runs
drops: list[tuple[float, float]] = []  # (release, dropped) of the normal frames dropped
why: collections.Counter = collections.Counter()  # (stage, reason)
weighed: list[tuple[float, float, float]] = []  # no fit: (margin, tail at 1 thread, tail at 2)
asked: list[bool] = []  # what _normal_loses answered within one sizing

normal_loses, size_critical = Aaron._normal_loses, Aaron._size_critical
schedule, record = coord_mod.Coordinator.schedule, coord_mod.Coordinator._record


def counted_normal_loses(view, normal, until):
    asked.append(normal_loses(view, normal, until))
    return asked[-1]


def counted_size_critical(view, req, co, lanes, normal):
    asked.clear()
    full = view.choose(req, co, max_lanes=lanes)
    v = size_critical(view, req, co, lanes, normal)
    if v.shape.threads < full.shape.threads:
        reason = "sized down by its slack"
    elif full.shape.threads == 1 or not asked:
        reason = "full size is one thread, or an unknown time"
    elif not any(asked):
        reason = "full size: no normal frame lost"
    else:
        reason = "full size: no smaller version fits " + (
            "(a normal frame lost at the profiled tail)" if asked[0] else "(a normal frame lost in the live tail only)")
        weighed.append((view.margins.get(req.job.task.name, 1.0), view.tails.get(1, 1.0), view.tails.get(2, 1.0)))
    why[req.stage, reason] += 1
    return v


def traced_schedule(self, now):
    grants = schedule(self, now)
    timeline.append((now, tuple(sorted(f"{g.request.job.task.name[:3]}{g.version.shape.threads}"
                                       for g in self.running_grants()))))
    return grants


def traced_record(self, job, outcome, now, error=None):
    if outcome == "dropped" and not job.task.critical:
        drops.append((job.release, now))
    return record(self, job, outcome, now, error)


Aaron._normal_loses = staticmethod(counted_normal_loses)
Aaron._size_critical = staticmethod(counted_size_critical)
coord_mod.Coordinator.schedule = traced_schedule
coord_mod.Coordinator._record = traced_record


def play_then_stop() -> None:
    time.sleep(12.0)  # the models load
    for _ in range(PLAYS):
        subprocess.run([sys.executable, "-m", "aaron_ros.cli", "play", "data/sample_bag", "--lead-in", "1",
                        "--wait-subscribers", "3"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGINT)


threading.Thread(target=play_then_stop, daemon=True).start()
try:
    run("config/f1tenth.yaml", table=False)
except SystemExit:
    pass

starts = [t for t, _ in timeline]


def shares(a: float, b: float, into: collections.Counter) -> None:
    """Add the time each set of running stages held within [a, b)."""
    i = max(0, bisect.bisect_right(starts, a) - 1)
    while i < len(timeline) and timeline[i][0] < b:
        end = timeline[i + 1][0] if i + 1 < len(timeline) else b
        into[timeline[i][1]] += max(0.0, min(b, end) - max(a, timeline[i][0]))
        i += 1


waited, whole = collections.Counter(), collections.Counter()
for release, dropped in drops:
    shares(release, dropped, waited)
shares(starts[0], starts[-1], whole)
print(f"\n{len(drops)} normal frames dropped. What ran while they waited, and over the whole run:")
for k in sorted(set(waited) | set(whole), key=lambda k: (-waited[k], -whole[k]))[:8]:
    print(f"  {' + '.join(k) or 'nothing':14} {100 * waited[k] / max(1e-9, sum(waited.values())):5.1f}%"
          f"  {100 * whole[k] / sum(whole.values()):5.1f}%")
print("\nThe detector's stages, by why they ran at their size:")
for (stage, reason), n in sorted(why.items()):
    print(f"  stage {stage}: {reason:86} {n:4}")
if weighed:
    margin, tail1, tail2 = (statistics.median(x) for x in zip(*weighed))
    print(f"Where no smaller version fitted (medians): margin {margin:.2f}, live tail over profiled "
          f"{tail1:.2f} at one thread, {tail2:.2f} at two")
