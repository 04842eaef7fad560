"""The policy benchmark over the real ROS 2 system, measured from outside as ros2_benchmark does:
the container under test runs as `aaron-ros run` on the parameter file in a process of its own,
the bag is played into it by `aaron-ros play` in another (as a camera driver runs beside the
perception on a robot), and this process only listens and asks, over the container's topics and
its service, never by reaching into it.

For each policy (and versions setting), in the interleaved rounds of the bench driver
(`bench/driver.py`, shared with the core bench), the container is switched to it by
`/aaron/set_policy`, the bag is replayed once (frames stamped as they are published, as a live
camera's), and the run waits until every frame a component took has ended and every result has
been heard. Before each replay the player plays a lead-in (the CLI's `--lead-in`, 1 s) with no
pause between: a replay's first frames came slower after any pause in the stream, for every
policy, and a camera on a robot streams without one. Results and outcomes carry their image's
stamp, so the figures leave the lead-in's frames out; the CPU, read over the whole play, keeps
them. The bench's node hears:

- `/aaron/outcomes` (the coordinator's `publish_outcomes`): how each frame ended (done, dropped,
  failed) and its latency release to done, which is the `latency_ms` the component publishes, with
  its stages' lane CPU and its grants' decision times. These feed the same metrics and report as
  the core bench. (Batched at 10 Hz: the per-stage `/aaron/grants` trace, or a message per frame,
  would cost the container CPU that is part of what is measured.)
- every component's masks (`<result topic>/mask`, where a segmentation component publishes them),
  as a planner reads them: a component makes a mask only while a node reads it, and segmentation's
  product is its mask, so the container is measured making them.
- every component's result topic, as any subscriber would: per frame the end-to-end latency
  (receive time minus `header.stamp`, camera stamp to result heard), the node's `latency_ms`, and
  transport = end-to-end - latency_ms: image delivery in, the node's image conversion, result
  post-processing and delivery out. `input_delay_ms` (stamp to arrival at the node) splits off
  the way in; the result's `timing` says where the rest went.
- `/aaron/status` (at STATUS_RATE_HZ under the bench): the components' counters. They give what
  never reached the coordinator: frames above `max_rate_hz` (rate-limited, by design, not misses),
  bad images (rejected), and frames the player published that a component never received (lost
  by DDS). Every frame of the bag is accounted for per task:
  done + dropped + failed + rate-limited + rejected + lost = frames published.

The CPU the container's threads spent is read from its /proc/<pid> (`common/cpu.py`).

Isolation baseline: each task alone through the same path, a container from the same file with
only that component, the same bag, policy `priority` with solo versions (as the core bench's
isolation runs), so "alone" carries the same executor, conversion and DDS costs and gives an
end-to-end latency alone too. It runs before the policies, once per task.

`RosTarget` is this module's part of the driver's work: feed frames (a replay of the bag) and
collect how they ended; the end-to-end timings and frame counters ride in `RunResult.extra`
(a `Heard`) and add their keys to the report, and `save` adds the end-to-end section.
"""
from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import logging
import math
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import rclpy
import yaml
from matplotlib import colormaps
from matplotlib.figure import Figure
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rclpy.signals import SignalHandlerOptions
from rclpy.subscription import MessageInfo
from rclpy.time import Time
from sensor_msgs.msg import Image

from aaron_ros.bench.driver import (
    ISOLATION_POLICY,
    ISOLATION_VERSIONS,
    BenchTarget,
    RunResult,
    bench_entries,
    drive,
)
from aaron_ros.bench.policy_report import CPU_OUTSIDE, write_policy_report
from aaron_ros.bench.workload import Workload
from aaron_ros.common.cpu import HELPER, MAIN_THREAD, cpu_by_role, thread_cpu
from aaron_ros.common.report import fmt, md_table, pct, text_table
from aaron_ros.common.stats import percentiles
from aaron_ros.coordinator.coordinator import TOO_LATE
from aaron_ros.coordinator.live import CLOCK_THREAD
from aaron_ros.coordinator.metrics import worst
from aaron_ros.coordinator.timing import FramePart, PartTime, mean_parts
from aaron_ros.coordinator.types import JobRecord, Outcome, TaskSpec
from aaron_ros.msg import CoordinatorStatus, FrameOutcome, FrameOutcomes, InferenceResult
from aaron_ros.ros.bag_player import parse_remaps
from aaron_ros.ros.config import CONTAINER_NODE, COORDINATOR_NODE, load_config
from aaron_ros.ros.coordinator_node import (
    COUNTS,
    OUTCOMES_TOPIC,
    SET_POLICY_SERVICE,
    STATUS_TOPIC,
    TRACE_QOS,
)
from aaron_ros.ros.params import in_root
from aaron_ros.ros.record import IMAGE_TYPES, image_topics, open_reader
from aaron_ros.runtime.lanes import resolve_kind
from aaron_ros.srv import SetPolicy

log = logging.getLogger(__name__)

