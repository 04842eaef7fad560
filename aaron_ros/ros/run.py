"""`aaron-ros run`: the container without the launch system, with a live per-task table."""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from aaron_ros.common.bounded import finished_within
from aaron_ros.common.report import text_table
from aaron_ros.coordinator.timing import PHASES, phase_ms
from aaron_ros.ros.container import Container, ContainerOptions
from aaron_ros.ros.perception import RECENT_FRAMES
from aaron_ros.ros.record import image_topics


def status_table(container: Container) -> str:
    """Per task: latency over the status window, misses, rate and frame counts since start."""
    svc = container.coordinator.service
    rows = []
    for t in container.coordinator.task_statuses():
        comp = container.components.get(t.task)
        recent = list(getattr(comp, "recent", ()))
        phases = "/".join(f"{v:.1f}" for v in phase_ms(recent).values()) if recent else "-"
        rows.append((t.task, t.model, t.criticality, f"{t.deadline_ms:g}", f"{t.p50_ms:.1f}", f"{t.p99_ms:.1f}",
                     phases, f"{t.miss_rate:.1%}", f"{t.fps:.1f}", t.completed, t.dropped, t.failed, t.rejected,
                     t.rate_limited))
    for name, why in container.failed.items():
        rows.append((name, "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", f"not loaded: {why[:60]}"))
    head = ("task", "model", "criticality", "deadline", "p50 ms", "p99 ms", f"{'/'.join(PHASES)} ms", "miss",
            "fps", "done", "dropped", "failed", "rejected", "rate-limited")
    return (f"policy {svc.policy_name} (versions {svc.versions}), lanes {', '.join(svc.lanes)}; "
            f"latency and fps over the last {svc.options.status_window_s:g} s; in/wait/model/out: a result's "
            f"mean time coming in, waiting, in the model and going out (last {RECENT_FRAMES} results)\n"
            + text_table(head, rows, left=3))


# For the container's drain (2 s) and its DDS teardown, which can hang (see finished_within).
SHUTDOWN_S = 10.0


def run(config: str | Path, bag: str | None = None, duration_s: float | None = None, policy: str | None = None,
        table: bool = True, camera: str | None = None, ros_args: list[str] | None = None) -> int:
    stop_asked: list[int] = []
    container: Container | None = None

    def on_signal(signum, frame) -> None:
        stop_asked.append(signum)
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
                print(status_table(container), flush=True)
                os._exit(0)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    print(status_table(container), flush=True)  # the summary, also after a run without the live table
    return 128 + stop_asked[0] if stop_asked else 0  # stopped by a signal: the shell's code for it
