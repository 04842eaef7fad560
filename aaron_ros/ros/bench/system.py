"""The system under test and the harness around it: the container (`aaron-ros run` on the
parameter file) in a process of its own, the camera in another, the monitor here; and one replay
of the bag, measured (`BenchSystem.replay`)."""
from __future__ import annotations

import logging
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rclpy.time import Time

from aaron_ros.bench.driver import RunResult
from aaron_ros.common.bounded import DUMP_STACKS, DUMP_WAIT_S
from aaron_ros.common.cpu import HELPER, MAIN_THREAD, cpu_by_role, thread_cpu
from aaron_ros.coordinator.live import CLOCK_THREAD
from aaron_ros.coordinator.timing import FramePart
from aaron_ros.coordinator.types import JobRecord, Outcome
from aaron_ros.msg import CoordinatorStatus, FrameOutcome
from aaron_ros.ros.bench.monitor import FrameTiming, Monitor, SystemClient, collection_paused
from aaron_ros.ros.bench.playback import WAIT_MATCHED_S, CameraProcess, Played
from aaron_ros.ros.config import CONTAINER_NODE, COORDINATOR_NODE, ContainerConfig, load_config
from aaron_ros.ros.container import UP
from aaron_ros.ros.coordinator_node import STATUS_TOPIC
from aaron_ros.ros.params import in_root
from aaron_ros.ros.probe import Seen, ports_held, probe
from aaron_ros.ros.run import SHUTDOWN_S

log = logging.getLogger(__name__)

# Waiting for the last frames of a replay to end and their results to be heard.
SETTLE_TIMEOUT_S = 30.0
QUIET_S = 0.3  # the counters unchanged for this long after the player ended: no frame is coming
START_TIMEOUT_S = 300.0  # for the container to load its models and report
UNHEARD_S = 15.0  # for its first status to be heard once it says it is up (it sends 2 a second)
NEW_NODE_S = 15.0  # for a new node of the bench's to hear it (a pair discovers each other in about 1 s)
# For the container to stop after SIGINT: its drain, then its own bound on the DDS teardown.
STOP_TIMEOUT_S = SHUTDOWN_S + 5.0
# The status the bench settles its counters on. Each costs the container about 1 ms of CPU: at
# 10 Hz that was 0.1 ms per frame of the very figure the bench reports.
STATUS_RATE_HZ = 2.0
OUTCOMES = {FrameOutcome.OUTCOME_DONE: Outcome.DONE, FrameOutcome.OUTCOME_DROPPED: Outcome.DROPPED,
            FrameOutcome.OUTCOME_FAILED: Outcome.FAILED}


@dataclass
class Heard:
    """What one replay of the bag measured beside the coordinator's records (`RunResult.extra`;
    the result's `seconds` are from the player's start, after its lead-in, to its last frame).
    The timings, records and counters are of the frames stamped after the lead-in; the CPU
    figures are of the whole play, lead-in included, as is `host_cpu_s`, the frames' conversion
    and post-processing."""

    timings: dict[str, list[FrameTiming]]
    # per task: frames, lead_in, received, received_play, rate_limited, rejected, lost, results, converted, shared
    counters: dict[str, dict[str, int]]
    frames: int  # published by the player after its lead-in
    unsettled: dict[str, int] = field(default_factory=dict)  # frames counted dropped after the timeout
    cpu_s: dict[str, float] = field(default_factory=dict)  # the container's CPU seconds by thread role
    stages_cpu_s: float = 0.0  # the lane threads' CPU seconds in the frames' stages (their outcomes say)
    coordinator_cpu_s: float = 0.0  # the coordinator's decisions and bookkeeping, on the executor and lanes
    host_cpu_s: float = 0.0


def fed_components(config: ContainerConfig, topics: Sequence[str]) -> dict[str, bool]:
    """Per component, whether a camera on `topics` feeds it: one on a topic the bag does not hold
    gets no frame. The container runs in the root namespace, where `x` and `/x` are one name."""
    played = {in_root(t) for t in topics}
    return {c.name: in_root(c.image_topic) in played for c in config.components}