# Waiting for the last frames of a replay to end and their results to be heard.
SETTLE_TIMEOUT_S = 30.0
QUIET_S = 0.3  # the counters unchanged for this long after the player ended: no frame is coming
WAIT_MATCHED_S = 10.0  # for the components to match the bag player's publishers
START_TIMEOUT_S = 300.0  # for the container to load its models and report
STOP_TIMEOUT_S = 10.0  # for the container to stop after SIGINT
PLAYER_SLACK_S = 30.0
PLAYER_EXIT_S = 10.0  # for the player to exit once it said what it published (its teardown is bounded at 5 s)
MATCH_TRIES = 3  # players started, each given WAIT_MATCHED_S to be matched, before one plays anyway
# What `aaron-ros play` prints (its log lines, on the same stream, say it too, but rounded).
PLAYED = re.compile(r"^published (\d+) frames of .* in ([0-9.]+) s$", re.M)
LEAD_IN = re.compile(r"^lead-in of (\d+) frames; measured from stamp (\d+) ns$", re.M)
PRIVATE_DOMAINS = (150, 230)  # where the bench picks a domain of its own (Fast DDS takes 0-232)
# The status the bench settles its counters on. Each costs the container about 1 ms of CPU: at
# 10 Hz that was 0.1 ms per frame of the very figure the bench reports.
STATUS_RATE_HZ = 2.0
TAIL_SHARE = 0.01  # "the tail" of a task's results: its slowest 1% end to end, as its e2e p99 sees them
# A task's report keys: where its mean frame's time goes, and its tail's.
FRAME_TIME, FRAME_TIME_TAIL = "frame_time", "frame_time_tail"
OUTCOMES = {FrameOutcome.OUTCOME_DONE: Outcome.DONE, FrameOutcome.OUTCOME_DROPPED: Outcome.DROPPED,
            FrameOutcome.OUTCOME_FAILED: Outcome.FAILED}
TIMING_KEYS = ("e2e_p50_ms", "e2e_p99_ms", "transport_p50_ms", "transport_p99_ms",
               "input_delay_p50_ms", "input_delay_p99_ms")


@dataclass
class RosBenchOptions:
    bag: Path
    config: Path
    policies: list[str]
    versions: list[str] | None = None  # None: each policy's own default
    repeats: int = 2
    kernel_bag_dir: str | None = None  # None: the file's `kernel_bag_dir`
    isolation: bool = True
    lead_in_s: float = 0.0  # the bag played with no pause before each measured replay (the CLI's: 1 s)
    domain_id: int | None = None  # None: bench_domain()
    settle_timeout_s: float = SETTLE_TIMEOUT_S
    progress: bool = True

    def __post_init__(self) -> None:
        self.bag, self.config = Path(self.bag), Path(self.config)
        self._entries = bench_entries(self.policies, self.versions)  # checks names

    def entries(self) -> list[tuple[str, str, str]]:
        """(report key, policy, versions setting), as the core bench names them."""
        return self._entries


class FrameTiming(NamedTuple):
    """One result as the monitor heard it (ms)."""

    frame: int
    e2e_ms: float  # received - header.stamp
    latency_ms: float  # the node's own, release to done
    input_delay_ms: float  # header.stamp to arrival at the node
    stamp_ns: int  # header.stamp
    parts: dict[str, PartTime]  # where its time went, with the two parts only a subscriber sees

    @property
    def transport_ms(self) -> float:
        return self.e2e_ms - self.latency_ms


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


def bag_info(path: str | Path) -> tuple[int, float]:
    """(Image messages, frames per second) of a bag, from its index."""
    reader = open_reader(Path(path))
    try:
        conns = [c for c in reader.connections if c.msgtype in IMAGE_TYPES]
        n = sum(c.msgcount for c in conns)
        span_s = (reader.end_time - reader.start_time) / 1e9
    finally:
        reader.close()
    if not n:
        raise ValueError(f"bag {path} has no {' or '.join(IMAGE_TYPES)} message")
    per_topic = n / max(1, len(conns))
    # Rounded: stamps in whole nanoseconds make 10 fps read 9.99999999.
    return n, round((per_topic - 1) / span_s, 3) if per_topic > 1 and span_s > 0 else float("nan")


def slowest(timings: Sequence[FrameTiming]) -> list[FrameTiming]:
    """The tail: a task's slowest results end to end, the last TAIL_SHARE of them (at least one)."""
    n = math.ceil(len(timings) * TAIL_SHARE)
    return sorted(timings, key=lambda x: x.e2e_ms)[-n:] if n else []


def timing_metrics(timings: Sequence[FrameTiming]) -> dict:
    """End-to-end, transport and input-delay p50/p99 (ms) of a task's results."""
    out = {"e2e_samples": len(timings)}
    for name, values in (("e2e", [t.e2e_ms for t in timings]), ("transport", [t.transport_ms for t in timings]),
                         ("input_delay", [t.input_delay_ms for t in timings])):
        out[f"{name}_p50_ms"], out[f"{name}_p99_ms"] = percentiles(values, [50, 99])
    return out


# --- the running system ---------------------------------------------------------------------

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
    Its output goes to `log` (read back when it fails)."""

    def __init__(self, config: Path, workdir: Path, domain_id: int, coordinator: Mapping[str, Any]):
        trace = {"publish_outcomes": True, "status_rate_hz": STATUS_RATE_HZ}
        self.config = config_with(config, {COORDINATOR_NODE: {**trace, **coordinator}},
                                  workdir / f"{config.stem}_under_test.yaml")
        self.log = workdir / f"{config.stem}_container.log"
        with self.log.open("w") as out:
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
                               f"{self.tail()}")

    def stop(self) -> None:
        """Ctrl-C, as an operator stops it; killed if it has not ended in time."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log.warning("bench: the container did not stop within %g s of SIGINT; killed", STOP_TIMEOUT_S)
                self.proc.kill()
                self.proc.wait()


