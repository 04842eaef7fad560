"""Building a kernel bag: compile every stage's versions, check each against eager, profile the
survivors under every contention condition, and write the bag.

Work is cached by what it was made from: a version whose source (stage weights, input shape,
backend, resource shape, torch) is unchanged keeps its artifacts, and a profile already taken
under a condition is not taken again, so a re-run only does what changed.

A time budget orders the work: eager versions always, cheap backends next, the expensive
inductor builds last and largest stages first; timed repetitions shrink to fit what is left.
A version that cannot be profiled completely is left out, so the manifest is always complete.

The bag's stages are a compile-time choice, as in IOS: consecutive model stages too small to be
worth a grant of their own are fused into one stage (`min_stage_ms`), and the bag keeps that
partition, which the runtime applies to the model when it loads the bag.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from tqdm import tqdm

from aaron_ros.kernels.backends import get_backend
from aaron_ros.kernels.backends.base import device_unavailable
from aaron_ros.kernels.background import PROBE_KINDS
from aaron_ros.kernels.bag import (
    BagError,
    Manifest,
    StageInfo,
    compatibility_problems,
    device_signature,
    partitioned,
    read_manifest,
    reference_stage,
    sha256_file,
    weights_digest,
    write_manifest,
)
from aaron_ros.kernels.check import check_version
from aaron_ros.kernels.profile import (
    LaneSet,
    Probe,
    conditions_for,
    finish_sensitivity,
    measure_pressure,
    profile_condition,
    stage_timer,
)
from aaron_ros.kernels.version import Artifact, ResourceShape, Version, version_id
from aaron_ros.models import ModelSpec, Stage, StageGraph, build_model, describe, fuse, group_stages

log = logging.getLogger(__name__)

ARTIFACTS = "artifacts"
# Rough build cost per backend (s), to decide what still fits in a budget.
BUILD_COST_S = {"eager": 0.0, "onnxruntime": 1.0, "inductor": 30.0, "tensorrt": 60.0}
# Share of the budget that building may use; the rest is for profiling.
BUILD_SHARE = 0.5
PRESSURE_REPS = 7
PRESSURE_S = 0.05 * PRESSURE_REPS * 2  # rough: probe runs for compute and memory
# A stage a grant is worth, timed on the quickest build (what mostly runs). In the ROS container a
# stage boundary costs 0.2-0.6 ms of CPU live (the decision, the hand-offs to and from a lane
# thread, a session run): at 8 ms instead of 4, f1tenth's grants per frame fell from 2.1 to 1.25
# and the CPU outside the model stages by 0.13-0.61 ms per frame, with fewer frames dropped
# (results/ros_bench/stage_size_ab_cpu2_amd_epyc/). Larger still, a normal stage blocks a critical
# frame for longer. Timed eager instead, stages came out 0.35-3.5 ms.
MIN_STAGE_MS = 8.0
# Backends built once per stage to time it before fusing: cheap enough (about 0.3 s a stage).
QUICK_BUILD_S = 1.0


# AOTInductor's CPU runner holds the interpreter lock through its whole call (probes beside it
# slow 2-57x: contention/predictor.py), and on the reference CPUs its versions were never the
# fastest family under any contention (2-4x slower than ONNX Runtime: results/kernel_bags/). On a
# CPU it is built only when asked for.
DEFAULT_BACKENDS = {"cpu": ("eager", "onnxruntime"), "cuda": ("eager", "onnxruntime", "inductor")}


@dataclass
class CompileOptions:
    device: str = "cpu"
    backends: tuple[str, ...] | None = None  # None: DEFAULT_BACKENDS for the device
    threads: tuple[int, ...] | None = None  # default: 1 and all cores
    kinds: tuple[str, ...] = ("compute", "memory", "model")
    budget_s: float | None = None
    reps: int = 10  # timed repetitions per version and condition, at most
    min_reps: int = 3
    warmup: int = 2
    seed: int = 0
    weights: str | None = None  # a state-dict file instead of the seeded weights (one model)
    # Consecutive stages are fused until each costs at least this (alone, on its quickest build:
    # see stage_costs): a stage is worth a grant only well above the grant's own cost. 0: never.
    min_stage_ms: float = MIN_STAGE_MS
    progress: bool = True
    retry_skipped: bool = False  # try again what an earlier run left out for lack of time

    def __post_init__(self) -> None:
        if self.backends is None:
            self.backends = DEFAULT_BACKENDS["cuda" if self.device.startswith("cuda") else "cpu"]
        reason = device_unavailable(torch.device(self.device))
        if reason:
            raise ValueError(f"cannot build a kernel bag for {self.device}: {reason}")

    def profile_s(self, run_s: float, conditions: int, reps: int | None = None) -> float:
        """Rough cost of profiling a version whose one run takes `run_s` under `conditions`
        conditions (contention about doubles a run), probes included."""
        reps = (self.reps + self.min_reps) // 2 if reps is None else reps
        return run_s * (reps + self.warmup) * max(0, 2 * conditions - 1) + PRESSURE_S

    def thread_counts(self) -> tuple[int, ...]:
        """CPU intra-op budgets to try: 1, 2, 4, ... and all cores (the host side on CUDA: 1)."""
        if self.device.startswith("cuda"):
            return (1,)
        cores = os.cpu_count() or 1
        return self.threads or tuple(sorted({cores, *(2 ** i for i in range(cores.bit_length()) if 2 ** i <= cores)}))


@dataclass
class Candidate:
    stage: Stage
    backend: str
    shape: ResourceShape

    @property
    def id(self) -> str:
        return version_id(self.stage.index, self.backend, self.shape)


@dataclass
class CompileReport:
    bag_dir: Path
    manifest: Manifest
    built: int = 0
    reused: int = 0
    profiled: int = 0
    seconds: float = 0.0
    skipped: list[dict] = field(default_factory=list)


def stage_inputs(graph: StageGraph, device: torch.device) -> list[torch.Tensor]:
    """A real input for every stage: one example frame pushed through the eager model."""
    g = torch.Generator().manual_seed(1234)  # drawn on the CPU: the same frame on any device
    x, inputs = graph.example_input(generator=g).to(device), []
    with torch.inference_mode():
        for stage in graph.stages:
            inputs.append(x)
            x = stage(x)
    return inputs


def candidates(graph: StageGraph, opts: CompileOptions, device: torch.device,
               stage_cost: dict[int, float]) -> tuple[list[Candidate], list[dict]]:
    """Every (stage, backend, shape) to try, in budget order; and those not offered, with why."""
    skipped, cands = [], []
    for name in opts.backends:
        backend = get_backend(name)
        reason = backend.unavailable(device)
        if reason:
            log.info("backend %s not used: %s", name, reason)
            skipped.append({"id": f"*.{name}.*", "reason": reason})
            continue
        for stage in graph.stages:
            for shape in shapes_for(stage, opts, device):
                if backend.supports(stage, shape, device) is None:
                    cands.append(Candidate(stage, name, shape))
    # Cheap backends first; within a backend, the stages that cost most first (most to gain).
    cands.sort(key=lambda c: (BUILD_COST_S.get(c.backend, 10.0), -stage_cost.get(c.stage.index, 0.0),
                              c.stage.index, c.shape.threads))
    return cands, skipped


def shapes_for(stage: Stage, opts: CompileOptions, device: torch.device) -> list[ResourceShape]:
    """Resource shapes worth a version of `stage`.

    CPU: each thread budget. CUDA: the default stream, a high-priority stream, and half the SMs
    through a green context where this torch supports them. Branch groups also get their
    branches side by side on lanes (as many as branches, up to the thread budget, at least 2)."""
    if device.type == "cuda":
        shapes = [ResourceShape(), ResourceShape(priority=-1)]
        if green_contexts_supported():
            sms = torch.cuda.get_device_properties(device).multi_processor_count // 2
            shapes.append(ResourceShape(sms=sms))
        lanes = 2
    else:
        shapes = [ResourceShape(threads=t) for t in opts.thread_counts()]
        lanes = max(opts.thread_counts())
    if stage.is_branch_group:
        shapes.append(ResourceShape(threads=max(2, min(lanes, len(stage.branches))), branches="parallel"))
    return shapes


def green_contexts_supported() -> bool:
    try:
        from torch.cuda import green_contexts
    except ImportError:
        return False
    return bool(green_contexts.SUPPORTED)


def source_hash(stage: Stage, x: torch.Tensor, cand: Candidate) -> str:
    h = hashlib.sha256()
    h.update(weights_digest(stage.module).encode())
    h.update(f"{tuple(x.shape)}|{cand.backend}|{cand.shape}|{torch.__version__}".encode())
    return h.hexdigest()[:24]


def previous_manifest(bag_dir: Path, graph: StageGraph, device: torch.device) -> Manifest | None:
    """An earlier bag in the same place, if it can serve as a cache (with its stage partition)."""
    try:
        old = read_manifest(bag_dir)
        graph = partitioned(old, graph)
    except BagError as exc:
        if (bag_dir / "manifest.json").exists():
            log.warning("%s: not used as cache", exc)
        return None
    problems = compatibility_problems(old, graph, device)
    if problems:
        log.info("earlier bag in %s not reused: %s", bag_dir, "; ".join(problems))
        return None
    return old


def compile_bag(model: str | ModelSpec | StageGraph, out_dir: str | Path,
                opts: CompileOptions | None = None) -> CompileReport:
    """The kernel bag of `model` (a zoo name, a declared model, or a graph) in `out_dir`."""
    opts = opts or CompileOptions()
    t_start = time.monotonic()
    deadline = t_start + opts.budget_s if opts.budget_s else float("inf")
    device = torch.device(opts.device)
    graph = model if isinstance(model, StageGraph) else build_model(model, seed=opts.seed, weights=opts.weights)
    graph.model.to(device)
    bag_dir = Path(out_dir)
    (bag_dir / ARTIFACTS).mkdir(parents=True, exist_ok=True)
    old = previous_manifest(bag_dir, graph, device)
    old_versions = {v.id: v for v in old.versions} if old else {}
    old_skips = {} if (old is None or opts.retry_skipped) else {
        s["id"]: s["reason"] for s in old.skipped if s["reason"].startswith("time budget")}

    conditions = conditions_for(tuple(opts.kinds))
    lanes = LaneSet(device, count=max(2, max(opts.thread_counts())))
    report = CompileReport(bag_dir, manifest=None)  # type: ignore[arg-type]
    calibration = dict(old.calibration) if old else {}
    try:
        # The stage partition: an earlier bag's (so its versions stay reusable), or fused from
        # the model's stages by what they cost on the build that will mostly run them.
        partition = old.partition if old else []
        inputs = stage_inputs(graph, device)
        eager_cost = eager_costs(graph, inputs, lanes)
        if old is None and opts.min_stage_ms > 0:
            run_cost = stage_costs(graph, inputs, eager_cost, opts, device, lanes)
            partition = fused_partition(graph, run_cost, opts.min_stage_ms)
        if partition:
            graph = fuse(graph, partition)
            log.info("%s: %d stages fused into %d of at least %g ms each", graph.name,
                     sum(map(len, partition)), len(partition), opts.min_stage_ms)
            # A fused stage takes its first stage's input and costs what its stages cost.
            inputs = [inputs[g[0]] for g in partition]
            eager_cost = {k: sum(eager_cost[i] for i in g) for k, g in enumerate(partition)}
        cands, report.skipped = candidates(graph, opts, device, eager_cost)
        versions, timers, costs = _build_all(cands, graph, inputs, bag_dir, old_versions, old_skips, opts,
                                             device, lanes, deadline, len(conditions), eager_cost, report)
        calibration.update(_profile_all(versions, timers, costs, conditions, opts, device, deadline, report))
    finally:
        lanes.close()

    kept_files = {a.path for v in versions for a in v.artifacts}
    for path in (bag_dir / ARTIFACTS).iterdir():  # artifacts of versions no longer in the bag
        if f"{ARTIFACTS}/{path.name}" not in kept_files:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    manifest = Manifest(
        model=graph.name, input_shape=list(graph.input_shape), backend=device.type, torch=torch.__version__,
        device=device_signature(device), weights_sha256=weights_digest(graph.model), conditions=conditions,
        stages=[StageInfo(s.index, s.name, s.is_branch_group, list(inputs[s.index].shape),
                          list(inputs[s.index + 1].shape) if s.index + 1 < len(inputs) else [])
                for s in graph.stages],
        versions=sorted(versions, key=lambda v: (v.stage, v.backend, v.shape.key)),
        calibration=calibration,
        skipped=report.skipped,
        partition=[list(g) for g in partition],
        min_stage_ms=old.min_stage_ms if old else opts.min_stage_ms)  # a kept partition keeps its size
    write_manifest(bag_dir, manifest)
    report.manifest = manifest
    report.seconds = time.monotonic() - t_start
    return report


def compile_many(models: list[tuple[str | ModelSpec, Path]], opts: CompileOptions,
                 budget_s: float) -> list[CompileReport]:
    """Bags for several models (each a zoo name or declaration, with its bag folder) under one budget.

    Cheapest models first, each given an even share of what is left: time a small model does
    not need goes to the larger ones after it, which have the most stages worth compiling."""
    order = sorted(models, key=lambda m: describe(m[0]).gflops)
    start, reports = time.monotonic(), []
    for i, (model, bag_dir) in enumerate(order):
        share = max(0.0, budget_s - (time.monotonic() - start)) / (len(order) - i)
        name = model.key if isinstance(model, ModelSpec) else model
        log.info("compiling %s into %s (%s, budget %.0f s)", name, bag_dir, opts.device, share)
        r = compile_bag(model, bag_dir, replace(opts, budget_s=share))
        log.info("%s: %d versions (%d built, %d reused, %d profiled), %d left out, %.1f s", name,
                 len(r.manifest.versions), r.built, r.reused, r.profiled, len(r.skipped), r.seconds)
        reports.append(r)
    return reports


def eager_costs(graph: StageGraph, inputs: list[torch.Tensor], lanes: LaneSet) -> dict[int, float]:
    """Each stage's eager time (s), one run after one warm-up."""
    return {s.index: _time_once(s, inputs[s.index], lanes) for s in graph.stages}


