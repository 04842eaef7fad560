"""The bench driver's target over ROS 2 (`RosTarget`): each task alone in a container of its own,
then the policies in one container; and what a replay adds to the driver's report (end-to-end
timings, every frame's end counted, the container's CPU per frame)."""
from __future__ import annotations

import dataclasses
import logging
import math
import os
import random
import tempfile
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aaron_ros.bench.driver import ISOLATION_POLICY, ISOLATION_VERSIONS, BenchTarget, RunResult, bench_entries, drive
from aaron_ros.bench.policy_report import CPU_OUTSIDE
from aaron_ros.bench.workload import Workload
from aaron_ros.common.stats import percentiles
from aaron_ros.coordinator.coordinator import TOO_LATE
from aaron_ros.coordinator.metrics import worst
from aaron_ros.coordinator.timing import FramePart, mean_parts
from aaron_ros.coordinator.types import TaskSpec
from aaron_ros.ros.bench.monitor import FrameTiming
from aaron_ros.ros.bench.playback import bag_info, play_rate, played_topics
from aaron_ros.ros.bench.system import (
    SETTLE_TIMEOUT_S,
    BenchSystem,
    ContainerSilent,
    Heard,
    fed_components,
    single_component_config,
)
from aaron_ros.ros.config import load_config
from aaron_ros.ros.domain import discovery_port, domain_risk, domains_in_use, udp_sockets
from aaron_ros.runtime.lanes import resolve_kind

log = logging.getLogger(__name__)

# Where the bench picks a domain of its own: in ROS 2's safe 0-101 (see aaron_ros/ros/domain.py),
# above the suite's 1-50 and the small ids people pick by hand.
PRIVATE_DOMAINS = (51, 102)
TAIL_SHARE = 0.01  # "the tail" of a task's results: its slowest 1% end to end, as its e2e p99 sees them
# A task's report keys: where its mean frame's time goes, and its tail's.
FRAME_TIME, FRAME_TIME_TAIL = "frame_time", "frame_time_tail"
# A result this much later at the subscriber's middleware than the container published it was held
# in delivery: about one replay in a hundred holds one such stall, every result topic at once, for
# 200-350 ms, whatever the policy (results/ros_bench/delivery_stalls_cpu2_amd_epyc/).
STALL_MS = 50.0
TIMING_KEYS = ("e2e_p50_ms", "e2e_p99_ms", "transport_p50_ms", "transport_p99_ms",
               "input_delay_p50_ms", "input_delay_p99_ms")


@dataclass
class RosBenchOptions:
    """What `aaron-ros bench --bag` was asked for."""

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
    log_dir: Path | None = None  # where each container's output is kept; None: a temporary folder

    def __post_init__(self) -> None:
        self.bag, self.config = Path(self.bag), Path(self.config)
        self._entries = bench_entries(self.policies, self.versions)  # checks names

    def entries(self) -> list[tuple[str, str, str]]:
        """(report key, policy, versions setting), as the core bench names them."""
        return self._entries


def slowest(timings: Sequence[FrameTiming]) -> list[FrameTiming]:
    """The tail: a task's slowest results end to end, the last TAIL_SHARE of them (at least one)."""
    n = math.ceil(len(timings) * TAIL_SHARE)
    return sorted(timings, key=lambda x: x.e2e_ms)[-n:] if n else []


def delivery_stalls(timings: Mapping[str, Sequence[FrameTiming]]) -> dict:
    """Per task, how many results were held more than STALL_MS between the container's publish and
    the subscriber's middleware, and the longest such hold (ms): the e2e figures include them."""
    held = {t: [x.parts[FramePart.PUBLISH].wall_s * 1e3 for x in xs if FramePart.PUBLISH in x.parts]
            for t, xs in timings.items()}
    return {"delivery_stalled": {t: sum(ms > STALL_MS for ms in v) for t, v in held.items()},
            "delivery_stall_max_ms": max((ms for v in held.values() for ms in v if ms > STALL_MS), default=0.0)}