class SystemClient(Node):
    """The bench's node: it hears the container's status, frame outcomes and every result topic,
    and switches its policy by the `/aaron/set_policy` service, as any other node could."""

    def __init__(self, results: Mapping[str, str], context) -> None:
        super().__init__("aaron_bench_monitor", context=context)
        self._tasks = list(results)
        self._lock = threading.Lock()
        self._status: tuple[float, CoordinatorStatus] | None = None  # (when heard, monotonic), the latest
        self._heard: dict[str, list[FrameTiming]] = {task: [] for task in self._tasks}
        self._outcomes: list[FrameOutcome] = []
        self._subs = [self.create_subscription(InferenceResult, topic,
                                               lambda m, info, t=task: self._on_result(t, m, info), TRACE_QOS)
                      for task, topic in results.items()]
        for task, topic in results.items():  # taken as bytes: read, as a consumer reads them, not checked
            self.create_subscription(Image, f"{topic}/mask", lambda data, t=task: self._on_mask(t),
                                     qos_profile_sensor_data, raw=True)
        self.create_subscription(FrameOutcomes, OUTCOMES_TOPIC, self._on_outcomes, TRACE_QOS)
        self.create_subscription(CoordinatorStatus, STATUS_TOPIC, self._on_status, 10)
        self._set_policy = self.create_client(SetPolicy, SET_POLICY_SERVICE)

    def _on_result(self, task: str, msg: InferenceResult, info: MessageInfo) -> None:
        now_ns = self.get_clock().now().nanoseconds  # the player stamps with the same clock
        stamp_ns = Time.from_msg(msg.header.stamp).nanoseconds
        e2e_ms = (now_ns - stamp_ns) / 1e6
        parts = {t.part: PartTime(t.wall_ms / 1e3, t.cpu_ms / 1e3) for t in msg.timing}
        # The middleware's own time of arrival (0 where it keeps none) splits what is left: the
        # delivery, and this node's executor getting to the callback (the harness's, not the system's).
        arrived_ns = info.get("received_timestamp", 0)
        waited_s = (now_ns - arrived_ns) / 1e9 if 0 < arrived_ns <= now_ns else 0.0
        parts[FramePart.PUBLISH] = PartTime(max(0.0, e2e_ms / 1e3 - sum(p.wall_s for p in parts.values()) - waited_s))
        parts[FramePart.SUBSCRIBER] = PartTime(waited_s)
        timing = FrameTiming(msg.frame, e2e_ms, msg.latency_ms, msg.input_delay_ms, stamp_ns, parts)
        with self._lock:
            self._heard[task].append(timing)

    def _on_mask(self, task: str) -> None:
        """A mask heard: nothing is measured on it; reading it is what makes the container make it."""

    def _on_outcomes(self, msg: FrameOutcomes) -> None:
        with self._lock:
            self._outcomes += msg.outcomes

    def _on_status(self, msg: CoordinatorStatus) -> None:
        with self._lock:
            self._status = (time.monotonic(), msg)

    def results_matched(self) -> bool:
        return all(s.get_publisher_count() >= 1 for s in self._subs)

    def status(self, newer_than: float = -math.inf, timeout: float = 5.0,
               alive: Callable[[], None] = lambda: None) -> CoordinatorStatus:
        """The latest status heard after `newer_than` (monotonic), waiting for one at most `timeout`
        s, calling `alive` meanwhile (it raises when the container is gone)."""
        end = time.monotonic() + timeout
        while True:
            with self._lock:
                got = self._status
            if got is not None and got[0] > newer_than:
                return got[1]
            alive()
            if time.monotonic() >= end:
                raise TimeoutError(f"no status on {STATUS_TOPIC} for {timeout:g} s")
            time.sleep(0.01)

    def counts(self, after: float | None = None, alive: Callable[[], None] = lambda: None) -> tuple[dict, float]:
        """Per task, the counters of a status heard after `after` (default: now), and the
        coordinator's CPU seconds so far."""
        status = self.status(time.monotonic() if after is None else after, alive=alive)
        return ({t.task: {k: getattr(t, k) for k in (*COUNTS, "published")} for t in status.tasks},
                status.coordinator_cpu_s)

    def switch(self, policy: str, versions: str, timeout: float = 10.0) -> None:
        if not self._set_policy.wait_for_service(timeout_sec=timeout):
            raise RuntimeError(f"{SET_POLICY_SERVICE} is not offered")
        future = self._set_policy.call_async(SetPolicy.Request(policy=policy, versions=versions))
        end = time.monotonic() + timeout
        while not future.done() and time.monotonic() < end:
            time.sleep(0.005)
        if not future.done() or not future.result().success:
            why = future.result().message if future.done() else f"no answer in {timeout:g} s"
            raise RuntimeError(f"{SET_POLICY_SERVICE} {policy}/{versions} refused: {why}")

    def count(self, task: str, first: int) -> tuple[int, int]:
        """(Outcomes, results) heard for the task's frames from `first` on."""
        with self._lock:
            return (sum(1 for o in self._outcomes if o.task == task and o.frame >= first),
                    sum(1 for t in self._heard[task] if t.frame >= first))

    def take(self) -> tuple[dict[str, list[FrameTiming]], list[FrameOutcome]]:
        """What was heard since the last take (results per task, outcomes), and start afresh."""
        with self._lock:
            out = self._heard, self._outcomes
            self._heard, self._outcomes = {task: [] for task in self._tasks}, []
        return out


@contextlib.contextmanager
def collection_paused() -> Iterator[None]:
    """This process's cyclic garbage collector held off while a replay is measured, then run. A
    full collection of the bench's heap (its imports and every result heard so far) took up to
    200 ms and holds the interpreter lock meanwhile, so the monitor's callbacks waited as long and
    one policy's e2e tail carried the harness's pause. What survives is then frozen: the next
    collections do not walk it again."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
        gc.collect()
        gc.freeze()


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


class Played(NamedTuple):
    """What one play of the bag published."""

    frames: int  # after the lead-in
    seconds: float  # from the start after the lead-in to the last frame
    lead_in: int = 0  # frames of the lead-in
    measured_from_ns: int = 0  # the stamp of the first frame after it (0: no lead-in)


def parse_played(text: str) -> Played | None:
    """What `aaron-ros play` said it published, from its output; None when it did not say."""
    done, lead = PLAYED.search(text), LEAD_IN.search(text)
    if done is None:
        return None
    return Played(int(done[1]), float(done[2]), *((int(lead[1]), int(lead[2])) if lead else ()))


def play_rate(player_params: Mapping[str, Any]) -> float:
    """The speed a file's `bag_player` plays at (2.0: a 30 fps bag is a 60 fps camera)."""
    return float(player_params.get("rate", 1.0))