def fused_partition(graph: StageGraph, run_cost: dict[int, float], min_stage_ms: float) -> list[list[int]]:
    """A new bag's stage groups: the model's stages fused to at least `min_stage_ms` each by what
    they cost (s, `stage_costs`); empty (the model's own stages) when none fuse."""
    groups = group_stages([run_cost[s.index] * 1e3 for s in graph.stages],
                          [s.is_branch_group for s in graph.stages], min_stage_ms)
    return groups if len(groups) < len(graph.stages) else []


def stage_costs(graph: StageGraph, inputs: list[torch.Tensor], eager_cost: dict[int, float],
                opts: CompileOptions, device: torch.device, lanes: LaneSet) -> dict[int, float]:
    """Each stage's time alone (s) on what will mostly run it: the faster of eager and one quick
    build (the first backend offered that builds in about a second, ONNX Runtime by default) at
    the widest thread budget. ONNX Runtime is 3-10x faster than eager on CPUs, and not evenly
    over a model's stages, so eager times would fuse too little, and in the wrong places."""
    costs = dict(eager_cost)
    quick = next((name for name in opts.backends if 0 < BUILD_COST_S.get(name, 10.0) <= QUICK_BUILD_S
                  and get_backend(name).unavailable(device) is None), None)
    if quick is None:
        return costs
    backend = get_backend(quick)
    shape = ResourceShape(threads=max(opts.thread_counts())) if device.type == "cpu" else ResourceShape()
    with tempfile.TemporaryDirectory() as tmp:
        for stage in tqdm(graph.stages, desc=f"{graph.name}: time stages on {quick}", unit="stage",
                          disable=not opts.progress):
            if backend.supports(stage, shape, device) is not None:
                continue
            x = inputs[stage.index]
            try:
                runner = backend.load(stage, backend.build(stage, x, shape, Path(tmp), f"s{stage.index}"), shape,
                                      device)
                costs[stage.index] = min(costs[stage.index], _time_once(runner, x, lanes, shape))
            except Exception as exc:  # the bag's own build of it will say so; eager time stands
                log.debug("%s: stage %s not timed on %s: %s", graph.name, stage.name, quick, exc)
    return costs


