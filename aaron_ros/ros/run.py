"""`aaron-ros run`: the container without the launch system, with a live per-task table."""
from __future__ import annotations

import math
import os
import signal
import sys
from pathlib import Path

from aaron_ros.common.bounded import finished_within
from aaron_ros.common.report import fmt, pct, text_table
from aaron_ros.coordinator.timing import PHASES, phase_ms
from aaron_ros.ros.container import Container, ContainerOptions
from aaron_ros.ros.coordinator_node import ERROR, WARN, not_loaded
from aaron_ros.ros.perception import RECENT_FRAMES
from aaron_ros.ros.record import image_topics


def _lost(container: Container, t) -> int:
    """Frames a publisher of the task's input sent that it never received: counted exactly where the
    container's own source published them, else from the gaps in DDS's sample numbers."""
    published = container.published_on().get(getattr(container.components.get(t.task), "input_topic", None))
    return t.lost if published is None else max(t.lost, published - t.received)


def _unaccounted(t) -> int:
    """Frames received that ended in no count of the ledger (still served, while running)."""
    return t.received - t.rejected - t.rate_limited - t.dropped - t.failed - t.published


def _health(tasks) -> str:
    """A line for each task that is not OK, with why."""
    levels = {WARN: "WARN", ERROR: "ERROR"}
    return "".join(f"\n{levels[t.level]} {t.task}: {t.message}" for t in tasks if t.level in levels)


def _not_loaded_row(t, columns: int) -> tuple:
    """A task whose component failed to load: its name, then dashes (why is said under the table)."""
    return (t.task, "not loaded", *["-"] * (columns - 2))


def _unconfigured(container: Container) -> str:
    return (f"{container.node.get_fully_qualified_name()} is {container.state}: no models loaded (a lifecycle "
            "manager configures and activates it)")


def status_table(container: Container) -> str:
    """Per task: latency, misses and rate over the status window; frame counts since the start."""
    if container.coordinator is None:
        return _unconfigured(container)
    svc = container.coordinator.service
    window = f"{svc.options.status_window_s:g} s"
    head = ("task", "model", "criticality", "deadline", f"p50 ms ({window})", f"p99 ms ({window})",
            f"{'/'.join(PHASES)} ms", f"miss ({window})", f"fps ({window})", "received", "done", "dropped",
            "failed", "rejected", "rate-limited", "lost")
    rows, tasks, snap = [], container.coordinator.task_statuses(), svc.snapshot()
    for t in tasks:
        if not_loaded(t):
            rows.append(_not_loaded_row(t, len(head)))
            continue
        recent = list(getattr(container.components.get(t.task), "recent", ()))
        phases = "/".join(f"{v:.1f}" for v in phase_ms(recent).values()) if recent else "-"
        # No frame ended in the window: no latency or miss rate to show (the status message carries 0).
        quiet = math.isnan(snap.get(t.task, {}).get("miss_rate", math.nan))
        p50, p99, miss = ("-", "-", "-") if quiet else (f"{t.p50_ms:.1f}", f"{t.p99_ms:.1f}", f"{t.miss_rate:.1%}")
        rows.append((t.task, t.model, t.criticality, f"{t.deadline_ms:g}", p50, p99,
                     phases, miss, f"{t.fps:.1f}", t.received, t.published, t.dropped, t.failed,
                     t.rejected, t.rate_limited, _lost(container, t)))
    return (f"policy {svc.policy_name} (versions {svc.versions}), lanes {', '.join(svc.lanes)}; "
            f"latency, misses and fps over the last {window}, frames since the start; in/wait/model/out: a "
            f"result's mean time coming in, waiting, in the model and going out (last {RECENT_FRAMES} results)\n"
            + text_table(head, rows, left=3) + _health(tasks))


def _failures(container: Container, tasks) -> str:
    """A line for each task that failed frames over the run, with its latest failure."""
    lines = []
    for t in tasks:
        if t.failed:
            last = getattr(getattr(container.components.get(t.task), "failures", None), "last", "")
            lines.append(f"\nERROR {t.task}: {t.failed} frame(s) failed" + (f", the latest: {last}" if last else ""))
    return "".join(lines)