class CameraProcess:
    """The bag played once per call by `aaron-ros play` in a process of its own, with the file's
    `bag_player` parameters (rate, start offset, remaps, QoS)."""

    def __init__(self, bag: Path, params: Mapping[str, Any], domain_id: int, lead_in_s: float = 0.0):
        remaps, rate = parse_remaps(params.get("remap", ())), play_rate(params)
        self.topics = [remaps.get(t, t) for t in image_topics(bag)]  # where it publishes
        self._cmd = [sys.executable, "-m", "aaron_ros.cli", "play", str(bag),
                     "--rate", str(rate), "--start", str(params.get("start_offset_s", 0.0)),
                     "--qos", str(params.get("qos", "sensor_data")), "--lead-in", str(lead_in_s),
                     *(["--remap", *params["remap"]] if remaps else [])]
        self._env = {**os.environ, "ROS_DOMAIN_ID": str(domain_id)}
        frames, fps = bag_info(bag)
        span_s = frames / fps / rate if np.isfinite(fps) and fps > 0 else 0.0
        # Its subscribers' wait, the bag at its rate, the wait for its DDS participant to go, and slack.
        self._limit_s = 2 * WAIT_MATCHED_S + span_s + lead_in_s + PLAYER_SLACK_S

    def play(self, subscribers: int, matched: Callable[[], bool],
             while_playing: Callable[[], None]) -> Played:
        """Play the bag to its end once every topic has `subscribers` (the player's side of the
        match) and `matched()` holds (the subscribers' side; 10 s at most each), calling
        `while_playing` meanwhile.
        A player not matched in time is started afresh (once in a demo, DDS discovery between the
        container and a new player never completed, and a whole replay was lost); the last try
        plays anyway, and what nobody hears is counted lost."""
        cmd = [*self._cmd, "--wait-subscribers", str(subscribers), "--start-on-enter"]
        said: list[str] = []  # its output as it comes: the line saying what it published ends the play
        proc = reader = None
        stopped = False
        try:
            for attempt in range(1, MATCH_TRIES + 1):
                proc, reader = self._start(cmd, said)
                give_up = time.monotonic() + WAIT_MATCHED_S
                while not (heard := matched()) and proc.poll() is None and time.monotonic() < give_up:
                    while_playing()
                if heard or proc.poll() is not None or attempt == MATCH_TRIES:
                    break
                log.warning("bench: the bag player's topics not matched after %g s; starting it again (%d of %d)",
                            WAIT_MATCHED_S, attempt + 1, MATCH_TRIES)
                _interrupt(proc)
                reader.join(5.0)
                said.clear()
            if not heard:
                log.warning("bench: the bag player's topics not matched after %g s; playing anyway", WAIT_MATCHED_S)
            proc.stdin.write("\n")  # go (it also waits for its own side of the match first)
            proc.stdin.flush()
            give_up, exit_by = time.monotonic() + self._limit_s, None
            while proc.poll() is None and time.monotonic() < give_up:
                while_playing()
                if exit_by is None and any(PLAYED.search(line) for line in said):
                    exit_by = time.monotonic() + PLAYER_EXIT_S
                elif exit_by is not None and time.monotonic() > exit_by:
                    # Its frames are out: once, a player did not exit within 60 s after saying so.
                    log.warning("bench: the bag player said what it published but had not exited %g s later; "
                                "stopped it. Its last words: %s", PLAYER_EXIT_S, "".join(said[-2:]).strip())
                    proc.kill()
                    proc.wait()
                    stopped = True
            if proc.poll() is None:
                raise RuntimeError(f"the bag player ({' '.join(cmd)}) has not ended after {self._limit_s:.0f} s; "
                                   f"it said:\n{''.join(said).strip()[-2000:]}")
        finally:
            if proc is not None:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
                reader.join(5.0)
        text = "".join(said)
        played = parse_played(text)
        if played is None or (proc.returncode and not stopped):
            raise RuntimeError(f"the bag player ({' '.join(cmd)}) failed (exit code {proc.returncode}): "
                               f"{text.strip()[-2000:]}")
        if "not every topic" in text:
            log.warning("bag player: not every component subscribed after 10 s; it played anyway")
        return played

    def _start(self, cmd: list[str], said: list[str]) -> tuple[subprocess.Popen, threading.Thread]:
        """The player started, its output read into `said` as it comes."""
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, env=self._env)

        def read() -> None:
            for line in proc.stdout:
                said.append(line)

        reader = threading.Thread(target=read, name="player-output", daemon=True)
        reader.start()
        return proc, reader