def _time_once(stage: Stage, x: torch.Tensor, lanes: LaneSet, shape: ResourceShape | None = None) -> float:
    once = stage_timer(stage, shape or ResourceShape(), x, lanes)
    once()
    return once()


def _build_all(cands, graph, inputs, bag_dir, old_versions, old_skips, opts, device, lanes, deadline,
               n_conditions, eager_cost, report):
    """Build (or reuse) and check every candidate that fits the budget: its build, and the
    profiling of it and of everything accepted before it, must end before the deadline."""
    versions, timers, costs = [], {}, {}
    build_deadline = time.monotonic() + (deadline - time.monotonic()) * BUILD_SHARE
    committed_s = 0.0  # profiling still owed to the versions accepted so far
    bar = tqdm(cands, desc=f"{graph.name}: build+check", unit="version", disable=not opts.progress)
    for cand in bar:
        x = inputs[cand.stage.index]
        src = source_hash(cand.stage, x, cand)
        prev = old_versions.get(cand.id)
        reuse = prev is not None and prev.source == src and all(
            (bag_dir / a.path).is_file() and sha256_file(bag_dir / a.path) == a.sha256 for a in prev.artifacts)
        must = cand.backend == "eager"
        if not reuse and not must and cand.id in old_skips:  # a decision cached like the rest
            report.skipped.append({"id": cand.id, "reason": old_skips[cand.id]})
            continue
        owed = 0.0 if reuse else opts.profile_s(eager_cost[cand.stage.index], n_conditions)
        now = time.monotonic()
        if not reuse and not must and (now + BUILD_COST_S.get(cand.backend, 10.0) > build_deadline
                                       or now + BUILD_COST_S.get(cand.backend, 10.0) + committed_s + owed > deadline):
            report.skipped.append({"id": cand.id, "reason": "time budget"})
            continue
        backend = get_backend(cand.backend)
        t0 = time.monotonic()
        try:
            if reuse:
                version = Version.from_dict(prev.to_dict())
                paths = [bag_dir / a.path for a in version.artifacts]
            else:
                paths = backend.build(cand.stage, x, cand.shape, bag_dir / ARTIFACTS, cand.id)
                version = Version(id=cand.id, stage=cand.stage.index, backend=cand.backend, shape=cand.shape,
                                  source=src, artifacts=[Artifact(f"{ARTIFACTS}/{p.name}", sha256_file(p))
                                                         for p in paths])
            runner = backend.load(cand.stage, paths, cand.shape, device)
        except Exception as exc:
            _leave_out(report, cand.id, f"build failed: {type(exc).__name__}: {exc}")
            continue
        result = check_version(runner, reference_stage(cand.stage), tuple(x.shape), device=device)
        if not result.ok:
            _leave_out(report, cand.id, f"failed the equivalence check: {result.reason}")
            for p in ([] if reuse else paths):
                p.unlink(missing_ok=True)
            continue
        if not reuse:
            version.build_s = round(time.monotonic() - t0, 3)
            report.built += 1
        else:
            report.reused += 1
        version.max_rel_err = result.max_rel_err
        timers[version.id] = stage_timer(runner, cand.shape, x, lanes)
        costs[version.id] = timers[version.id]()
        if len(version.profiles) < n_conditions:
            committed_s += opts.profile_s(costs[version.id], n_conditions - len(version.profiles))
        versions.append(version)
    return versions, timers, costs


