"""Everything a running system needs around the coordinator, in one object: the tasks' models
and kernel bags, the lane pool, the live driver, and a monitor. It is the one place a running
system is built.

Front ends (the ROS container, a script) add tasks, start it, submit frames from any thread,
hear back per task when a frame ends, switch policy at run time, and read status snapshots.
The core bench instead `replay`s timed arrivals on the calling thread, on a lane pool sized for
one policy (`switchable=False`), sharing the models' `ModelSet` across its runs.
"""
from __future__ import annotations

import gc
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from aaron_ros.contention.predictor import ContentionPredictor
from aaron_ros.coordinator.coordinator import Coordinator
from aaron_ros.coordinator.live import LiveDriver
from aaron_ros.coordinator.monitor import Monitor
from aaron_ros.coordinator.policies import DEFAULT_VERSIONS, POLICIES, check_policy, make_policy
from aaron_ros.coordinator.types import Grant, Job, JobRecord, Outcome, StageTime, TaskSpec
from aaron_ros.coordinator.versions import VersionChooser, check_versions
from aaron_ros.kernels.backends.base import device_unavailable
from aaron_ros.kernels.bag import KernelBag
from aaron_ros.kernels.fallback import load_bag_or_eager
from aaron_ros.models import ModelSpec, StageGraph, build_model
from aaron_ros.runtime.lanes import LanePool, resolve_kind, uniform_specs

log = logging.getLogger(__name__)

LANE_CLOSE_S = 0.2  # after the drain, for idle lanes' threads to end (a stage still running now is stuck)

# Called when a frame ends, under the coordinator's lock, on the thread that ended it (a lane's,
# or the one that handed over a frame its queue dropped): (record, final output or None). Keep it short.
OnFinished = Callable[[JobRecord, Any], None]


@dataclass(frozen=True)
class ServiceOptions:
    policy: str = "aaron"
    versions: str = ""  # "" = the policy's own default setting
    device: str = "auto"  # lanes: auto (CUDA when present), cpu or cuda
    lanes: int = 0  # 0 = one per CPU core
    status_window_s: float = 5.0
    # True: lanes for any policy a switch may pick; False: only the starting policy's, no switching.
    switchable: bool = True

    def __post_init__(self) -> None:
        check_policy(self.policy)
        if self.versions:
            check_versions(self.versions)
        if self.lanes < 0:
            raise ValueError(f"lanes must be >= 0, got {self.lanes}")
        resolve_kind(self.device)


@dataclass
class ModelSet:
    """Each model's stage graph and kernel bag, built once on the lanes' device (several services
    of that lane kind may share them)."""

    lane_kind: str = "auto"  # where the weights live: the lanes' kind (auto: CUDA when present; device 0)
    graphs: dict[str, StageGraph] = field(default_factory=dict)
    bags: dict[str, KernelBag] = field(default_factory=dict)
    specs: dict[str, ModelSpec] = field(default_factory=dict)  # what each model was built from

    def __post_init__(self) -> None:
        self.lane_kind = resolve_kind(self.lane_kind)
        reason = device_unavailable(self.device)
        if reason:
            raise ValueError(f"the models cannot live on {self.lane_kind} lanes: {reason}")

    @property
    def device(self) -> torch.device:
        return torch.device("cuda", 0) if self.lane_kind == "cuda" else torch.device("cpu")

    def load(self, model: str | ModelSpec, bag_dir: str | Path | None) -> StageGraph:
        """The graph of a model (a zoo name, or any declared model), built on first use with its
        kernel bag (a missing or broken bag falls back to eager versions). Tasks share a model by
        its name, so one name has one declaration (and one set of weights) in a process."""
        spec = model if isinstance(model, ModelSpec) else ModelSpec(model)
        model = spec.key
        if model in self.bags and self.specs[model] != spec:
            raise ValueError(f"model {model} is already loaded as {self.specs[model]}; one process holds one "
                             f"declaration (and one set of weights) per model name, not also {spec}")
        if model not in self.bags:
            graph = build_model(spec)
            graph.model.to(self.device)  # stages share the model's modules: they move with it
            self.bags[model] = bag = load_bag_or_eager(bag_dir, graph, self.device)
            self.specs[model] = spec
            # One untimed frame: a first run pays for lazy kernel loading (CUDA) and primitive
            # set-up (oneDNN), which no frame of the task should.
            bag.graph.run_stages(bag.graph.example_input().to(self.device))
        # In the bag's stages: a bag may fuse the model's own (see kernels/compile.py).
        self.graphs[model] = self.bags[model].graph
        return self.graphs[model]