def _interrupt(proc: subprocess.Popen) -> None:
    """Stop a player as Ctrl-C does, so that its DDS participant says goodbye: a killed one lingers
    in the others' graphs and its publisher may pass for the next player's. Killed if it has not
    ended within PLAYER_EXIT_S."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(PLAYER_EXIT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class BenchSystem:
    """The container in a process of its own (from the parameter file), the bag player in
    another, and the bench's node on its own executor thread here: the bench reaches the container
    only over its topics and its service."""

    def __init__(self, config: Path, bag: Path, workdir: Path, policy: str | None = None,
                 versions: str | None = None, kernel_bag_dir: str | None = None, domain_id: int | None = None,
                 lead_in_s: float = 0.0):
        self.config = load_config(config)
        self.tasks = [c.name for c in self.config.components]
        coordinator = {k: v for k, v in (("policy", policy), ("versions", versions),
                                         ("kernel_bag_dir", kernel_bag_dir)) if v}
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id, signal_handler_options=SignalHandlerOptions.NO)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.container: ContainerProcess | None = None
        try:
            domain = self.context.get_domain_id()
            self.container = ContainerProcess(Path(config), workdir, domain, coordinator)
            self.client = SystemClient({c.name: c.result_topic for c in self.config.components}, self.context)
            self._executor = SingleThreadedExecutor(context=self.context)
            self._executor.add_node(self.client)
            self._thread = threading.Thread(target=self._spin, name="bench-monitor", daemon=True)
            self._thread.start()
            status = self.client.status(timeout=START_TIMEOUT_S, alive=self.container.check)
            missing = [t for t in self.tasks if t not in {s.task for s in status.tasks}]
            if missing:
                raise RuntimeError(f"{config}: component(s) {missing} failed to load:\n{self.container.tail()}")
            self.status = status
            end = time.monotonic() + WAIT_MATCHED_S
            while not self.client.results_matched() and time.monotonic() < end:
                time.sleep(0.01)
            if not self.client.results_matched():
                log.warning("bench monitor: not every result topic matched after %g s", WAIT_MATCHED_S)
            self.camera = CameraProcess(bag, self.config.params_for("bag_player"), domain, lead_in_s)
        except BaseException:
            self.close()
            raise
        outputs = {in_root(t) for t in self.camera.topics}
        # Per task, the frames it could receive: a component on a topic the bag does not hold gets
        # none. The container runs in the root namespace, where a relative name is the absolute one.
        self._fed = {c.name: in_root(c.image_topic) in outputs for c in self.config.components}

    def _spin(self) -> None:
        while not self._stop.is_set() and self.context.ok():
            try:
                self._executor.spin_once(timeout_sec=0.05)
            except Exception as exc:  # the context shutting down under it
                if self.context.ok():
                    log.warning("bench monitor: %s", exc)

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
        if self.container is not None:
            self.container.stop()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
        executor = getattr(self, "_executor", None)
        if executor is not None:
            executor.remove_node(self.client)
            self.client.destroy_node()
            executor.shutdown(timeout_sec=1.0)
        self.context.try_shutdown()

    def __enter__(self) -> BenchSystem:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --- the benchmark ----------------------------------------------------------------------------

def _sum_counters(heard: Sequence[Heard], task: str) -> dict[str, int]:
    keys = ("frames", "lead_in", "received", "received_play", "rate_limited", "rejected", "lost", "results",
            "converted", "shared")
    return {k: sum(h.counters[task][k] for h in heard) for k in keys} | {
        "unsettled": sum(h.unsettled.get(task, 0) for h in heard)}


def _timings(results: Sequence[RunResult], tasks: Sequence[str]) -> dict[str, list[FrameTiming]]:
    """Per task, every result the monitor heard over `results`."""
    return {t: [x for r in results for x in r.extra.timings[t]] for t in tasks}


def bench_domain() -> int:
    """The ROS domain the bench runs its processes on: ROS_DOMAIN_ID where it is set, else one of
    its own, so that a robot's own camera and nodes on the default domain 0 neither feed the
    container under test nor answer its topics."""
    if os.environ.get("ROS_DOMAIN_ID", "").strip():
        return int(os.environ["ROS_DOMAIN_ID"])
    return private_domain()


def private_domain(taken: Collection[int] = ()) -> int:
    """A domain of the bench's range that none of `taken` is on."""
    return random.choice([d for d in range(*PRIVATE_DOMAINS) if d not in taken])