def _profile_all(versions, timers, costs, conditions, opts, device, deadline, report) -> dict:
    """Profile what is missing, with repetitions sized to the budget; drop what cannot fit.

    Returns, per condition profiled, what the background generator measured of itself."""
    kinds = tuple(opts.kinds)

    def todo(v: Version) -> list[str]:
        return [c for c in conditions if c not in v.profiles]

    def planned_s(vs: list[Version], reps: int) -> float:
        return sum(opts.profile_s(costs[v.id], len(todo(v)), reps) for v in vs if todo(v) or not v.pressure)

    reps = opts.reps
    left = deadline - time.monotonic()
    while reps > opts.min_reps and planned_s(versions, reps) > left:
        reps -= 1
    # Still too much: leave out the most expensive non-eager versions that need work.
    for v in sorted(versions, key=lambda v: -costs[v.id]):
        if planned_s(versions, reps) <= left:
            break
        if v.backend != "eager" and todo(v):
            versions.remove(v)
            report.skipped.append({"id": v.id, "reason": "time budget (profiling)"})
    for v in versions:
        if todo(v):
            report.profiled += 1
    calibration = {}
    total = sum(len(todo(v)) for v in versions)
    with tqdm(total=total, desc="profile", unit="run", disable=not opts.progress or not total) as bar:
        for cond in conditions:
            work = [(v, timers[v.id]) for v in versions if cond not in v.profiles]
            if work:
                calibration[cond] = profile_condition(cond, work, device, reps, opts.warmup, bar.update)
    probe_kinds = [k for k in kinds if k in PROBE_KINDS]  # "model" is a mix: no probe of its own
    need_pressure = [v for v in versions if set(v.pressure) != set(probe_kinds)]
    if need_pressure:
        probes = [Probe.make(k, device, PRESSURE_REPS) for k in probe_kinds]
        try:
            for v in tqdm(need_pressure, desc="pressure", unit="version", disable=not opts.progress):
                v.pressure = {p.kind: measure_pressure(timers[v.id], p, PRESSURE_REPS) for p in probes}
        finally:
            for p in probes:
                p.lane.close()
    for v in versions:
        finish_sensitivity(v, kinds)
    return calibration


def _leave_out(report: CompileReport, vid: str, reason: str) -> None:
    log.warning("version %s left out: %s", vid, reason)
    report.skipped.append({"id": vid, "reason": reason})