def thread_role(name: str) -> str:
    """Which part of the running system a thread of the container's process is (`thread_cpu`)."""
    if name.startswith("dds."):
        return "dds"
    if name.endswith(HELPER):
        return "other"  # the models' intra-op threads, named after the lane that started them
    if name == MAIN_THREAD:
        return "executor"  # spins the container's executor
    if name == CLOCK_THREAD:
        return "clock"  # the coordinator's timers; its decisions run on the thread an event happens on
    if name.startswith("lane-"):
        return "lanes"
    if name.startswith("results-"):
        return "results"  # a component's results thread, publishing
    return "other"  # the runtime's own threads


def config_with(config: Path, changes: Mapping[str, Mapping[str, Any]], path: Path) -> Path:
    """The parameter file with `changes` (node -> parameters) set in each node's section, written
    to `path`. The `/**` sections go first, so a node's own section wins over them."""
    data = yaml.safe_load(Path(config).read_text()) or {}
    for node, values in changes.items():
        key = next((k for k in data if str(k).lstrip("/") == node), node)
        data.setdefault(key, {}).setdefault("ros__parameters", {}).update(values)
    ordered = {k: v for k, v in data.items() if str(k).startswith("/*")}
    path.write_text(yaml.safe_dump(ordered | data, sort_keys=False))
    return path


def single_component_config(config: Path, component: str, out_dir: Path) -> Path:
    """The parameter file with only `component` in the container (its other sections kept)."""
    return config_with(config, {CONTAINER_NODE: {"components": [component]}},
                       Path(out_dir) / f"{Path(config).stem}_{component}_alone.yaml")