class RosTarget(BenchTarget):
    """The bench driver's target over ROS 2: each task alone in a container of its own, the
    policies in one container (opened at the first replay) switched from replay to replay."""

    def __init__(self, opts: RosBenchOptions):
        self.opts = opts
        self.config = load_config(opts.config)
        self.bag_frames, self.bag_fps = bag_info(opts.bag)
        self.play_rate = play_rate(self.config.params_for("bag_player"))
        self.fps = self.bag_fps * self.play_rate  # the camera the container sees
        self.label = f"ros bench {opts.config.stem}"
        # Each task fed at the camera's rate, at most its max_rate_hz.
        self.tasks = [dataclasses.replace(t, rate_hz=min(t.rate_hz, self.fps)) if np.isfinite(self.fps) else t
                      for t in self.config.tasks()]
        self._workdir = tempfile.TemporaryDirectory(prefix="aaron_ros_bench_")  # the files it runs from
        self.domain = bench_domain() if opts.domain_id is None else opts.domain_id
        log.info("ros bench: container, camera and monitor on ROS domain %d (each task alone on another)",
                 self.domain)
        self._system_args = {"workdir": Path(self._workdir.name), "kernel_bag_dir": opts.kernel_bag_dir,
                             "lead_in_s": opts.lead_in_s}
        self._domains = {self.domain}  # each container on a domain of its own: see `alone`
        self._system: BenchSystem | None = None
        self.cores = self.config.coordinator.lanes or os.cpu_count() or 1  # the container's, on this machine
        self.bags: dict[str, str] = {}  # model -> where its versions came from, as the container reports

    def _started(self, system: BenchSystem) -> BenchSystem:
        self.bags.update({t.model: t.kernel_bag for t in system.status.tasks})
        return system

    def alone(self, task: TaskSpec) -> RunResult:
        cfg = single_component_config(self.opts.config, task.name, Path(self._workdir.name))
        # Not the policies' domain: in 3 of 12 benches of fresh-clone demos on one domain, the first
        # policy run after these had a player and container that never matched, or a player that
        # never ended; a stopped container's DDS participant may outlive its process there.
        domain = private_domain(self._domains)
        self._domains.add(domain)
        with self._started(BenchSystem(cfg, self.opts.bag, policy=ISOLATION_POLICY, versions=ISOLATION_VERSIONS,
                                       domain_id=domain, **self._system_args)) as alone:
            return alone.replay(ISOLATION_POLICY, ISOLATION_VERSIONS, self.opts.settle_timeout_s)

    def replay(self, policy: str, versions: str) -> RunResult:
        if self._system is None:
            self._system = self._started(BenchSystem(self.opts.config, self.opts.bag, domain_id=self.domain,
                                                     **self._system_args))
        return self._system.replay(policy, versions, self.opts.settle_timeout_s)

    def close(self) -> None:
        if self._system is not None:
            self._system.close()
            self._system = None
        self._workdir.cleanup()

    def workload(self) -> Workload:
        bag, config = self.opts.bag, self.config
        played = f", played at {self.play_rate:g}x: a {self.fps:.0f} fps camera" if self.play_rate != 1.0 else ""
        return Workload(name=config.path.stem,
                        description=(f"ROS 2 container from {config.path.name}, fed over DDS by the bag "
                                     f"{bag.name} ({self.bag_fps:.0f} fps{played}); a task's rate is the camera's, "
                                     f"at most its max_rate_hz. Latencies are the node's (release to done); "
                                     f"end-to-end ones are camera stamp to result heard."),
                        lanes=self.cores, tasks=self.tasks, path=config.path)

    def settings(self) -> dict:
        o = self.opts
        return {"bag": o.bag.name, "bag_frames": self.bag_frames, "bag_fps": self.bag_fps,
                "play_rate": self.play_rate, "repeats": o.repeats, "lanes": self.cores,
                "lane_kind": resolve_kind(self.config.coordinator.device), "bags": self.bags,
                "container": "aaron-ros run in a process of its own, reached over its topics and service",
                "isolation": f"{ISOLATION_POLICY}/{ISOLATION_VERSIONS}, each task alone in its own container"
                if o.isolation else "not run",
                "lead_in_s": o.lead_in_s,
                "transport": os.environ.get("FASTDDS_BUILTIN_TRANSPORTS", "default")}

    def alone_metrics(self, task: TaskSpec, result: RunResult) -> dict:
        t = timing_metrics(result.extra.timings[task.name])
        return {"e2e_p50_ms": t["e2e_p50_ms"], "e2e_p99_ms": t["e2e_p99_ms"]}

    def round_metrics(self, result: RunResult) -> dict:
        return {CPU_OUTSIDE: cpu_per_frame([result])[CPU_OUTSIDE]}

    def entry_metrics(self, metrics: dict, results: Sequence[RunResult], workload: Workload) -> None:
        names = [t.name for t in workload.tasks]
        timings = _timings(results, names)
        for t in names:
            metrics["tasks"][t].update(_sum_counters([r.extra for r in results], t), **timing_metrics(timings[t]))
            metrics["tasks"][t]["dropped_too_late"] = sum(1 for r in results for rec in r.records
                                                          if rec.task == t and rec.error == TOO_LATE)
        for t in names:
            for key, frames in ((FRAME_TIME, timings[t]), (FRAME_TIME_TAIL, slowest(timings[t]))):
                metrics["tasks"][t][key] = {part: {"wall_ms": v.wall_s * 1e3, "cpu_ms": v.cpu_s * 1e3}
                                            for part, v in mean_parts(x.parts for x in frames).items()}
        metrics.update(cpu_per_frame(results))
        pooled = timing_metrics([x for per in timings.values() for x in per])
        metrics.update({k: pooled[k] for k in TIMING_KEYS[:4]})
        critical = [metrics["tasks"][s.name] for s in workload.critical_tasks]
        for k in TIMING_KEYS[:4]:
            metrics[f"critical_{k}"] = worst(m[k] for m in critical)


# The container's threads.
SYSTEM_ROLES = ("executor", "results", "clock", "lanes", "dds", "other")


def cpu_per_frame(results: Sequence[RunResult]) -> dict:
    """CPU milliseconds per frame a component received, by thread role, and the part of it spent
    outside the models' stages: the system's threads minus the stages' own CPU (on lane threads;
    intra-op helper threads are under "other" and count as stage work). Of that part, the frames'
    host work (conversion and post-processing, on the lanes) and the coordinator's (on the
    executor and the lanes, as the container reports it); the rest is messages and hand-offs."""
    received = sum(c["received_play"] for r in results for c in r.extra.counters.values())
    spent: dict[str, float] = {}
    for r in results:
        for role, sec in r.extra.cpu_s.items():
            spent[role] = spent.get(role, 0.0) + sec
    # A first stage's lane run includes the image's conversion, a last one the post-processing:
    # that is not model work.
    host = sum(r.extra.host_cpu_s for r in results)
    stages = sum(r.extra.stages_cpu_s for r in results) - host
    outside = sum(spent.get(role, 0.0) for role in SYSTEM_ROLES if role != "other") - stages
    per = 1e3 / received if received else float("nan")
    return {"cpu_ms_per_frame": {role: sec * per for role, sec in sorted(spent.items())},
            "cpu_stages_ms_per_frame": stages * per, CPU_OUTSIDE: outside * per,
            "cpu_host_ms_per_frame": host * per,
            "cpu_coordinator_ms_per_frame": sum(r.extra.coordinator_cpu_s for r in results) * per}


