"""The kernel bag on disk: a folder with `manifest.json` and the versions' artifacts.

Loading checks everything a stale or damaged bag could get wrong: schema, checksums, that the
bag was built for this model's weights, this torch and this device, and it re-runs every
version's equivalence check against the eager stage, so a version that was never checked cannot
be loaded. Where a bag cannot be used, `fallback.load_bag_or_eager` warns and serves eager versions.
"""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch

from aaron_ros.common.machine import cpu_model
from aaron_ros.kernels.backends import get_backend
from aaron_ros.kernels.background.levels import ISOLATION
from aaron_ros.kernels.check import check_version
from aaron_ros.kernels.version import ResourceShape, Version, version_id
from aaron_ros.models import Stage, StageGraph, fuse

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
class BagError(RuntimeError):
    """A kernel bag that cannot be used: missing, corrupted, stale or incompatible."""


@dataclass
class StageInfo:
    index: int
    name: str
    branch_group: bool
    input_shape: list[int]
    output_shape: list[int]


@dataclass
class Manifest:
    model: str
    input_shape: list[int]
    backend: str  # the device kind the bag targets: cpu or cuda
    torch: str
    device: dict  # name, cores, sms: versions are only valid where they were built and profiled
    weights_sha256: str
    conditions: list[str]  # "isolation", "<kind>/<level>"
    stages: list[StageInfo]
    versions: list[Version]
    calibration: dict = field(default_factory=dict)
    skipped: list[dict] = field(default_factory=list)  # {"id", "reason"}: left out, and why
    # The bag's stages as groups of the model's own, each group fused into one stage
    # (`stage_graph.fuse`); empty: the model's own stages.
    partition: list[list[int]] = field(default_factory=list)
    # The size its stages were fused to (compile's --min-stage-ms); None: a bag built before bags
    # said it.
    min_stage_ms: float | None = None
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    schema: int = SCHEMA_VERSION

    def to_dict(self) -> dict:
        d = asdict(self)
        d["versions"] = [v.to_dict() for v in self.versions]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Manifest:
        d = dict(d)
        d["stages"] = [StageInfo(**s) for s in d["stages"]]
        d["versions"] = [Version.from_dict(v) for v in d["versions"]]
        return cls(**d)

    def versions_of(self, stage: int) -> list[Version]:
        return [v for v in self.versions if v.stage == stage]


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def weights_digest(module: torch.nn.Module) -> str:
    """Hash of a module's state (names, shapes, values): compiled artifacts embed the weights."""
    h = hashlib.sha256()
    for name, t in module.state_dict().items():
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        # Flattened: a 0-d tensor (BN's batch counter) cannot be viewed as bytes.
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def device_signature(device: torch.device) -> dict:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return {"kind": "cuda", "name": props.name, "sms": props.multi_processor_count,
                "cores": os.cpu_count()}
    return {"kind": "cpu", "name": cpu_model(), "cores": os.cpu_count(), "sms": None}


def write_manifest(bag_dir: str | Path, manifest: Manifest) -> Path:
    """Write atomically: a crash never leaves a half-written manifest behind."""
    bag_dir = Path(bag_dir)
    bag_dir.mkdir(parents=True, exist_ok=True)
    tmp = bag_dir / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest.to_dict(), indent=1) + "\n")
    os.replace(tmp, bag_dir / MANIFEST)
    return bag_dir / MANIFEST


def read_manifest(bag_dir: str | Path) -> Manifest:
    path = Path(bag_dir) / MANIFEST
    if not path.is_file():
        raise BagError(f"no kernel bag at {bag_dir}: {MANIFEST} is missing")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BagError(f"kernel bag manifest {path} is corrupted: {exc}") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA_VERSION:
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise BagError(f"kernel bag manifest {path} has schema {found!r}; this aaron_ros reads "
                       f"schema {SCHEMA_VERSION}: rebuild the bag with `aaron-ros compile`")
    try:
        return Manifest.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise BagError(f"kernel bag manifest {path} is corrupted: {type(exc).__name__}: {exc}") from None


def partitioned(manifest: Manifest, graph: StageGraph) -> StageGraph:
    """The model's graph cut into the bag's stages."""
    if not manifest.partition:
        return graph
    try:
        return fuse(graph, manifest.partition)
    except ValueError as exc:
        raise BagError(f"the bag's stage partition does not fit the model: {exc}") from None


def compatibility_problems(manifest: Manifest, graph: StageGraph, device: torch.device) -> list[str]:
    """Why this bag does not fit this model, weights, torch and device (empty: it fits)."""
    problems = []
    if manifest.model != graph.name:
        problems.append(f"built for model {manifest.model!r}, not {graph.name!r}")
    if list(manifest.input_shape) != list(graph.input_shape):
        problems.append(f"built for input {manifest.input_shape}, not {list(graph.input_shape)}")
    if len(manifest.stages) != len(graph.stages):
        problems.append(f"has {len(manifest.stages)} stages, the model has {len(graph.stages)}")
    if manifest.weights_sha256 != weights_digest(graph.model):
        problems.append("built for other weights (weights checksum differs)")
    if not manifest.versions:
        problems.append("it holds no versions")
    if manifest.torch != torch.__version__:
        problems.append(f"built with torch {manifest.torch}, running {torch.__version__}")
    if not isinstance(manifest.device, dict):
        return [*problems, f"its device is {manifest.device!r}, not a device description (corrupted)"]
    here = device_signature(device)
    for key in ("kind", "name", "cores", "sms"):
        if manifest.device.get(key) != here[key]:
            problems.append(f"built on device {key}={manifest.device.get(key)!r}, this one has {here[key]!r}")
    return problems