def timing_metrics(timings: Sequence[FrameTiming]) -> dict:
    """End-to-end, transport and input-delay p50/p99 (ms) of a task's results."""
    out = {"e2e_samples": len(timings)}
    for name, values in (("e2e", [t.e2e_ms for t in timings]), ("transport", [t.transport_ms for t in timings]),
                         ("input_delay", [t.input_delay_ms for t in timings])):
        out[f"{name}_p50_ms"], out[f"{name}_p99_ms"] = percentiles(values, [50, 99])
    return out


def _sum_counters(heard: Sequence[Heard], task: str) -> dict[str, int]:
    keys = ("frames", "lead_in", "received", "received_play", "rate_limited", "rejected", "lost", "results",
            "converted", "shared")
    return {k: sum(h.counters[task][k] for h in heard) for k in keys} | {
        "unsettled": sum(h.unsettled.get(task, 0) for h in heard)}


def _timings(results: Sequence[RunResult], tasks: Sequence[str]) -> dict[str, list[FrameTiming]]:
    """Per task, every result the monitor heard over `results`."""
    return {t: [x for r in results for x in r.extra.timings[t]] for t in tasks}


def given_domain() -> int | None:
    """ROS_DOMAIN_ID, where it is set."""
    value = os.environ.get("ROS_DOMAIN_ID", "").strip()
    return int(value) if value else None


def bench_domain() -> int:
    """The ROS domain the bench runs its processes on: ROS_DOMAIN_ID where it is set, else one of
    its own, so that a robot's own camera and nodes on the default domain 0 neither feed the
    container under test nor answer its topics."""
    given = given_domain()
    return private_domain() if given is None else given


def private_domain(taken: Collection[int] = ()) -> int:
    """A domain of the bench's range that none of `taken` is on, that no participant on this
    machine is on (another bench's: its container would answer this one's), and whose discovery
    no other socket can take (`domain_risk`), as far as the range has one."""
    free = [d for d in range(*PRIVATE_DOMAINS) if d not in taken]
    used = domains_in_use(free)
    idle = [d for d in free if d not in used]
    return random.choice([d for d in idle if domain_risk(d) is None] or idle or free)