def run_ros_bench(opts: RosBenchOptions) -> tuple[dict, dict, dict]:
    """Returns the report (as written to report.json), the node latencies (ms) per entry and task,
    and the monitor's FrameTimings per entry and task."""
    os.environ.setdefault("FASTDDS_BUILTIN_TRANSPORTS", "LARGE_DATA")  # before any participant exists
    target = RosTarget(opts)
    result = drive(target, opts.entries(), opts.repeats, isolation=opts.isolation, progress=opts.progress)
    tasks = [t.name for t in target.tasks]
    timings = {key: _timings(runs, tasks) for key, runs in result.runs.items()}
    return result.report, result.latencies, timings


# --- the report -------------------------------------------------------------------------------

# Per policy, after its critical miss rate: the critical task's latencies (node p99; end to end and
# transport, p50 and p99) and the frames per second done over every task.
SUMMARY_KEYS = ("critical_p99_ms", "critical_e2e_p50_ms", "critical_e2e_p99_ms", "critical_transport_p50_ms",
                "critical_transport_p99_ms", "throughput_fps")


def _summary_rows(policies: Mapping[str, dict], keys: Sequence[str]) -> list[list[str]]:
    return [[key, pct(p.get("critical_miss_rate")), *(fmt(p.get(k)) for k in keys)] for key, p in policies.items()]


def render_e2e_markdown(report: dict) -> str:
    """The end-to-end section of report.md: per policy, then per policy and task."""
    policies, tasks = report["policies"], report["workload"]["tasks"]
    iso = report.get("isolation", {})
    lead_s = report.get("settings", {}).get("lead_in_s", 0.0)
    lead_in = (f"{lead_s:g} s of the bag played with no pause before each replay, stamped before the measured "
               "frames: no figure counts them but the CPU table" if lead_s else "none")
    summary = md_table(["policy", "critical miss rate", "critical p99 ms", "critical e2e p50 ms",
                      "critical e2e p99 ms", "critical transport p50 ms", "critical transport p99 ms",
                      "throughput fps"], _summary_rows(policies, SUMMARY_KEYS))
    rows = []
    for key, p in policies.items():
        for t in tasks:
            m = p["tasks"].get(t["name"], {})
            rows.append([key, t["name"], fmt(m.get("p50_ms")), fmt(m.get("p99_ms")), fmt(m.get("e2e_p50_ms")),
                         fmt(m.get("e2e_p99_ms")), fmt(iso.get(t["name"], {}).get("e2e_p99_ms")),
                         fmt(m.get("transport_p50_ms")), fmt(m.get("transport_p99_ms")),
                         fmt(m.get("input_delay_p50_ms")), fmt(m.get("frames")), fmt(m.get("done")),
                         fmt(m.get("dropped")), fmt(m.get("dropped_too_late")), fmt(m.get("failed")),
                         fmt(m.get("rate_limited")), fmt(m.get("lost")), fmt(m.get("converted")),
                         fmt(m.get("shared"))])
    per_task = md_table(["policy", "task", "node p50 ms", "node p99 ms", "e2e p50 ms", "e2e p99 ms",
                       "e2e p99 alone", "transport p50 ms", "transport p99 ms", "input p50 ms", "frames",
                       "done", "dropped", "of which too late", "failed", "rate-limited", "lost", "converted",
                       "shared"], rows)
    return "\n".join([
        "## End to end over ROS 2", "", summary, "",
        "End-to-end: camera stamp (set as the player, in its own process, publishes) to the result heard "
        "by the bench's node, in a process of its own. Transport: end-to-end minus the node's latency (image delivery, "
        "conversion, post-processing, result delivery); input: stamp to the image's arrival at the node.",
        "", per_task, "",
        f"Frames: published by the bag player after its lead-in ({lead_in}); each is done, dropped "
        "(its queue's overload rule, or too "
        "late: it could no longer meet its deadline), failed, rate-limited (above `max_rate_hz`, by design), "
        "rejected (a bad image) or "
        "lost (never received). Miss rate is over the frames the coordinator got (done + dropped + "
        "failed). Converted: images this task turned into tensors, in its first granted stage (a frame "
        "dropped while waiting is never converted); shared: its tensor came from another component "
        "reading the same topic at the same input size.", ""])


def _wall_cpu(v: Mapping | None) -> str:
    if not v:
        return "-"
    cpu = v.get("cpu_ms")
    return fmt(v["wall_ms"]) + (f" ({fmt(cpu)})" if cpu is not None and np.isfinite(cpu) else "")


def render_frame_time_markdown(report: dict) -> str:
    """Where a frame's time goes: mean wall (CPU) ms per part, per policy and task; CPU per frame
    by thread."""
    policies, tasks = report["policies"], report["workload"]["tasks"]
    parts = [str(p) for p in FramePart]

    def per_frame(key: str) -> str:
        rows = []
        for name, p in policies.items():
            for t in tasks:
                ft = p["tasks"].get(t["name"], {}).get(key, {})
                total = sum(v["wall_ms"] for v in ft.values())
                rows.append([name, t["name"], *(_wall_cpu(ft.get(part)) for part in parts), fmt(total)])
        return md_table(["policy", "task", *parts, "sum ms"], rows)

    roles = sorted({r for p in policies.values() for r in p.get("cpu_ms_per_frame", {})})
    rows = [[key, *(fmt(p.get("cpu_ms_per_frame", {}).get(r)) for r in roles), fmt(p.get("cpu_stages_ms_per_frame")),
             fmt(p.get(CPU_OUTSIDE)), fmt(p.get("cpu_host_ms_per_frame")),
             fmt(p.get("cpu_coordinator_ms_per_frame"))] for key, p in policies.items()]
    cpu = md_table(["policy", *roles, "of which model stages", "outside model stages", "of which host work",
                    "of which the coordinator"], rows)
    return "\n".join([
        "## Where a frame's time goes", "",
        "Mean milliseconds per result heard, wall time with the CPU time of the one thread doing the part "
        "in brackets, from the camera stamp to the result heard (the parts are back to back; their sum is "
        "the mean end-to-end latency). receive: stamp to the component's callback; grant wait: released "
        "or between stages without a grant; to lane / from lane / to publisher: hand-offs between threads; "
        "publish + delivery: to the result's arrival at the subscriber (the middleware's time of arrival); "
        "subscriber's callback: from there to the subscriber's callback, the bench node's own executor.", "",
        per_frame(FRAME_TIME), "",
        f"The tail: the same over each task's slowest {TAIL_SHARE:.0%} of results end to end (at least one), "
        "the frames its e2e p99 is made of. Where they differ from the mean is what makes the tail "
        "(`frame_time_tail.png`).", "",
        per_frame(FRAME_TIME_TAIL), "",
        "CPU milliseconds per frame a component received, by thread of the container's process (the bag "
        "player, standing in for a camera driver, runs in a process of its own and is not counted; the "
        "bench monitor stands in for a subscriber; \"other\" holds the models' intra-op threads). The "
        "coordinator decides on the thread an event happens on: the executor for a frame handed over, a "
        "lane for a stage that ended; \"clock\" is its timer thread. Outside model stages: executor, "
        "results (the components' publishing threads), clock, lanes and DDS threads minus the stages' own "
        "CPU; of it, host work: the frames' conversion and post-processing (on the lanes), and the "
        "coordinator's decisions and bookkeeping (wherever they ran, as the container reports it); the "
        "rest is messages and hand-offs.", "", cpu, ""])


