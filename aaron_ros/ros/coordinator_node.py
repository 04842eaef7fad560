"""The coordinator node: owns the coordinator service, reports on it, and lets its policy be
switched at run time: `policy`, `versions`, `status_rate_hz` and `miss_warn_threshold` are live
parameters (`ros2 param set`), the others read-only.

Publishes `CoordinatorStatus` (with one `TaskStatus` per task) on /aaron/status and a
`diagnostic_msgs/DiagnosticArray` on /diagnostics at `status_rate_hz`; with `publish_grants`,
every finished stage as a `StageGrant` on /aaron/grants (with the pre- and post-processing
it ran); with `publish_outcomes`, how every frame ended, as `FrameOutcome`s batched in
`FrameOutcomes` at OUTCOMES_HZ, on /aaron/outcomes.
Service /aaron/set_policy. A benchmark or a monitor needs nothing else (`ros/bench/`).
"""
from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.time import Time

from aaron_ros.coordinator.policies import DEFAULT_VERSIONS
from aaron_ros.coordinator.service import CoordinatorService, ServiceOptions
from aaron_ros.coordinator.types import Grant, JobRecord, Outcome, StageTime
from aaron_ros.kernels.bag import KernelBag
from aaron_ros.msg import CoordinatorStatus, FrameOutcome, FrameOutcomes, StageGrant, TaskStatus
from aaron_ros.ros.params import COORDINATOR, CoordinatorParams, params_from_node, set_live
from aaron_ros.srv import SetPolicy

# Relative: a namespace (`-r __ns:=/car1`) moves them, as it does the components' topics.
STATUS_TOPIC = "aaron/status"
GRANTS_TOPIC = "aaron/grants"
OUTCOMES_TOPIC = "aaron/outcomes"
OUTCOMES_HZ = 10.0  # how often the frames that ended go out, in one message
OUTCOMES_ACK_S = 1.0  # at shutdown, for reliable subscribers to acknowledge the last ones
SET_POLICY_SERVICE = "aaron/set_policy"


# A component's counts a status carries as they are (`PerceptionComponent.counts`).
COUNTS = ("received", "rejected", "rate_limited", "lost", "bad_stamps", "converted", "shared", "input_publishers")
# The task's ledger (TaskStatus), in /diagnostics too.
LEDGER = ("received", "rejected", "rate_limited", "dropped", "failed", "published", "late", "lost")
OK, WARN, ERROR = 0, 1, 2  # DiagnosticStatus levels, as TaskStatus.level carries them (an int, not a byte)
NOT_LOADED = "not loaded: "  # the message of a task whose component failed to load
NEWS = ("failed", "rejected", "bad_stamps")  # counts whose growth since the last report is what a report says
STALE_PERIODS, STALE_MIN_S = 5, 1.0  # no frame for this many of its periods (at least this long): stale input
STUCK_DEADLINES, STUCK_MIN_S = 10, 2.0  # a stage running this many deadlines (at least this long) is stuck
OUTCOME_CODES = {Outcome.DONE: FrameOutcome.OUTCOME_DONE, Outcome.DROPPED: FrameOutcome.OUTCOME_DROPPED,
                 Outcome.FAILED: FrameOutcome.OUTCOME_FAILED}
# A trace a benchmark counts frames from: every message kept until delivered.
TRACE_QOS = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)


def versions_source(bag: KernelBag) -> str:
    """Where a model's versions come from: its kernel bag (how many, of which backends), or why
    it runs eager versions only."""
    if bag.fallback_reason:
        return bag.fallback_reason
    versions = [v for per_stage in bag.versions.values() for v in per_stage]
    return f"kernel bag: {len(versions)} versions ({', '.join(sorted({v.backend for v in versions}))})"


def not_loaded(t: TaskStatus) -> bool:
    """A status for a task whose component failed to load (it has no ledger)."""
    return t.message.startswith(NOT_LOADED)


def _finite(x: float) -> float:
    return x if math.isfinite(x) else 0.0


