"""The zoo run: several models at once, each on its own lane, against each alone.

This is the problem aaron_ros exists for, measured: without coordination, models that share a
device slow one another down. Every model is first timed alone on its lane, then all run
together for a while; the table shows the slowdown.
"""
from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import yaml
from tqdm import tqdm

from aaron_ros.bench.alone import time_alone
from aaron_ros.bench.workload import is_integer, is_number
from aaron_ros.common.machine import machine_info
from aaron_ros.common.report import text_table, write_report
from aaron_ros.common.stats import LatencySummary, summarize
from aaron_ros.models import StageGraph, build_model, model_names
from aaron_ros.runtime.executor import run_graph
from aaron_ros.runtime.lanes import Lane, LanePool, LaneSpec, resolve_kind


@dataclass
class ZooConfig:
    models: list[str] = field(default_factory=model_names)  # every zoo model
    lanes: str = "auto"  # lane kind: auto, cpu or cuda
    threads: int = 1  # intra-op threads per CPU lane
    duration_s: float = 10.0  # of the concurrent phase
    isolation_frames: int = 5  # timed frames per model alone
    warmup: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.models, list) or not all(isinstance(m, str) for m in self.models):
            raise ValueError(f"models must be a list of zoo model names, got {self.models!r}")
        for key in ("threads", "isolation_frames", "warmup", "seed"):
            if not is_integer(getattr(self, key)):
                raise ValueError(f"{key} must be an integer, got {getattr(self, key)!r}")
        if not is_number(self.duration_s):
            raise ValueError(f"duration_s must be a number, got {self.duration_s!r}")
        known = model_names()
        unknown = [m for m in self.models if m not in known]
        if not self.models or unknown:
            raise ValueError(f"models: unknown {unknown or 'empty list'}; known: {known}")
        resolve_kind(self.lanes)
        for key in ("threads", "isolation_frames"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.duration_s <= 0:
            raise ValueError(f"duration_s must be > 0, got {self.duration_s}")
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {self.warmup}")


def load_zoo_config(path: str | Path, **overrides) -> ZooConfig:
    """Read a zoo config from YAML; `overrides` (e.g. from the command line) win when not None."""
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read zoo config {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a zoo config is a mapping of keys, got {type(data).__name__}")
    allowed = set(ZooConfig.__dataclass_fields__)
    extra = sorted(set(data) - allowed)
    if extra:
        raise ValueError(f"{path}: unknown keys {extra}; allowed: {sorted(allowed)}")
    data.update({k: v for k, v in overrides.items() if v is not None})
    return ZooConfig(**data)


@dataclass
class ModelResult:
    model: str
    lane: str
    stages: int
    alone: LatencySummary
    together: LatencySummary
    failed: str | None = None

    @property
    def slowdown(self) -> float:
        return self.together.p50_ms / self.alone.p50_ms


@dataclass
class ZooReport:
    config: ZooConfig
    results: list[ModelResult]
    lane_kind: str
    machine: dict = field(default_factory=machine_info)

    def to_json(self) -> dict:
        return {"config": asdict(self.config), "lane_kind": self.lane_kind, "machine": self.machine,
                "models": [{**asdict(r), "slowdown": r.slowdown} for r in self.results]}


def run_zoo(cfg: ZooConfig, progress: bool = True) -> ZooReport:
    kind = resolve_kind(cfg.lanes)
    graphs = [build_model(m, seed=cfg.seed) for m in cfg.models]
    specs = [LaneSpec(name=f"{kind}{i}", kind=kind, threads=cfg.threads, priority=0)
             for i in range(len(graphs))]
    with LanePool(specs) as pool:
        lanes = list(pool)
        for g, lane in zip(graphs, lanes):
            g.model.to(lane.device)
        alone = [time_alone(g, lane, cfg.isolation_frames, cfg.warmup)
                 for g, lane in tqdm(list(zip(graphs, lanes)), desc="each model alone",
                                     unit="model", disable=not progress)]
        together, errors = _run_together(graphs, lanes, cfg.duration_s, progress)
    results = [ModelResult(g.name, lane.name, len(g), a, summarize(t), e)
               for g, lane, a, t, e in zip(graphs, lanes, alone, together, errors)]
    return ZooReport(cfg, results, kind)


def _run_together(graphs: list[StageGraph], lanes: list[Lane], duration_s: float,
                  progress: bool) -> tuple[list[list[float]], list[str | None]]:
    """Every model loops on its own lane until the time is up; one driver thread each."""
    latencies: list[list[float]] = [[] for _ in graphs]
    errors: list[str | None] = [None] * len(graphs)
    stop = threading.Event()

    def drive(i: int) -> None:
        graph, lane = graphs[i], lanes[i]
        try:
            while not stop.is_set():
                x = graph.example_input().to(lane.device)
                t0 = time.perf_counter()
                run_graph(graph, x, lane)
                latencies[i].append(time.perf_counter() - t0)
        except Exception as exc:  # one failing model must not stop the others
            errors[i] = f"{type(exc).__name__}: {exc}"

    threads = [threading.Thread(target=drive, args=(i,), daemon=True) for i in range(len(graphs))]
    for t in threads:
        t.start()
    with tqdm(total=round(duration_s), desc="all models together", unit="s",
              disable=not progress) as bar:
        end = time.monotonic() + duration_s
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(1.0, left))
            bar.n = round(duration_s - max(0.0, end - time.monotonic()))
            bar.set_postfix(frames=sum(len(x) for x in latencies))
    stop.set()
    for t in threads:
        t.join()
    return latencies, errors


def format_table(report: ZooReport) -> str:
    head = ("model", "lane", "stages", "alone p50", "together p50", "p95", "p99", "frames", "slowdown")
    rows = []
    for r in report.results:
        a, t = r.alone, r.together
        rows.append((r.model, r.lane, str(r.stages), f"{a.p50_ms:.1f}", f"{t.p50_ms:.1f}",
                     f"{t.p95_ms:.1f}", f"{t.p99_ms:.1f}", str(t.n),
                     f"{r.slowdown:.2f}x" if t.n else f"failed: {r.failed}"))
    out = [text_table(head, rows, left=2)]
    cfg = report.config
    out.append(f"latencies in ms; {len(rows)} models on {len(rows)} {report.lane_kind} lanes x "
               f"{cfg.threads} thread(s), {cfg.duration_s:.0f} s together, torch {torch.__version__}")
    return "\n".join(out)


def save_report(report: ZooReport, out_dir: str | Path) -> Path:
    return write_report(out_dir, "zoo", report.to_json(), format_table(report))
