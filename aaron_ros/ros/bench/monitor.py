"""The bench's node, in the bench's own process: it hears the container's status, frame outcomes,
results and masks, and switches its policy over `/aaron/set_policy`, as any other node could
(ros2_benchmark's monitor node)."""
from __future__ import annotations

import contextlib
import gc
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import NamedTuple

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rclpy.signals import SignalHandlerOptions
from rclpy.subscription import MessageInfo
from rclpy.time import Time
from sensor_msgs.msg import Image

from aaron_ros.coordinator.timing import FramePart, PartTime
from aaron_ros.msg import CoordinatorStatus, FrameOutcome, FrameOutcomes, InferenceResult
from aaron_ros.ros.coordinator_node import COUNTS, OUTCOMES_TOPIC, SET_POLICY_SERVICE, STATUS_TOPIC, TRACE_QOS
from aaron_ros.ros.probe import other_nodes
from aaron_ros.srv import SetPolicy

log = logging.getLogger(__name__)


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


class Monitor:
    """The bench's node on a context and an executor thread of its own, on one ROS domain: what
    the bench closes and opens afresh where its node, alone of the domain's participants, heard
    nothing (`BenchSystem._first_status`)."""

    def __init__(self, results: Mapping[str, str], domain_id: int | None = None) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id, signal_handler_options=SignalHandlerOptions.NO)
        self.domain = self.context.get_domain_id()
        self.started = time.monotonic()
        self._stop = threading.Event()
        self.client = SystemClient(results, self.context)
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self.client)
        self._thread = threading.Thread(target=self._spin, name="bench-monitor", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while not self._stop.is_set() and self.context.ok():
            try:
                self._executor.spin_once(timeout_sec=0.05)
            except Exception as exc:  # the context shutting down under it
                if self.context.ok():
                    log.warning("bench monitor: %s", exc)

    def seen(self) -> str:
        """What the node sees of the domain: the status topic's publishers, the other nodes."""
        nodes = other_nodes(self.client)
        return (f"{self.client.count_publishers(STATUS_TOPIC)} publisher(s) of it, and "
                f"{'the nodes ' + ', '.join(nodes) if nodes else 'no other node'}")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5.0)
        self._executor.remove_node(self.client)
        self.client.destroy_node()
        self._executor.shutdown(timeout_sec=1.0)
        self.context.try_shutdown()


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