def summary_table(container: Container) -> str:
    """Per task, over the whole run: latency, misses, rate, and how every frame received ended."""
    if container.coordinator is None:
        return _unconfigured(container)
    svc = container.coordinator.service
    snap, rows, tasks = svc.snapshot(), [], container.coordinator.task_statuses()
    seconds = max((m["run"]["seconds"] for m in snap.values() if not math.isnan(m["run"]["seconds"])), default=None)
    span = "no frame ended" if seconds is None else f"frames ended over {seconds:.1f} s"
    head = ("task", "model", "criticality", "deadline", "p50 ms", "p99 ms", "miss", "fps", "received",
            "on time", "late", "dropped", "failed", "rejected", "rate-limited", "unaccounted", "lost")
    for t in tasks:
        if not_loaded(t):
            rows.append(_not_loaded_row(t, len(head)))
            continue
        run = snap[t.task]["run"]
        deadline = "->".join(f"{d:g}" for d in svc.deadlines[t.task])  # each in force in turn, when set live
        rows.append((t.task, t.model, t.criticality, deadline, fmt(run["p50_ms"]),
                     fmt(run["p99_ms"]), pct(run["miss_rate"]), fmt(run["fps"]), t.received,
                     t.published - t.late, t.late, t.dropped, t.failed, t.rejected, t.rate_limited,
                     _unaccounted(t), _lost(container, t)))
    return (f"whole run ({span}), policy {'->'.join(svc.policies)}: "
            "every frame received is on time or late (published), dropped, failed, rejected or rate-limited, and "
            "unaccounted shows any that is none of them; lost: sent by a publisher of its input but never "
            "received\n" + text_table(head, rows, left=3) + _failures(container, tasks)
            + _health([t for t in tasks if not_loaded(t) or t.received == 0]))


# For the container's drain (2 s) and its DDS teardown, which can hang (see finished_within).
SHUTDOWN_S = 10.0


def run(config: str | Path, bag: str | None = None, duration_s: float | None = None, policy: str | None = None,
        table: bool = True, camera: str | None = None, ros_args: list[str] | None = None) -> int:
    stop_asked: list[int] = []
    container: Container | None = None

    def on_signal(signum, frame) -> None:
        stop_asked.append(signum)
        if len(stop_asked) > 1:  # asked again while stopping: leave now, without the drain
            print(f"signal {signum} again: leaving without waiting for the drain", file=sys.stderr, flush=True)
            os._exit(128 + signum)
        if container is not None:
            container.request_stop()
        else:  # still loading: stop now, with the shell's code (130 for Ctrl-C, 143 for SIGTERM)
            raise SystemExit(128 + signum)

    if bag:
        image_topics(bag)  # a missing bag, or one without images, is said now, before any model loads
    if camera and not camera.isdigit() and "://" not in camera and not Path(camera).exists():
        raise ValueError(f"--camera {camera}: no such file (give a camera index, a video file or a stream URL)")
    # Handlers first: a signal while the models load must still end the run cleanly.
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        container = Container(ContainerOptions(Path(config), bag=bag or None, camera=camera or None,
                                               policy=policy or None, ros_args=list(ros_args or [])))
        if stop_asked:
            container.request_stop()
        shown = [0]  # lines of the last table drawn, to redraw it in place

        def draw(c: Container) -> None:
            text = status_table(c)
            if sys.stdout.isatty() and shown[0]:
                sys.stdout.write(f"\x1b[{shown[0]}F\x1b[J")  # back to the table's first line, clear below
            sys.stdout.write(text + "\n")
            sys.stdout.flush()
            shown[0] = text.count("\n") + 1 if sys.stdout.isatty() else 0

        tick = 1.0 if sys.stdout.isatty() else 5.0  # a log file gets a table every 5 s
        try:
            container.spin(duration_s, on_tick=draw if table else None, tick_s=tick)
        finally:
            if not finished_within(container.shutdown, SHUTDOWN_S, "container-shutdown"):
                print(f"the container did not shut down within {SHUTDOWN_S:g} s (a DDS participant's teardown); "
                      "leaving without it", file=sys.stderr, flush=True)
                print(summary_table(container), flush=True)
                os._exit(0)
    finally:
        # Once a signal asked to stop, the process is ending: a second one must still leave at
        # once, not raise into the interpreter's teardown (it died of SIGINT, code -2).
        for s, h in previous.items() if not stop_asked else ():
            signal.signal(s, h)
    print(summary_table(container), flush=True)  # also after a run without the live table
    if stop_asked:
        return 128 + stop_asked[0]  # stopped by a signal: the shell's code for it
    lost = [c.name for c in container.config.components if c.name in container.failed and c.criticality == "critical"]
    statuses = container.coordinator.task_statuses() if container.coordinator is not None else []
    deaf = [t.task for t in statuses if t.criticality == "critical" and not not_loaded(t) and t.received == 0]
    if deaf:  # said, not failed: a container launched before its camera hears nothing either
        print(f"critical component(s) received no frame: {', '.join(deaf)}", file=sys.stderr, flush=True)
    if lost:  # the others served, but a robot must not take this run for a good one
        print(f"critical component(s) not loaded: {', '.join(lost)}", file=sys.stderr, flush=True)
        return 1
    return 0
