"""Workloads: which perception tasks run together, at what rates and deadlines, from YAML.

A workload file (config/workloads/<name>.yaml):

    name: f1tenth                 # default: the file's stem
    description: ...
    lanes: 2                      # default: one per CPU core
    tasks:                        # keys exactly TaskSpec's fields
      - {name: detector, model: tiny_yolo, rate_hz: 10, deadline_ms: 150,
         criticality: critical, overload: keep_latest, queue_size: 1}
    scenarios:                    # optional: named subsets of the tasks
      heavy: [detector, ...]

`arrivals` turns a workload into the frame arrival times every policy replays.
"""
from __future__ import annotations

import dataclasses
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from aaron_ros.common.paths import find_config, share_dirs
from aaron_ros.coordinator.types import TaskSpec
from aaron_ros.models.registry import model_names

TOP_KEYS = ("name", "description", "lanes", "tasks", "scenarios")
TASK_KEYS = tuple(f.name for f in dataclasses.fields(TaskSpec))
REQUIRED_TASK_KEYS = tuple(f.name for f in dataclasses.fields(TaskSpec)
                           if f.default is dataclasses.MISSING)
JITTER = 0.05  # arrival jitter, as a fraction of the period (each side)


@dataclass
class Workload:
    name: str
    description: str
    lanes: int
    tasks: list[TaskSpec]
    path: Path | None = None
    scenarios: dict[str, list[str]] = field(default_factory=dict)
    scenario_name: str | None = None  # set on a workload selected by `scenario()`

    def task(self, name: str) -> TaskSpec:
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(f"workload {self.name!r} has no task {name!r}; tasks: {self.task_names}")

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    @property
    def critical_tasks(self) -> list[TaskSpec]:
        return [t for t in self.tasks if t.critical]

    def scenario(self, name: str) -> Workload:
        """The workload cut down to scenario `name`'s tasks (in the file's order)."""
        if name not in self.scenarios:
            raise ValueError(f"workload {self.name!r} ({self.path}): unknown scenario {name!r}; "
                             f"known: {sorted(self.scenarios)}")
        keep = set(self.scenarios[name])
        return Workload(name=f"{self.name}_{name}", description=self.description, lanes=self.lanes,
                        tasks=[t for t in self.tasks if t.name in keep], path=self.path,
                        scenarios={}, scenario_name=name)

    def as_dict(self) -> dict:
        return {"name": self.name, "description": self.description, "lanes": self.lanes,
                # The file's name only: no machine paths in reports.
                "scenario": self.scenario_name, "file": None if self.path is None else self.path.name,
                "tasks": [dataclasses.asdict(t) for t in self.tasks],
                "scenarios": {k: list(v) for k, v in self.scenarios.items()}}


def workload_names() -> list[str]:
    """Workloads shipped in config/workloads/ (of the checkout or the install)."""
    names: set[str] = set()
    for root in share_dirs():
        names.update(p.stem for p in (root / "config" / "workloads").glob("*.yaml"))
    return sorted(names)


def _resolve(name_or_path: str | os.PathLike) -> Path:
    text = os.fspath(name_or_path)
    path = Path(text)
    if path.is_file():
        return path
    if path.suffix in (".yaml", ".yml") or os.sep in text:
        raise ValueError(f"workload file {text} not found")
    try:
        return find_config(f"workloads/{text}.yaml")
    except FileNotFoundError:
        raise ValueError(f"unknown workload {text!r}; shipped: {workload_names()}") from None