class CoordinatorService:
    def __init__(self, options: ServiceOptions, models: ModelSet | None = None,
                 predictor: ContentionPredictor | None = None):
        self.options = options
        self.policies = [options.policy]  # each policy in force in turn: a run's summary shows what changed live
        self.versions = options.versions or DEFAULT_VERSIONS[options.policy]
        self.specs: dict[str, TaskSpec] = {}
        self.deadlines: dict[str, list[float]] = {}  # per task, each deadline in force in turn (ms), likewise
        self.models = models if models is not None else ModelSet(options.device)
        if self.models.lane_kind != resolve_kind(options.device):
            raise ValueError(f"the models live on {self.models.lane_kind} but the lanes are "
                             f"{resolve_kind(options.device)}")
        self._on_finished: dict[str, OnFinished | None] = {}
        self._record_listeners: list[Callable[[JobRecord, int], None]] = []
        self._stamps: dict[tuple[str, int], int] = {}  # (task, frame) -> its source stamp, while listened
        # Tracing: (grant, seen ended at, its times or None when it failed), under the coordinator's lock.
        self.on_stage: Callable[[Grant, float, StageTime | None], None] | None = None
        self.driver: LiveDriver | None = None
        self.monitor: Monitor | None = None
        self._pool: LanePool | None = None
        self._predictor = predictor if predictor is not None else ContentionPredictor()

    @property
    def graphs(self) -> dict[str, StageGraph]:
        return self.models.graphs

    @property
    def bags(self) -> dict[str, KernelBag]:
        return self.models.bags

    # -- set-up ---------------------------------------------------------------------------
    def add_task(self, spec: TaskSpec, bag_dir: str | Path | None, on_finished: OnFinished | None = None,
                 model: ModelSpec | None = None) -> StageGraph:
        """Register a task before start(): builds its model (`model`, whose key is spec.model;
        default: the zoo model spec.model names) and loads its kernel bag (a missing or broken
        bag falls back to eager versions, with a warning)."""
        if self.driver is not None:
            raise RuntimeError("tasks are added before start()")
        if spec.name in self.specs:
            raise ValueError(f"task {spec.name!r} is already registered")
        model = model or ModelSpec(spec.model)
        if model.key != spec.model:
            raise ValueError(f"task {spec.name}: its model is {spec.model!r}, but {model.model} goes by {model.key!r}")
        graph = self.models.load(model, bag_dir)
        self.specs[spec.name] = spec
        self.deadlines[spec.name] = [spec.deadline_ms]
        self._on_finished[spec.name] = on_finished
        return graph

    def add_record_listener(self, listener: Callable[[JobRecord, int], None]) -> None:
        """Also hear how every frame of every task ended (a bench, a logger), as the task's own
        callback does, after it, with the frame's source stamp (`submit`); a listener that raises
        is logged and skipped."""
        self._record_listeners.append(listener)

    @property
    def cores(self) -> int:
        return self.options.lanes or os.cpu_count() or 1

    def _build(self, keep_records: bool) -> LiveDriver:
        """The lane pool, monitor, coordinator and its driver (not yet running)."""
        if not self.specs:
            raise ValueError("no task to serve")
        if self.driver is not None:
            raise RuntimeError("the service runs once")
        tasks = list(self.specs.values())
        policy = make_policy(self.policy_name)
        n = policy.lanes(self.cores, len(tasks))
        if self.options.switchable:  # enough lanes for any policy a switch may pick (naive wants one per task)
            n = max(make_policy(p).lanes(self.cores, len(tasks)) for p in POLICIES)
        self._pool = LanePool(uniform_specs(n, kind=self.options.device, threads=1))
        self.monitor = Monitor(tasks, self.options.status_window_s)
        lanes = [lane.name for lane in self._pool][:policy.lanes(self.cores, len(tasks))]
        stages = {t.name: len(self.graphs[t.model]) for t in tasks}
        coord = Coordinator(tasks, stages, lanes, policy, self._chooser(self.versions), cores=self.cores,
                            on_record=self._record, keep_records=keep_records)
        self.driver = LiveDriver(coord, self._pool, self.bags, on_stage=self._stage)
        # The models, their kernel bags and sessions stay for good: moved out of the collector's
        # sight, a full collection during the run scans only what the run made. Before, one took
        # up to 118 ms, and no stage was granted meanwhile.
        gc.collect()
        gc.freeze()
        return self.driver

    def start(self) -> None:
        """Serve until stop(): frames come through submit(), the driver's clock thread keeps time."""
        driver = self._build(keep_records=False)
        # Read before the clock thread starts: afterwards `coord` is touched under the driver's lock only.
        log.info("coordinating %d task(s) with policy %s (versions %s) on %d %s lane(s)", len(self.specs),
                 self.policy_name, self.versions, len(driver.coord.lanes), resolve_kind(self.options.device))
        driver.start()

    def replay(self, arrivals: Sequence[tuple[float, str]], duration_s: float,
               make_input: Callable[[str], torch.Tensor]) -> list[JobRecord]:
        """Instead of start(): replay `arrivals` (seconds from now, task; other tasks' are skipped)
        in real time on this thread for `duration_s`, serve what was released (bounded), close
        the lanes, and return every record; grant_us() still answers after."""
        driver = self._build(keep_records=True)
        mine = [a for a in arrivals if a[1] in self.specs]
        try:
            return driver.run(mine, duration_s, make_input)
        finally:
            self.stop()

    def _chooser(self, setting: str) -> VersionChooser:
        return VersionChooser(self.bags, setting, self._predictor)

    # -- running ------------------------------------------------------------------------------
    def now(self) -> float:
        return self.driver.now() if self.driver else 0.0

    def submit(self, task: str, frame: int, data: Any, then: Any = None, stamp_ns: int = 0) -> float:
        """Hand a frame over (any thread): its input (a tensor, or HostWork making it), and
        optionally HostWork to finish the output on the last stage's lane. `stamp_ns`, the
        frame's stamp at its source (0: none), only travels to the record listeners. Returns its
        release time on the service clock."""
        if task not in self.specs:
            raise KeyError(f"unknown task {task!r}")
        if self._record_listeners:
            self._stamps[task, frame] = stamp_ns
        release = self.driver.now()
        self.driver.submit(task, frame, data, release, then)
        return release

    def switch_policy(self, policy: str, versions: str = "") -> None:
        """Any thread; takes effect before the next decision, dropping nothing."""
        pol = make_policy(policy)
        versions = versions or DEFAULT_VERSIONS[policy]
        check_versions(versions)
        lanes = [lane.name for lane in self._pool][:pol.lanes(self.cores, len(self.specs))]
        self.driver.switch_policy(pol, lanes, self._chooser(versions))
        self.versions = versions
        if policy != self.policy_name:
            self.policies.append(policy)
        log.info("policy switched to %s (versions %s) on %d lane(s)", policy, versions, len(lanes))

    def update_task(self, spec: TaskSpec) -> None:
        """Any thread: a running task (by its name) changed its rate, deadline or overload rule;
        takes effect before the next decision."""
        if spec.name not in self.specs:
            raise KeyError(f"unknown task {spec.name!r}")
        if self.driver is not None:
            self.driver.call(lambda c: c.update_task(spec))
        if self.monitor is not None:
            self.monitor.update_task(spec)
        self.specs[spec.name] = spec
        if spec.deadline_ms != self.deadlines[spec.name][-1]:
            self.deadlines[spec.name].append(spec.deadline_ms)

    @property
    def policy_name(self) -> str:
        """The policy in force."""
        return self.policies[-1]

    @property
    def lanes(self) -> list[str]:
        return self.driver.call(lambda c: list(c.lanes)) if self.driver else []

    def snapshot(self) -> dict[str, dict]:
        return self.monitor.snapshot(self.now()) if self.monitor else {}

    def running_s(self) -> dict[str, float]:
        """Per task with a stage running now: how long the oldest has run (s)."""
        if self.driver is None:
            return {}
        started = self.driver.call(lambda c: [(g.request.job.task.name, g.granted_at) for g in c.running_grants()])
        now, out = self.now(), {}
        for task, at in started:
            out[task] = max(out.get(task, 0.0), now - at)
        return out

    def cpu_s(self) -> float:
        """CPU seconds the coordinator's decisions and bookkeeping have taken so far, on whichever
        threads made them (the executor's for frames handed over, the lanes' for stages ended)."""
        return self.driver.cpu_s if self.driver else 0.0

    def grant_us(self) -> list[float]:
        return self.driver.call(lambda c: list(c.grant_us)) if self.driver else []

    def stop(self, drain_timeout_s: float = 2.0) -> None:
        """Stop taking frames; in-flight work gets `drain_timeout_s`, the rest is counted dropped."""
        if self.driver is not None:
            self.driver.stop(drain_timeout_s)
        if self._pool is not None:
            # The drain is over: a stage still running now is stuck, and is left behind.
            self._pool.close(LANE_CLOSE_S)
            self._pool = None
            gc.unfreeze()  # what the run held may be collected now (a lifecycle may build anew)

    # -- under the coordinator's lock ------------------------------------------------------------
    def _record(self, rec: JobRecord, job: Job) -> None:
        self.monitor.add(rec, self.now())
        try:
            on_finished = self._on_finished[rec.task]
            if on_finished is not None:
                on_finished(rec, job.data if rec.outcome is Outcome.DONE else None)
        except Exception:  # a front end's callback must not stop the coordinator
            log.exception("result callback of task %s failed", rec.task)
        stamp_ns = self._stamps.pop((rec.task, rec.frame), 0)
        for listener in self._record_listeners:
            try:
                listener(rec, stamp_ns)
            except Exception:
                log.exception("record listener %r failed", listener)

    def _stage(self, grant: Grant, finished: float, timing: StageTime | None) -> None:
        if self.on_stage is not None:
            self.on_stage(grant, finished, timing)