class RosTarget(BenchTarget):
    """The bench driver's target over ROS 2: each task alone in a container of its own, the
    policies in one container (opened at the first replay) switched from replay to replay."""

    def __init__(self, opts: RosBenchOptions):
        self.opts = opts
        self.config = load_config(opts.config)
        self.bag_frames, self.bag_fps, bag_span_s = bag_info(opts.bag)
        topics = played_topics(opts.bag, self.config.params_for("bag_player"))
        fed = fed_components(self.config, topics)
        unfed = [c for c in self.config.components if not fed[c.name]]
        reads = ", ".join(f"{c.name} reads {c.image_topic}" for c in unfed)
        if len(unfed) == len(self.config.components):  # before any container starts
            raise ValueError(f"{opts.config}: no component reads a topic the bag {opts.bag} publishes "
                             f"({', '.join(topics)}): {reads}. A remap in the file's bag_player section "
                             "(remap: [\"/from:=/to\"]) moves the bag's topic")
        if unfed:
            log.warning("ros bench: %s, which the bag does not publish (%s): no frame for it", reads, ", ".join(topics))
        # Why each of them gets no frame, for the report.
        self.unfed = {c.name: f"reads {c.image_topic}, which the bag does not publish ({', '.join(topics)})"
                      for c in unfed}
        self.play_rate = play_rate(self.config.params_for("bag_player"))
        self.fps = self.bag_fps * self.play_rate  # the camera the container sees
        span_s = bag_span_s / self.play_rate  # as played
        if opts.lead_in_s and opts.lead_in_s >= span_s:
            log.warning("ros bench: a lead-in of %g s is as long as the bag (%.1f s played): each replay plays the "
                        "whole bag once as its lead-in, then measures it once", opts.lead_in_s, span_s)
        self.label = f"ros bench {opts.config.stem}"
        # Each task fed at the camera's rate, at most its max_rate_hz.
        self.tasks = [dataclasses.replace(t, rate_hz=min(t.rate_hz, self.fps)) if np.isfinite(self.fps) else t
                      for t in self.config.tasks()]
        self._workdir = tempfile.TemporaryDirectory(prefix="aaron_ros_bench_")  # the files it runs from
        for old in Path(opts.log_dir).glob("*.log") if opts.log_dir else ():
            old.unlink()  # the last bench's, as its report is replaced
        self.domain = bench_domain() if opts.domain_id is None else opts.domain_id
        self.domain_given = opts.domain_id is not None or given_domain() is not None
        alone = f" (each task alone on one of {PRIVATE_DOMAINS[0]}-{PRIVATE_DOMAINS[1] - 1})" if opts.isolation else ""
        log.info("ros bench: container, camera and monitor on ROS domain %d%s", self.domain, alone)
        if risk := domain_risk(self.domain):
            log.warning("ros bench: %s: set ROS_DOMAIN_ID to one of those, or unset it for one of the bench's own",
                        risk)
        if self.domain_given and (others := [p for p in udp_sockets(discovery_port(self.domain)) if p != os.getpid()]):
            log.warning("ros bench: ROS domain %d has participants on this machine already (pid %s): their nodes "
                        "may feed or answer the bench's; unset ROS_DOMAIN_ID for a domain of the bench's own",
                        self.domain, ", ".join(map(str, sorted(set(others)))))
        self._system_args = {"workdir": Path(self._workdir.name), "kernel_bag_dir": opts.kernel_bag_dir,
                             "lead_in_s": opts.lead_in_s, "log_dir": opts.log_dir}
        self._domains = {self.domain}  # each container on a domain of its own: see `alone`
        self._system: BenchSystem | None = None
        self.cores = self.config.coordinator.lanes or os.cpu_count() or 1  # the container's, on this machine
        self.bags: dict[str, str] = {}  # model -> where its versions came from, as the container reports

    def _private_domain(self) -> int:
        domain = private_domain(self._domains)
        self._domains.add(domain)
        return domain

    def _open(self, config: Path, domain: int, **kwargs) -> BenchSystem:
        """The container on `config` and the harness around it. One whose status is never heard is
        started once more, on a domain of its own unless the domain was given: on domains whose
        discovery port another socket may hold (`domain_risk`) a container was up and never heard,
        and once on a domain clear of that; each time the next start served."""
        try:
            system = BenchSystem(config, self.opts.bag, domain_id=domain, **kwargs, **self._system_args)
        except ContainerSilent as exc:
            pinned = domain == self.domain and self.domain_given
            again = domain if pinned else self._private_domain()
            log.warning("ros bench: %s. Starting it again on domain %d", exc, again)
            system = BenchSystem(config, self.opts.bag, domain_id=again, **kwargs, **self._system_args)
        self.bags.update({t.model: t.kernel_bag for t in system.status.tasks})
        return system

    def alone(self, task: TaskSpec) -> RunResult:
        if task.name in self.unfed:  # no frame would reach it: no container to start
            return RunResult([], [], 0.0, Heard({task.name: []}, {}, 0))
        cfg = single_component_config(self.opts.config, task.name, Path(self._workdir.name))
        # Not the policies' domain: in 3 of 12 benches of fresh-clone demos on one domain, the first
        # policy run after these had a player and container that never matched, or a player that
        # never ended; a stopped container's DDS participant may outlive its process there.
        with self._open(cfg, self._private_domain(), policy=ISOLATION_POLICY, versions=ISOLATION_VERSIONS) as alone:
            return alone.replay(ISOLATION_POLICY, ISOLATION_VERSIONS, self.opts.settle_timeout_s)

    def replay(self, policy: str, versions: str) -> RunResult:
        if self._system is None:
            self._system = self._open(self.opts.config, self.domain)
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
                "lane_kind": resolve_kind(self.config.coordinator.device), "kernel_bags": self.bags,
                "container": "aaron-ros run in a process of its own, reached over its topics and service",
                "isolation": f"{ISOLATION_POLICY}/{ISOLATION_VERSIONS}, each task alone in its own container"
                if o.isolation else "not run",
                "lead_in_s": o.lead_in_s, "unfed": self.unfed,
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
        metrics.update(cpu_per_frame(results), **delivery_stalls(timings))
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