def is_number(value: object) -> bool:
    """An int or float as YAML reads one (a bool is not a number here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _task(where: str, i: int, entry: object, known_models: list[str]) -> TaskSpec:
    here = f"{where}: tasks[{i}]"
    if not isinstance(entry, dict):
        raise ValueError(f"{here}: expected a mapping of {list(TASK_KEYS)}, got {entry!r}")
    if isinstance(entry.get("name"), str):
        here = f"{here} ({entry['name']})"
    extra = sorted(set(entry) - set(TASK_KEYS), key=str)
    if extra:
        raise ValueError(f"{here}: unknown key(s) {extra}; allowed: {list(TASK_KEYS)}")
    missing = [k for k in REQUIRED_TASK_KEYS if k not in entry]
    if missing:
        raise ValueError(f"{here}: missing key(s) {missing}")
    for key in ("name", "model", "criticality", "overload"):
        if key in entry and not (isinstance(entry[key], str) and entry[key]):
            raise ValueError(f"{here}: {key} must be a non-empty string, got {entry[key]!r}")
    for key in ("rate_hz", "deadline_ms"):
        if not is_number(entry[key]):
            raise ValueError(f"{here}: {key} must be a number, got {entry[key]!r}")
    if "queue_size" in entry and not is_integer(entry["queue_size"]):
        raise ValueError(f"{here}: queue_size must be an integer, got {entry['queue_size']!r}")
    if entry["model"] not in known_models:
        raise ValueError(f"{here}: model: unknown model {entry['model']!r}; known: {known_models}")
    values = dict(entry)
    values["rate_hz"], values["deadline_ms"] = float(values["rate_hz"]), float(values["deadline_ms"])
    try:
        return TaskSpec(**values)
    except ValueError as exc:
        raise ValueError(f"{here}: {exc}") from None


def load_workload(name_or_path: str | os.PathLike) -> Workload:
    """A workload by shipped name (config/workloads/<name>.yaml) or by file path.

    Raises ValueError naming the file and the offending key on any bad input.
    """
    path = _resolve(name_or_path)
    where = f"workload file {path}"
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"{where}: YAML syntax error: {exc}") from None
    except OSError as exc:
        raise ValueError(f"{where}: cannot read: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping with keys {list(TOP_KEYS)}, got {type(data).__name__}")
    extra = sorted(set(data) - set(TOP_KEYS), key=str)
    if extra:
        raise ValueError(f"{where}: unknown key(s) {extra}; allowed: {list(TOP_KEYS)}")

    name = data.get("name", path.stem)
    if not (isinstance(name, str) and name):
        raise ValueError(f"{where}: name must be a non-empty string, got {name!r}")
    description = data.get("description", "") or ""
    if not isinstance(description, str):
        raise ValueError(f"{where}: description must be a string, got {description!r}")
    lanes = data.get("lanes", os.cpu_count() or 1)
    if not is_integer(lanes) or lanes < 1:
        raise ValueError(f"{where}: lanes must be an integer >= 1, got {lanes!r}")

    entries = data.get("tasks")
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{where}: tasks must be a non-empty list, got {entries!r}")
    known_models = model_names()
    tasks = [_task(where, i, e, known_models) for i, e in enumerate(entries)]
    seen: set[str] = set()
    for t in tasks:
        if t.name in seen:
            raise ValueError(f"{where}: tasks: duplicate task name {t.name!r}")
        seen.add(t.name)

    scenarios_in = data.get("scenarios") or {}
    if not isinstance(scenarios_in, dict):
        raise ValueError(f"{where}: scenarios must be a mapping of name -> task names")
    scenarios: dict[str, list[str]] = {}
    for key, members in scenarios_in.items():
        here = f"{where}: scenarios.{key}"
        if not isinstance(members, list) or not members:
            raise ValueError(f"{here}: must be a non-empty list of task names, got {members!r}")
        unknown = [m for m in members if m not in seen]
        if unknown:
            raise ValueError(f"{here}: unknown task(s) {unknown}; tasks: {[t.name for t in tasks]}")
        if len(set(members)) != len(members):
            raise ValueError(f"{here}: a task is listed twice: {members}")
        scenarios[str(key)] = list(members)
    return Workload(name=name, description=description.strip(), lanes=lanes, tasks=tasks,
                    path=path, scenarios=scenarios)


def arrivals(workload: Workload, duration_s: float, seed: int = 0) -> list[tuple[float, str]]:
    """Frame arrival times (s from the start) of every task in [0, duration_s), sorted by time.

    Each task is periodic: its first frame at a seeded offset within one period, then one frame a
    period, each moved by a seeded jitter of up to +-JITTER of the period. The same seed gives the
    same list, so every policy replays the same frames; a task's times depend only on the seed and
    its own name and rate, so adding a task leaves the others' frames where they were.
    """
    if duration_s <= 0:
        raise ValueError(f"duration_s must be > 0, got {duration_s}")
    out: list[tuple[float, str]] = []
    for task in workload.tasks:
        rng = np.random.default_rng([seed, zlib.crc32(task.name.encode())])
        period = task.period_s
        offset = rng.uniform(0.0, period)
        n = int(np.ceil((duration_s - offset) / period)) + 1
        times = offset + period * np.arange(n) + rng.uniform(-JITTER, JITTER, n) * period
        times = np.maximum(times, 0.0)
        out.extend((float(t), task.name) for t in times if t < duration_s)
    out.sort()
    return out