def plot_frame_time(report: dict, path: Path, tail: bool = False) -> Path:
    """One panel per task: a bar per policy, cut into the parts of a frame's mean end-to-end time
    (with `tail`, of the task's slowest results)."""
    policies, tasks = report["policies"], report["workload"]["tasks"]
    key = FRAME_TIME_TAIL if tail else FRAME_TIME
    colours = dict(zip(FramePart, colormaps["tab20"].colors))
    fig = Figure(figsize=(11, 1.2 + 0.45 * len(policies) * len(tasks)), layout="constrained")
    axes = fig.subplots(len(tasks), 1, squeeze=False)[:, 0]
    for ax, t in zip(axes, tasks):
        keys = list(policies)
        left = np.zeros(len(keys))
        for part in FramePart:
            widths = np.array([policies[k]["tasks"].get(t["name"], {}).get(key, {})
                               .get(str(part), {}).get("wall_ms", 0.0) for k in keys])
            ax.barh(keys, widths, left=left, color=colours[part], label=str(part) if ax is axes[0] else None)
            left += widths
        ax.axvline(t["deadline_ms"], color="k", linestyle="--", linewidth=1)
        ax.invert_yaxis()
        ax.set_title(f"{t['name']} ({t['model']}, {t['criticality']}), deadline {t['deadline_ms']:g} ms "
                     "(dashed)", fontsize="medium", fontweight="bold" if t["criticality"] == "critical" else "normal")
        ax.grid(axis="x", alpha=0.3)
    axes[-1].set_xlabel(f"mean ms per result{f' of the slowest {TAIL_SHARE:.0%}' if tail else ''}, "
                        "camera stamp to result heard")
    fig.legend(fontsize="small", loc="outside right upper")
    whose = f"the slowest {TAIL_SHARE:.0%} of frames'" if tail else "a frame's"
    fig.suptitle(f"Where {whose} time goes: {report['workload']['name']}")
    fig.savefig(path, dpi=100)
    return path


def save(report: dict, latencies: dict, timings: dict, out_dir: str | Path) -> list[Path]:
    """report.json, report.md (with the end-to-end section), latencies.json, e2e.json and the plots."""
    out = Path(out_dir)
    # The CDF shows what the README headlines and a robot lives by: camera stamp to result heard.
    e2e_ms = {k: {t: [x.e2e_ms for x in xs] for t, xs in per.items()} for k, per in timings.items()}
    paths = write_policy_report(report, latencies, out, cdf=(e2e_ms, "end to end, camera stamp to result heard"))
    md = out / "report.md"
    md.write_text(md.read_text().rstrip("\n") + "\n\n" + render_e2e_markdown(report) + "\n"
                  + render_frame_time_markdown(report))
    e2e = out / "e2e.json"
    fields = [*FrameTiming._fields[:-1], "parts: [wall_ms, cpu_ms]"]
    e2e.write_text(json.dumps({k: {t: {"fields": fields, "frames": [
        [*x[:-1], {p: [v.wall_s * 1e3, None if np.isnan(v.cpu_s) else v.cpu_s * 1e3] for p, v in x.parts.items()}]
        for x in xs]} for t, xs in per.items()} for k, per in timings.items()}) + "\n")
    return [*paths[:3], e2e, *paths[3:], plot_frame_time(report, out / "frame_time.png"),
            plot_frame_time(report, out / "frame_time_tail.png", tail=True)]


def headline_text(out_dir: str | Path) -> str:
    """A bench at a glance, as the README quotes it: per policy the critical task's misses and
    latencies (node p99; end to end and transport, p50 and p99, in ms) and the frames per second
    done and done on time over every task."""
    report = json.loads((Path(out_dir) / "report.json").read_text())
    return f"{report['workload']['name']}:\n" + text_table(
        ["policy", "critical miss rate", "critical p99", "e2e p50", "e2e p99", "transport p50", "transport p99",
         "throughput fps", "goodput fps"], _summary_rows(report["policies"], (*SUMMARY_KEYS, "goodput_fps")))


def comparison_text(out_dir: str | Path) -> str:
    """The report's comparison and end-to-end sections, as the command prints them."""
    text = (Path(out_dir) / "report.md").read_text()
    return text[text.index("## Comparison"):] if "## Comparison" in text else text