def version_problem(v: Version, manifest: Manifest, bag_dir: Path) -> str | None:
    """Why this one version of a sound bag cannot be used (None: it can): it is left out, and the
    rest of the bag serves."""
    stages = len(manifest.stages)
    if not isinstance(v.stage, int) or not 0 <= v.stage < stages:
        return f"it is for stage {v.stage!r}, the bag has stages 0-{stages - 1}"
    for a in v.artifacts:
        path = bag_dir / a.path
        if not path.is_file():
            return f"artifact {a.path} is missing"
        if sha256_file(path) != a.sha256:
            return f"artifact {a.path} fails its checksum (corrupted)"
    return None


@dataclass
class KernelBag:
    """The versions of one model's stages, loaded and ready to run."""

    graph: StageGraph
    versions: dict[int, list[Version]]  # stage index -> versions (always at least eager)
    runners: dict[str, Stage]  # version id -> runnable stand-in for the stage
    manifest: Manifest | None = None
    fallback_reason: str | None = None  # set when this is the eager fallback

    def best(self, stage: int, condition: str = ISOLATION) -> Version:
        """The version with the lowest median latency under `condition` (eager if unprofiled)."""
        profiled = [v for v in self.versions[stage] if condition in v.profiles]
        if not profiled:
            return self.versions[stage][0]
        return min(profiled, key=lambda v: v.profiles[condition].p50_ms)

    def runner(self, version: Version) -> Stage:
        return self.runners[version.id]


def eager_version(stage: Stage, threads: int = 1) -> Version:
    shape = ResourceShape(threads=threads)
    return Version(id=version_id(stage.index, "eager", shape), stage=stage.index, backend="eager", shape=shape)


def eager_bag(graph: StageGraph, reason: str | None = None) -> KernelBag:
    versions = {s.index: [eager_version(s)] for s in graph.stages}
    runners = {vs[0].id: graph.stages[i] for i, vs in versions.items()}
    return KernelBag(graph, versions, runners, None, reason)


def reference_stage(stage: Stage) -> Stage:
    """The eager stage on the CPU, where `check_version` computes its float32 reference."""
    param = next(stage.module.parameters(), None)
    if param is None or param.device.type == "cpu":
        return stage
    module = copy.deepcopy(stage.module).cpu()
    branches = tuple(module.branches) if stage.is_branch_group else ()
    return Stage(stage.index, stage.name, module, branches)


def load_bag(bag_dir: str | Path, graph: StageGraph, device: torch.device | str = "cpu",
             verify: bool = True) -> KernelBag:
    """Load and validate a bag for `graph` (the model's own stages; the bag's `graph` is cut into
    the bag's stages); raises BagError naming what is wrong.

    With `verify`, every version is checked again against the eager stage on fresh inputs;
    a version that fails is left out with a warning (its eager stage remains).
    """
    bag_dir, device = Path(bag_dir), torch.device(device)
    manifest = read_manifest(bag_dir)
    graph = partitioned(manifest, graph)
    problems = compatibility_problems(manifest, graph, device)
    if problems:
        raise BagError(f"kernel bag {bag_dir} cannot be used: " + "; ".join(problems))
    versions: dict[int, list[Version]] = {s.index: [] for s in graph.stages}
    runners: dict[str, Stage] = {}
    for v in manifest.versions:
        problem = version_problem(v, manifest, bag_dir)
        if problem:  # one damaged version costs only itself
            log.warning("kernel bag %s: version %s left out: %s", bag_dir / MANIFEST, v.id, problem)
            continue
        stage = graph.stages[v.stage]
        try:
            runner = get_backend(v.backend).load(stage, [bag_dir / a.path for a in v.artifacts], v.shape, device)
        except Exception as exc:  # a backend missing here, or an artifact it cannot open
            log.warning("kernel bag %s: version %s left out: cannot load: %s", bag_dir, v.id, exc)
            continue
        if verify:
            result = check_version(runner, reference_stage(stage), tuple(manifest.stages[v.stage].input_shape),
                                   device=device)
            if not result.ok:
                log.warning("kernel bag %s: version %s left out: %s", bag_dir, v.id, result.reason)
                continue
        versions[v.stage].append(v)
        runners[v.id] = runner
    for stage in graph.stages:  # eager is the reference: every stage always has it
        if not any(v.backend == "eager" for v in versions[stage.index]):
            ev = eager_version(stage)
            versions[stage.index].insert(0, ev)
            runners[ev.id] = stage
    return KernelBag(graph, versions, runners, manifest)