class ContainerProcess:
    """The system under test: `aaron-ros run` on a parameter file in a process of its own, as
    `ros2 launch` would start it, with the coordinator's trace topics and a faster status on.
    Its output goes to `log`, in `log_dir` (read back when it fails)."""

    def __init__(self, config: Path, workdir: Path, domain_id: int, coordinator: Mapping[str, Any],
                 log_dir: Path | None = None):
        trace = {"publish_outcomes": True, "status_rate_hz": STATUS_RATE_HZ}
        self.config = config_with(config, {COORDINATOR_NODE: {**trace, **coordinator}},
                                  workdir / f"{config.stem}_under_test.yaml")
        self.log = new_log(Path(log_dir or workdir), f"{config.stem}_container")
        with self.log.open("w") as out:
            out.write(f"--- aaron-ros run {self.config.name} on ROS domain {domain_id}, started "
                      f"{time.strftime('%H:%M:%S')} ---\n")
            out.flush()
            self.proc = subprocess.Popen([sys.executable, "-m", "aaron_ros.cli", "run", str(self.config),
                                          "--no-table"], stdout=out, stderr=subprocess.STDOUT,
                                         env={**os.environ, "ROS_DOMAIN_ID": str(domain_id)})

    @property
    def pid(self) -> int:
        return self.proc.pid

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:].strip()

    def check(self) -> None:
        """Raise if it has exited."""
        if self.proc.poll() is not None:
            raise RuntimeError(f"the container ({self.config.name}) exited with code {self.proc.returncode}:\n"
                               f"{self.tail()}\n(its whole output: {self.log})")

    def up(self) -> bool:
        """Has it said it takes frames?"""
        return UP in self.log.read_text(errors="replace")

    def dump_stacks(self) -> None:
        """Have it write every thread's stack into its log (it goes on running)."""
        if self.proc.poll() is None:
            self.proc.send_signal(DUMP_STACKS)
            time.sleep(DUMP_WAIT_S)

    def stop(self) -> None:
        """Ctrl-C, as an operator stops it; killed, its stacks in its log, if it has not ended in time."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.dump_stacks()
                log.warning("bench: the container did not stop within %g s of SIGINT; killed (its threads' stacks "
                            "are at the end of %s)", STOP_TIMEOUT_S, self.log)
                self.proc.kill()
                self.proc.wait()


def new_log(folder: Path, stem: str) -> Path:
    """`folder/stem.log`, or `stem_2.log`, `stem_3.log`, ... where that is taken: a log is never
    overwritten."""
    folder.mkdir(parents=True, exist_ok=True)
    path, n = folder / f"{stem}.log", 1
    while path.exists():
        n += 1
        path = folder / f"{stem}_{n}.log"
    return path


def _submitted(counters: Mapping[str, int]) -> int:
    """Frames a component handed to the coordinator (it numbers them 0, 1, ... in that order)."""
    return counters["received"] - counters["rate_limited"] - counters["rejected"]


def _measured_counters(delta: Mapping[str, int], played: Played, submitted: int, submitted_lead: int,
                       results_lead: int) -> dict[str, int]:
    """A task's counters over the frames after the lead-in, from its component's counters over the
    whole play (`delta`) and the frames it submitted in each part (their outcomes carry the stamp).
    A lead-in frame not submitted counts as rate-limited there, as far as the play's rate-limited
    frames go: so a frame lost or rejected in the lead-in counts in the measured part, never the
    other way. Converted, shared and received_play (the CPU's frames) are the whole play's.
    Without a lead-in, `delta` as it is."""
    rate_limited_lead = min(delta["rate_limited"], max(0, played.lead_in - submitted_lead))
    rate_limited = delta["rate_limited"] - rate_limited_lead
    received = submitted + rate_limited + delta["rejected"]
    return {"frames": played.frames, "lead_in": played.lead_in, "received": received,
            "received_play": delta["received"], "rate_limited": rate_limited, "rejected": delta["rejected"],
            "lost": max(0, played.frames - received),
            "results": delta["published"] - results_lead, "converted": delta["converted"], "shared": delta["shared"]}


def _record(o: FrameOutcome) -> JobRecord:
    """A frame's end as the coordinator's record (times in s on the node's clock)."""
    release = Time.from_msg(o.release).nanoseconds / 1e9
    return JobRecord(o.task, o.frame, release, OUTCOMES[o.outcome],
                     finished=None if math.isnan(o.latency_ms) else release + o.latency_ms / 1e3,
                     started=None if math.isnan(o.queueing_ms) else release + o.queueing_ms / 1e3,
                     error=o.error or None, versions=tuple(o.versions))


class ContainerSilent(TimeoutError):
    """The container ran, and the bench heard no status from it (`BenchSystem._first_status`)."""


class DomainShared(RuntimeError):
    """Another container answers on the bench's domain (`BenchSystem`)."""


class BenchSystem:
    """The container in a process of its own (from the parameter file), the bag player in
    another, and the bench's node on its own executor thread here: the bench reaches the container
    only over its topics and its service."""

    def __init__(self, config: Path, bag: Path, workdir: Path, policy: str | None = None,
                 versions: str | None = None, kernel_bag_dir: str | None = None, domain_id: int | None = None,
                 lead_in_s: float = 0.0, log_dir: Path | None = None):
        self.config = load_config(config)
        self.tasks = [c.name for c in self.config.components]
        coordinator = {k: v for k, v in (("policy", policy), ("versions", versions),
                                         ("kernel_bag_dir", kernel_bag_dir)) if v}
        self.container: ContainerProcess | None = None
        self._results = {c.name: c.result_topic for c in self.config.components}
        self.monitor = Monitor(self._results, domain_id)
        try:
            domain = self.monitor.domain if domain_id is None else domain_id
            self.container = ContainerProcess(Path(config), workdir, domain, coordinator, log_dir)
            status = self._first_status(config, domain)
            heard = {s.task for s in status.tasks}
            if foreign := sorted(heard - set(self.tasks)):
                raise DomainShared(f"{config}: the status heard on ROS domain {domain} is another container's: it "
                                   f"names task(s) {foreign} that this file has not. Another system runs on the "
                                   "domain; stop it, or unset ROS_DOMAIN_ID for a domain of the bench's own")
            missing = [t for t in self.tasks if t not in heard]
            if missing:
                raise RuntimeError(f"{config}: component(s) {missing} failed to load:\n{self.container.tail()}")
            self.status = status
            end = time.monotonic() + WAIT_MATCHED_S
            while not self.client.results_matched() and time.monotonic() < end:
                time.sleep(0.01)
            if not self.client.results_matched():
                log.warning("bench monitor: not every result topic matched after %g s", WAIT_MATCHED_S)
            self.camera = CameraProcess(bag, self.config.params_for("bag_player"), domain, lead_in_s,
                                        new_log(Path(log_dir or workdir), f"{Path(config).stem}_player"))
        except BaseException:
            self.close()
            raise
        self._fed = fed_components(self.config, self.camera.topics)

    def _first_status(self, config: Path, domain: int) -> CoordinatorStatus:
        """The container's first status, once it has loaded its models. Where none is heard within
        UNHEARD_S of its saying it is up, DDS discovery between it and the bench's node never
        happened. If a fresh participant in a process of its own hears the container, the bench's
        node alone is deaf (as seen in `results/ros_bench/container_starts_cpu2_amd_epyc/`): it is
        replaced once. Otherwise, or if the new one hears nothing either, or if none is heard
        within START_TIMEOUT_S of its start, ContainerSilent (as when another socket held the
        domain's discovery port: aaron_ros/ros/domain.py)."""
        start = time.monotonic()
        up_at = None
        renewed, limit = False, UNHEARD_S
        while True:
            try:
                status = self.client.status(timeout=1.0, alive=self.container.check)
                if renewed:
                    log.warning("bench: the bench's new node heard the container's status %.0f s after it was "
                                "made", time.monotonic() - self.monitor.started)
                return status
            except TimeoutError:
                now = time.monotonic()
                if up_at is None and self.container.up():
                    up_at = now
                if up_at is not None and now - up_at >= limit:
                    why = (f"said it was up {up_at - start:.0f} s after its start, and no status on {STATUS_TOPIC} "
                           f"was heard in the {now - up_at:.0f} s since")
                elif now - start >= START_TIMEOUT_S:
                    why = f"neither said it was up nor sent a status on {STATUS_TOPIC} in {now - start:.0f} s"
                else:
                    continue
            # Which side is deaf: what a third participant sees, and who holds the discovery port.
            seen, fresh = self.monitor.seen(), probe(domain, STATUS_TOPIC)
            ports = ports_held(domain, {self.container.pid: "the container", os.getpid(): "the bench"})
            whose = "a new node of the bench's (the first heard nothing either)" if renewed else "the bench's node"
            # Whether it heard the fresh node (gone, but not yet forgotten): deaf to all, or to the container only.
            said = (f"{whose} sees {seen}; a fresh node on the domain sees {fresh}; then the bench's node sees "
                    f"{self.monitor.seen()}; {ports}")
            deaf = self.client.count_publishers(STATUS_TOPIC) == 0 and isinstance(fresh, Seen) and fresh.publishers
            if deaf and not renewed:
                # Only the bench's node is deaf (a pair of participants that never matched): a new one.
                log.warning("bench: the container on ROS domain %d %s (%s): the bench's node, %.0f s old, is "
                            "replaced by a new one", domain, why, said, now - self.monitor.started)
                self.monitor.close()
                self.monitor = Monitor(self._results, domain)
                renewed, up_at, limit = True, time.monotonic(), NEW_NODE_S
                continue
            self.container.dump_stacks()
            raise ContainerSilent(
                f"{config}: the container on ROS domain {domain} {why} ({said}); its output, its threads' stacks at "
                f"the end: {self.container.log}")

    @property
    def client(self) -> SystemClient:
        return self.monitor.client

    def _matched(self) -> bool:
        """Does every component fed by the bag hear the player's publisher (its own status says)?"""
        status = self.client.status(alive=self.container.check)
        return all(t.input_publishers >= 1 for t in status.tasks if self._fed.get(t.task))

    def _alive(self) -> None:
        self.container.check()
        time.sleep(0.02)

    def replay(self, policy: str, versions: str, timeout_s: float = SETTLE_TIMEOUT_S) -> RunResult:
        """Switch to `policy`, play the bag once and wait for every frame's end and result."""
        self.client.switch(policy, versions)
        before, coordinator_before = self.client.counts(alive=self.container.check)
        # A component numbers the frames it submits 0, 1, ...: this replay's are from `first` on.
        first = {n: _submitted(c) for n, c in before.items()}
        self.client.take()
        cpu_before = thread_cpu(self.container.pid)
        with collection_paused():
            # One subscriber per topic: the container's components on a topic share one subscription.
            played = self.camera.play(1, self._matched, self._alive)
            last_change, seen = time.monotonic(), None
            give_up = time.monotonic() + timeout_s
            while True:
                now = time.monotonic()
                counters, coordinator_cpu_s = self.client.counts(now, alive=self.container.check)
                if counters != seen:
                    last_change, seen = now, counters
                settled = now - last_change >= QUIET_S and all(
                    ended >= _submitted(c) - first[n] and heard >= c["published"] - before[n]["published"]
                    for n, c in counters.items() for ended, heard in [self.client.count(n, first[n])])
                if settled or now >= give_up:
                    break
        after, cpu_s = seen, cpu_by_role(cpu_before, thread_cpu(self.container.pid), thread_role)
        heard, outcomes = self.client.take()
        heard = {n: [t for t in heard.get(n, []) if t.frame >= first[n]] for n in self.tasks}  # this replay's

        # This replay's frames: from `first` on, up to what the components had handed over at the end.
        ours = [o for o in outcomes if o.task in first and first[o.task] <= o.frame < _submitted(after[o.task])]
        # Measured: stamped from the first frame after the lead-in on (a frame that never ended counts).
        start_ns = played.measured_from_ns
        lead = {(o.task, o.frame) for o in ours if Time.from_msg(o.stamp).nanoseconds < start_ns}
        unsettled: dict[str, int] = {}
        out_records: list[JobRecord] = []
        counters: dict[str, dict[str, int]] = {}
        for n in self.tasks:
            end = _submitted(after[n])
            mine = {o.frame: _record(o) for o in ours if o.task == n}
            missing = [f for f in range(first[n], end) if f not in mine]
            if missing:  # not ended within the timeout: a frame that never came out is a miss
                unsettled[n] = len(missing)
                log.warning("%s under %s: %d frame(s) still unfinished after %.0f s, counted as dropped",
                            n, policy, len(missing), timeout_s)
                mine.update({f: JobRecord(n, f, float("nan"), Outcome.DROPPED, error="unfinished at the end "
                                          "of the replay") for f in missing})
            measured = [mine[f] for f in sorted(mine) if (n, f) not in lead]
            out_records += measured
            delta = {k: after[n][k] - before[n][k] for k in ("received", "rate_limited", "rejected", "published",
                                                              "converted", "shared")}
            counters[n] = _measured_counters(delta, played if self._fed[n] else Played(0, 0.0), len(measured),
                                             len(mine) - len(measured),
                                             sum(1 for t in heard[n] if t.stamp_ns < start_ns))
        timings = {n: sorted((t for t in heard[n] if t.stamp_ns >= start_ns), key=lambda t: t.frame)
                   for n in self.tasks}
        # The CPU is the whole play's: so is the host work it is split by.
        host_cpu_s = sum(t.parts[part].cpu_s for ts in heard.values() for t in ts
                         for part in (FramePart.CONVERSION, FramePart.POST) if part in t.parts)
        return RunResult(out_records, [us for o in ours if (o.task, o.frame) not in lead for us in o.decision_us],
                         played.seconds,
                         Heard(timings, counters, played.frames, unsettled, cpu_s,
                               sum(ms for o in ours for ms in o.stage_cpu_ms) / 1e3,
                               coordinator_cpu_s - coordinator_before, host_cpu_s))

    def close(self) -> None:
        camera = getattr(self, "camera", None)
        if camera is not None:
            camera.close()
        if self.container is not None:
            self.container.stop()
        self.monitor.close()

    def __enter__(self) -> BenchSystem:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