class CoordinatorNode(Node):
    def __init__(self, name: str = "aaron_coordinator", *, context=None, parameter_overrides=None):
        super().__init__(name, context=context, parameter_overrides=parameter_overrides or [])
        self.params = p = params_from_node(self, CoordinatorParams)
        try:
            self.service = CoordinatorService(ServiceOptions(policy=p.policy, versions=p.versions,
                                                             device=p.device, lanes=p.lanes))
        except ValueError as exc:  # e.g. device: cuda on a machine without one
            raise ValueError(f"{self.get_name()}: device {p.device!r}: {exc}") from None
        # Counters kept by the components themselves (bad images, rate limit), per task.
        self.task_counters: dict[str, Callable[[], dict]] = {}
        self.not_loaded: dict[str, str] = {}  # component -> why it failed to load (the container's)
        self.not_subscribed: dict[str, str] = {}  # component -> why its input could not be subscribed
        self._reported: dict[tuple[str, str], int] = {}  # (task, count) at the last report: what is news
        self._status_pub = self.create_publisher(CoordinatorStatus, STATUS_TOPIC, 10)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._grant_pub = self.create_publisher(StageGrant, GRANTS_TOPIC, TRACE_QOS) if p.publish_grants else None
        # (record, source stamp in ns) appended as frames end (any thread), published here
        self._ended: deque[tuple[JobRecord, int]] = deque()
        if p.publish_outcomes:
            self._outcome_pub = self.create_publisher(FrameOutcomes, OUTCOMES_TOPIC, TRACE_QOS)
            self.service.add_record_listener(lambda rec, stamp_ns: self._ended.append((rec, stamp_ns)))
            self.create_timer(1.0 / OUTCOMES_HZ, self.publish_outcomes)
        self._srv = self.create_service(SetPolicy, SET_POLICY_SERVICE, self._set_policy)
        self._timer = None
        # False while its container is configured but not active: its tasks' health says so, not
        # "no publisher" (a deliberately paused container is not a dead camera).
        self.taking_frames = True

    def start(self) -> None:
        """After every component registered its task: start serving and reporting."""
        if self._grant_pub is not None:
            self.service.on_stage = self._publish_grant
        self.service.start()
        self._timer = self.create_timer(1.0 / self.params.status_rate_hz, self.publish_status)
        self.add_on_set_parameters_callback(lambda params: set_live(self, COORDINATOR, params, self._apply))

    def _set_policy(self, req: SetPolicy.Request, res: SetPolicy.Response) -> SetPolicy.Response:
        """The service sets the parameters (so `ros2 param get` tells the truth). An empty `policy`
        keeps the one in force (to change the versions alone); an empty `versions` with a policy
        named is that policy's default."""
        policy = req.policy or self.params.policy
        versions = req.versions or (DEFAULT_VERSIONS.get(policy, "") if req.policy else self.params.versions)
        result = self.set_parameters_atomically([Parameter("policy", value=policy),
                                                 Parameter("versions", value=versions)])
        res.success = result.successful
        res.message = (f"policy {self.service.policy_name}, versions {self.service.versions}" if res.success
                       else result.reason)
        return res

    def _apply(self, new: CoordinatorParams, changed: dict) -> None:
        """Live parameters set on the running node take effect (a policy switch drops nothing)."""
        if {"policy", "versions"} & changed.keys():
            self.service.switch_policy(new.policy, new.versions)
        if "status_rate_hz" in changed:
            self.destroy_timer(self._timer)
            self._timer = self.create_timer(1.0 / new.status_rate_hz, self.publish_status)

    # -- reporting ------------------------------------------------------------------------------
    def task_statuses(self) -> list[TaskStatus]:
        """Every configured task: those serving, with their ledger and health, and those whose
        component failed to load (ERROR, with why)."""
        out, running = [], self.service.running_s()
        for name, m in self.service.snapshot().items():
            spec = self.service.specs[name]
            extra = self.task_counters.get(name, dict)()
            t = m["totals"]
            published = extra.get("published", t["done"])  # done means published, where a component says so
            status = TaskStatus(
                task=name, model=spec.model, criticality=spec.criticality, deadline_ms=spec.deadline_ms,
                p50_ms=_finite(m["p50_ms"]), p95_ms=_finite(m["p95_ms"]), p99_ms=_finite(m["p99_ms"]),
                miss_rate=_finite(m["miss_rate"]), fps=m["fps"], completed=t["done"], dropped=t["dropped"],
                failed=t["failed"] + extra.get("failed", 0), published=published,
                late=extra.get("late", t["late"]), kernel_bag=versions_source(self.service.bags[spec.model]),
                **{k: extra.get(k, 0) for k in COUNTS})
            status.level, status.message = self._health(status, extra, running.get(name, 0.0))
            out.append(status)
        return out + [TaskStatus(task=name, level=ERROR, message=f"{NOT_LOADED}{why}")
                      for name, why in self.not_loaded.items()]

    def publish_status(self) -> None:
        stamp = self.get_clock().now().to_msg()
        tasks = self.task_statuses()
        msg = CoordinatorStatus(policy=self.service.policy_name, versions=self.service.versions,
                                lanes=self.service.lanes, coordinator_cpu_s=self.service.cpu_s(), tasks=tasks)
        msg.header.stamp = stamp
        self._status_pub.publish(msg)
        diag = DiagnosticArray(status=[self._diagnostic(t) for t in tasks])
        diag.header.stamp = stamp
        self._diag_pub.publish(diag)
        for t in tasks:  # what the next report says is news against this one
            self._reported.update({(t.task, k): getattr(t, k) for k in NEWS})

    def _health(self, t: TaskStatus, extra: dict, running_s: float = 0.0) -> tuple[int, str]:
        """(level, message): the worst of what is wrong; failures, bad images and bad stamps since
        the last published report; `running_s`: how long its oldest running stage has run."""
        failed, rejected, bad_stamps = (getattr(t, k) - self._reported.get((t.task, k), 0) for k in NEWS)
        why = extra.get("last_error") or "see the log"
        if t.task in self.not_subscribed:
            return ERROR, f"takes no frame: its input could not be subscribed: {self.not_subscribed[t.task]}"
        if t.failed > 0 and t.published == 0:  # nothing it ever served succeeded: an ERROR until one does
            return ERROR, f"every frame failed: {why}"
        if failed > 0:
            return ERROR, f"{failed} frame(s) failed since the last report: {why}"
        spec = self.service.specs[t.task]
        if running_s > max(STUCK_DEADLINES * spec.deadline_ms / 1e3, STUCK_MIN_S):
            # Stages are not preempted: its lane serves nothing else, and the task nothing more.
            return ERROR, (f"a stage has run for {running_s:.1f} s (deadline {spec.deadline_ms:g} ms): stuck, "
                           "holding a lane")
        if not self.taking_frames:
            return WARN, "inactive: its container is not active (lifecycle), no frame is taken"
        if t.input_publishers == 0:  # a task that hears nothing is not healthy
            return WARN, f"no publisher on its input topic {extra.get('input_topic', '')}".rstrip()
        if t.received == 0:
            return WARN, "has received no frame"
        if rejected > 0:  # a camera whose every image is refused would otherwise look healthy
            return WARN, f"{rejected} bad image(s) rejected since the last report (the log says why)"
        quiet_s = (time.time_ns() - extra.get("last_received_ns", 0)) / 1e9
        if quiet_s > max(STALE_PERIODS / spec.rate_hz, STALE_MIN_S):
            return WARN, f"stale input: no frame for {quiet_s:.1f} s"
        if bad_stamps > 0:
            return WARN, (f"{bad_stamps} frame(s) with a frozen or backward stamp since the last "
                          "report (paced by arrival)")
        if t.miss_rate > self.params.miss_warn_threshold:
            return WARN, (f"missing {t.miss_rate:.0%} of deadlines (threshold "
                          f"{self.params.miss_warn_threshold:.0%})")
        return OK, "meeting deadlines"

    def _diagnostic(self, t: TaskStatus) -> DiagnosticStatus:
        values = {} if not_loaded(t) else {
            "model": t.model, "criticality": t.criticality, "deadline_ms": f"{t.deadline_ms:g}",
            "p50_ms": f"{t.p50_ms:.1f}", "p99_ms": f"{t.p99_ms:.1f}", "miss_rate": f"{t.miss_rate:.3f}",
            "fps": f"{t.fps:.1f}", **{k: str(getattr(t, k)) for k in LEDGER}, "policy": self.service.policy_name}
        return DiagnosticStatus(level=bytes([t.level]), name=f"aaron_ros: {t.task}", message=t.message,
                                hardware_id=self.get_name(),
                                values=[KeyValue(key=k, value=v) for k, v in values.items()])

    def _publish_grant(self, grant: Grant, finished: float, timing: StageTime | None) -> None:
        """Under the coordinator's lock; service-clock times are mapped onto the node's clock."""
        job = grant.request.job
        granted, finished = self._on_node_clock(grant.granted_at, finished)
        graph = self.service.graphs[job.task.model]
        self._grant_pub.publish(StageGrant(
            task=job.task.name, frame=job.frame, stage=grant.request.stage,
            stage_name=graph.stages[grant.request.stage].name, version=grant.version.id, lane=grant.lane,
            granted=granted, finished=finished,
            pre_ms=timing.pre_s * 1e3 if timing else 0.0, post_ms=timing.post_s * 1e3 if timing else 0.0))

    def _on_node_clock(self, *times: float) -> list:
        """Service-clock times (s) as stamps on the node's clock."""
        offset = self.get_clock().now().nanoseconds / 1e9 - self.service.now()
        return [Time(nanoseconds=int((t + offset) * 1e9)).to_msg() for t in times]

    def publish_outcomes(self) -> None:
        """The frames that ended since the last call, in one message (none: nothing is sent)."""
        ended = []
        while self._ended:
            ended.append(self._ended.popleft())
        if not ended:
            return
        nan = float("nan")
        releases = self._on_node_clock(*(rec.release for rec, _ in ended))
        self._outcome_pub.publish(FrameOutcomes(outcomes=[FrameOutcome(
            task=rec.task, frame=rec.frame, stamp=Time(nanoseconds=stamp_ns).to_msg(),
            outcome=OUTCOME_CODES[rec.outcome], release=release,
            latency_ms=nan if rec.latency_s is None else rec.latency_s * 1e3,
            queueing_ms=nan if rec.queueing_s is None else rec.queueing_s * 1e3,
            deadline_ms=self.service.specs[rec.task].deadline_ms, versions=list(rec.versions),
            stage_cpu_ms=[t.cpu_s * 1e3 for t in rec.stage_times],
            decision_us=[t.decision_us for t in rec.stage_times], error=rec.error or "")
            for (rec, stamp_ns), release in zip(ended, releases)]))

    def destroy_node(self) -> None:
        if self.params.publish_outcomes:  # the last frames, ended while the service stopped
            self.publish_outcomes()
            self._outcome_pub.wait_for_all_acked(Duration(seconds=OUTCOMES_ACK_S))
        super().destroy_node()
