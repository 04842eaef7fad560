"""The policy comparison on disk: one JSON for machines, markdown tables and plots for people.

`build_report` puts together what every policy achieved on one workload (from
`metrics.policy_metrics`), each task's latency alone, the machine and versions, and the run's
settings; `write_policy_report` writes it out:

  report.json       the report (NaN and infinities written as null, so it is strict JSON)
  report.md         a table per policy, then a comparison across policies
  latencies.json    every finished frame's latency (ms) per policy and task, to re-plot from
  latency_cdf.png   per task, the fraction of released frames done within x ms, per policy
  miss_rate.png     per task, the miss rate of each policy
  throughput.png    per task and in all, the frames per second of each policy
"""
from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, NullFormatter, PercentFormatter, ScalarFormatter

import aaron_ros
from aaron_ros.bench.bound import throughput_bound
from aaron_ros.bench.workload import Workload
from aaron_ros.common.machine import cpu_text, machine_info
from aaron_ros.common.report import fmt, md_table, pct
from aaron_ros.coordinator.metrics import worst

NAN = float("nan")
BASELINES = ("sequential", "naive")
PERCENTILES = {"p50_ms": 50, "p95_ms": 95, "p99_ms": 99}
# The ROS bench's CPU outside the model stages, ms per frame received (also per round).
CPU_OUTSIDE = "cpu_outside_stages_ms_per_frame"
OPTIONAL_PACKAGES = ("numpy", "onnxruntime", "matplotlib", "PyYAML")


def versions() -> dict:
    """The package's version and those of the libraries a result depends on."""
    info = machine_info()
    out = {"aaron_ros": aaron_ros.__version__, "python": info["python"], "torch": info["torch"]}
    if info.get("cuda"):
        out["torch_cuda"] = info["cuda"].get("torch_cuda")
    for pkg in OPTIONAL_PACKAGES:
        try:
            out[pkg.lower()] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def _num(value: object) -> float:
    return NAN if value is None else float(value)


def _times(ratio: object) -> str:
    """A ratio as "1.07x", or "-" where there is none (no isolation run)."""
    text = fmt(ratio, 2)
    return text if text == "-" else f"{text}x"


def _ratio(a: object, b: object) -> float:
    a, b = _num(a), _num(b)
    if math.isnan(a) or math.isnan(b) or b == 0:
        return NAN
    return a / b


def _policy_entry(workload: Workload, metrics: dict, isolation: Mapping[str, Mapping],
                  latencies: Mapping[str, Sequence[float]]) -> dict:
    entry = copy.deepcopy(dict(metrics))
    tasks = entry.setdefault("tasks", {})
    for spec in workload.tasks:
        t = tasks.setdefault(spec.name, {})
        lat = list(latencies.get(spec.name, ()))
        if lat and any(k not in t for k in PERCENTILES):  # percentiles from the raw latencies
            values = np.percentile(np.asarray(lat, dtype=np.float64), list(PERCENTILES.values()))
            for key, v in zip(PERCENTILES, values):
                t.setdefault(key, float(v))
        for key in (*PERCENTILES, "miss_rate", "fps"):
            t.setdefault(key, NAN)
        t.setdefault("dropped", 0)
        t["samples"] = len(lat)
        t["p99_over_isolated"] = _ratio(t["p99_ms"], isolation.get(spec.name, {}).get("p99_ms"))
    critical = [tasks[s.name] for s in workload.critical_tasks]
    entry.setdefault("critical_p99_ms", worst(_num(t["p99_ms"]) for t in critical))
    entry["critical_p99_over_isolated"] = worst(_num(t["p99_over_isolated"]) for t in critical)
    if "critical_miss_rate" not in entry:
        rates = [_num(t["miss_rate"]) for t in critical]
        entry["critical_miss_rate"] = worst(rates)
    for key in ("throughput_fps", "grant_us_p50", "grant_us_p99"):
        entry.setdefault(key, NAN)
    return entry


def _share_of_stage(p: dict) -> str:
    """The grant overhead against the mean stage, and what a grant costs its lane in wall time,
    where the stages were timed on their lanes (the core bench; the ROS bench hears only results)."""
    if not math.isfinite(_num(p.get("stage_ms_mean"))):
        return ""
    return (f"; the mean is {pct(p.get('grant_share'))} of the mean stage ({fmt(p.get('stage_ms_mean'), 2)} ms)\n"
            f"- with the hand-offs to a lane ({fmt(p.get('to_lane_us'))} us, of which {fmt(p.get('queue_us'))}"
            f" to decide, count and queue it) and back ({fmt(p.get('from_lane_us'))} us), a grant costs its"
            f" lane {pct(p.get('grant_wall_share'))} of the mean stage in wall time")


def _clean(value: object) -> object:
    """NaN and infinities as None, tuples as lists: what strict JSON can hold."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (np.floating, np.integer)):
        return _clean(value.item())
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def build_report(workload: Workload, runs: Mapping[str, dict], isolation: Mapping[str, Mapping],
                 latencies: Mapping[str, Mapping[str, Sequence[float]]], settings: Mapping) -> dict:
    """The comparison of policies on one workload, as a JSON-ready dict.

    runs: policy key ("aaron", "aaron/solo", "naive", ...) -> `policy_metrics(...)` dict.
    isolation: task -> {"p50_ms", "p99_ms", "miss_rate"} of the task alone.
    latencies: policy key -> task -> latencies (ms) of its finished frames; fills any missing
    percentile of `runs`, and counts the samples.
    Each policy gets `critical_p99_over_isolated` (the worst, over critical tasks, of the p99 under
    the policy over the p99 alone) and each of its tasks `p99_over_isolated`.
    """
    policies = {key: _policy_entry(workload, metrics, isolation, latencies.get(key, {}))
                for key, metrics in runs.items()}
    report = {
        "workload": workload.as_dict(),
        "policies": policies,
        "isolation": {name: {"p50_ms": _num(v.get("p50_ms")), "p99_ms": _num(v.get("p99_ms")),
                             **{k: x for k, x in v.items() if k not in ("p50_ms", "p99_ms")}}
                      for name, v in isolation.items()},
        "machine": machine_info(),
        "versions": versions(),
        "settings": dict(settings),
    }
    if isolation and all(math.isfinite(v.get("core_ms", math.nan)) for v in isolation.values()):
        report["bound"] = throughput_bound(workload, isolation, report["machine"]["cores"])
    return _clean(report)


# --- markdown -------------------------------------------------------------------------------

def _baseline_key(policies: Mapping, base: str) -> str | None:
    if base in policies:
        return base
    return next((k for k in policies if k.split("/")[0] == base), None)


def render_markdown(report: dict) -> str:
    wl = report["workload"]
    tasks = wl["tasks"]
    policies = report["policies"]
    iso = report.get("isolation", {})
    machine, ver = report.get("machine", {}), report.get("versions", {})
    out = [f"# Policies on workload `{wl['name']}`", ""]
    if wl.get("description"):
        out += [wl["description"], ""]
    out += [f"Machine: {cpu_text(machine)}"
            + (f", {machine['cuda']['device']}" if machine.get("cuda") else "")
            + f"; lanes: {wl.get('lanes')}. Versions: "
            + ", ".join(f"{k} {v}" for k, v in ver.items()) + ".", ""]
    if report.get("settings"):
        out += ["Settings: " + ", ".join(f"{k}={v}" for k, v in report["settings"].items()), ""]

    out += ["## Tasks", "", md_table(
        ["task", "model", "rate Hz", "deadline ms", "criticality", "overload", "queue",
         "alone p50 ms", "alone p99 ms", "alone miss rate"],
        [[t["name"], t["model"], fmt(t["rate_hz"], 1), fmt(t["deadline_ms"], 0), t["criticality"],
          t["overload"], t["queue_size"], fmt(iso.get(t["name"], {}).get("p50_ms")),
          fmt(iso.get(t["name"], {}).get("p99_ms")), pct(iso.get(t["name"], {}).get("miss_rate"))]
         for t in tasks]), ""]

    for key, p in policies.items():
        rows = []
        for t in tasks:
            m = p["tasks"].get(t["name"], {})
            rows.append([t["name"] + (" (critical)" if t["criticality"] == "critical" else ""),
                         fmt(m.get("p50_ms")), fmt(m.get("p95_ms")), fmt(m.get("p99_ms")),
                         pct(m.get("miss_rate")), fmt(m.get("fps")), fmt(m.get("goodput_fps")),
                         fmt(m.get("dropped")), fmt(m.get("failed", 0))])
        out += [f"## Policy `{key}`", "", md_table(
            ["task", "p50 ms", "p95 ms", "p99 ms", "miss rate", "fps", "goodput fps", "dropped", "failed"],
            rows), "",
            f"- total throughput: {fmt(p.get('throughput_fps'))} frames/s, goodput (on time) "
            f"{fmt(p.get('goodput_fps'))} frames/s",
            f"- critical p99 / isolated p99: {_times(p.get('critical_p99_over_isolated'))}"
            f" (critical p99 {fmt(p.get('critical_p99_ms'))} ms)",
            f"- grant overhead: p50 {fmt(p.get('grant_us_p50'))} us, p99 {fmt(p.get('grant_us_p99'))} us"
            + _share_of_stage(p), ""]

    bases = [(b, k) for b in BASELINES if (k := _baseline_key(policies, b)) is not None]
    header = ["policy", "critical miss rate", "critical p99 ms", "critical p99 / alone", "throughput fps",
              "goodput fps"]
    for _, k in bases:
        header += [f"throughput / {k}", f"critical p99 / {k}"]
    rows = []
    for key, p in policies.items():
        row = [key, pct(p.get("critical_miss_rate")), fmt(p.get("critical_p99_ms")),
               fmt(p.get("critical_p99_over_isolated"), 2), fmt(p.get("throughput_fps")), fmt(p.get("goodput_fps"))]
        for _, k in bases:
            row += [fmt(_ratio(p.get("throughput_fps"), policies[k].get("throughput_fps")), 2),
                    fmt(_ratio(p.get("critical_p99_ms"), policies[k].get("critical_p99_ms")), 2)]
        rows.append(row)
    out += ["## Comparison", "", md_table(header, rows), "",
            "Miss rate: frames finished after their deadline, dropped or failed, over all frames "
            "released. Goodput: frames finished within their deadline per second. Latency "
            "percentiles are over finished frames.", ""]
    out += [line for t in tasks if (line := fit_text(t, iso.get(t["name"], {})))]
    rounds = {key: p["rounds"] for key, p in policies.items() if p.get("rounds")}
    if rounds:
        out += _rounds_section(rounds)
    if report.get("bound"):
        out += _bound_section(report["bound"], policies, iso, report.get("machine", {}).get("cores"))
    return "\n".join(out)


def fit_text(task: Mapping, alone: Mapping) -> str:
    """For a critical task run alone: whether the case fits this machine at all ("" for a normal
    task, or with no isolation run). Not a strict floor: the run alone is short, its own minute of
    the machine, on the versions best alone."""
    missed = alone.get("miss_rate")
    if task["criticality"] != "critical" or missed is None:
        return ""
    verdict = ("the case asks more of this machine than it has, and no policy can be expected to keep it"
               if missed > 0 else "the misses above are what sharing the machine costs")
    return (f"Alone, with the cores to itself, the critical {task['name']} missed {pct(missed)} of its deadlines "
            f"(p99 {fmt(alone.get('p99_ms'))} ms against {fmt(task['deadline_ms'], 0)}): {verdict}.\n")


def _rounds_section(rounds: Mapping[str, Sequence[Mapping]]) -> list[str]:
    n = max(len(r) for r in rounds.values())
    cpu = any(CPU_OUTSIDE in x for r in rounds.values() for x in r)

    def cell(x: Mapping) -> str:
        out = f"{pct(x['critical_miss_rate'])}, {fmt(x['goodput_fps'])}, {x['dropped']}"
        return f"{out}, {fmt(x.get(CPU_OUTSIDE), 2)}" if cpu else out

    rows = [[str(i + 1)] + [cell(r[i]) if i < len(r) else "" for r in rounds.values()] for i in range(n)]
    what = "critical miss rate, goodput fps, frames dropped" + (
        ", CPU outside the model stages (ms per frame received)" if cpu else "")
    return ["## Round by round", "", md_table(["round", *rounds], rows), "",
            f"Per round: {what}. Each round runs every policy once, in turn, so what changes from one "
            "round to the next is the machine: a difference between policies within one policy's "
            "spread over its rounds is noise.", ""]


def _bound_section(bound: dict, policies: Mapping, iso: Mapping, cores: object) -> list[str]:
    """The cost model's bounds (bench/bound.py) and how far each policy is from them."""
    top = bound.get("cores_bound_fps")
    rows = [[key, fmt(p.get("throughput_fps")), pct(_ratio(p.get("throughput_fps"), top)),
             pct(_ratio(p.get("throughput_fps"), bound.get("one_lane_bound_fps")))]
            for key, p in policies.items()]
    host = ", ".join(f"{name} {fmt(v.get('host_ms'), 2)}" for name, v in iso.items())
    return ["## What bounds throughput", "",
            f"Offered {fmt(bound.get('offered_fps'))} frames/s. Their stages cost "
            f"{fmt(bound.get('core_ms_per_s'), 0)} core-ms per second at each stage's most efficient "
            f"thread count alone: {cores} cores serve at most {fmt(top)} frames/s (the cheapest frames "
            f"first, each task up to its rate). One frame at a "
            f"time, each stage at its fastest alone, serves at most {fmt(bound.get('one_lane_bound_fps'))} "
            f"frames/s. Both leave out the host work around the stages (ms per frame alone: {host}) and "
            "the slowdown of stages side by side (aaron_ros/bench/bound.py).", "",
            md_table(["policy", "throughput fps", "of the cores bound", "of the one-lane bound"], rows), ""]


# --- plots ----------------------------------------------------------------------------------

def _grouped_bars(ax, groups: Sequence[str], series: Mapping[str, Sequence[float]],
                  value_format: str | None = None) -> None:
    """A bar per series in each group; `value_format` (e.g. "{:.1%}") writes each bar's value on it
    ("no data" where there is none: a run whose frames were all lost is not a 0% bar)."""
    n = max(1, len(series))
    width = 0.8 / n
    x = np.arange(len(groups))
    for i, (label, values) in enumerate(series.items()):
        vals = [0.0 if v is None else float(v) for v in values]
        bars = ax.bar(x + (i - (n - 1) / 2) * width, vals, width, label=label)
        if value_format:
            labels = ["no data" if v is None else value_format.format(float(v)) for v in values]
            # On white: a bound or a rate drawn across a value must not strike it out.
            ax.bar_label(bars, labels=labels, fontsize="x-small", rotation=90, padding=2,
                         bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5})
    ax.set_xticks(x)
    ax.set_xticklabels(groups)
    ax.grid(axis="y", alpha=0.3)


def _task_label(t: Mapping) -> str:
    """A task's name on an axis; the critical one says so."""
    return f"{t['name']}\n(critical)" if t["criticality"] == "critical" else t["name"]


def plot_latency_cdf(report: dict, latencies: Mapping[str, Mapping[str, Sequence[float]]],
                     path: Path, measure: str = "latency, release to done") -> Path:
    tasks = report["workload"]["tasks"]
    fig = Figure(figsize=(5 * len(tasks), 4), layout="constrained")
    axes = fig.subplots(1, len(tasks), squeeze=False)[0]
    for ax, t in zip(axes, tasks):
        if not any(len(latencies.get(key, {}).get(t["name"], ())) for key in report["policies"]):
            mark_no_data(ax)
        for key, p in report["policies"].items():
            lat = np.sort(np.asarray(latencies.get(key, {}).get(t["name"], ()), dtype=np.float64))
            if lat.size == 0:
                continue
            released = p["tasks"].get(t["name"], {}).get("released") or lat.size
            # A step up per finished frame, over all frames released: dropped ones keep it below 1.
            y = np.arange(1, lat.size + 1) / max(released, lat.size)
            ax.step(np.concatenate([[lat[0]], lat]), np.concatenate([[0.0], y]), where="post", label=key)
        ax.axvline(t["deadline_ms"], color="k", linestyle="--", linewidth=1,
                   label=f"deadline {t['deadline_ms']:g} ms")
        ax.set_xscale("log")
        # Plain millisecond labels at 1-2-5 steps; the log axis's own minor labels (2x10^1 ...)
        # run into each other.
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_ylim(0, 1.02)
        ax.set_title(f"{t['name']} ({t['model']}, {t['criticality']})",
                      fontweight="bold" if t["criticality"] == "critical" else "normal")
        ax.set_xlabel(f"{measure} (ms)")
        ax.set_ylabel("fraction of released frames done")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.savefig(path, dpi=100)
    return path


def mark_no_data(ax) -> None:
    """Say so on a panel with nothing to draw, rather than leave an empty frame."""
    ax.text(0.5, 0.5, "no frame done", transform=ax.transAxes, ha="center", va="center", color="0.4")


def plot_miss_rate(report: dict, path: Path) -> Path:
    tasks = report["workload"]["tasks"]
    names = [t["name"] for t in tasks]
    series = {key: [p["tasks"].get(n, {}).get("miss_rate") for n in names]
              for key, p in report["policies"].items()}
    fig = Figure(figsize=(max(5, 1.6 * len(names) * max(1, len(series)) / 2), 4), layout="constrained")
    ax = fig.subplots()
    _grouped_bars(ax, [_task_label(t) for t in tasks], series, "{:.1%}")
    # A task's misses alone, across its group of bars: what the machine allows it at all.
    alone = [report.get("isolation", {}).get(n, {}).get("miss_rate") for n in names]
    at = [i for i, v in enumerate(alone) if v is not None]
    if at:
        ax.hlines([alone[i] for i in at], [i - 0.45 for i in at], [i + 0.45 for i in at], colors="k",
                  linestyles=":", linewidth=2, label="alone")
    top = max((v for vs in [*series.values(), alone] for v in vs if v is not None), default=0.0)
    # Scaled to the highest bar (room left for its value), not to 1: misses of a few percent must show.
    ax.set_ylim(0, min(1.2, max(0.05, top * 1.3)))
    ax.set_yticks([t for t in ax.get_yticks() if t <= 1.0])  # room above 100% for the values only
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylabel("miss rate (late, dropped or failed)")
    ax.set_title(f"Deadline misses per task: {report['workload']['name']}")
    # Beside the axes: inside, it covers bars that reach 1.
    fig.legend(*ax.get_legend_handles_labels(), fontsize="small", loc="outside right upper")
    fig.savefig(path, dpi=100)
    return path


def plot_throughput(report: dict, path: Path) -> Path:
    tasks = report["workload"]["tasks"]
    names = [t["name"] for t in tasks]
    policies = report["policies"]
    fig = Figure(figsize=(max(8, 2 * len(names) + 4), 4), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=[max(1, len(names)), 1])
    _grouped_bars(left, [_task_label(t) for t in tasks], {k: [p["tasks"].get(n, {}).get("fps") for n in names]
                                                          for k, p in policies.items()}, "{:.1f}")
    requested = [t["rate_hz"] for t in report["workload"]["tasks"]]
    left.scatter(np.arange(len(names)), requested, marker="_", s=600, color="k", zorder=3,
                 label="rate requested")
    left.set_ylabel("frames done per second")
    left.set_title("per task")
    _grouped_bars(right, ["all tasks"], {k: [p.get("throughput_fps")] for k, p in policies.items()}, "{:.1f}")
    bound = report.get("bound") or {}  # the cost model's (bench/bound.py)
    lines = [right.axhline(bound[key], color="k", linestyle=style, linewidth=1, label=label)
             for key, label, style in (("offered_fps", "offered", "-"), ("cores_bound_fps", "cores bound", "--"),
                                       ("one_lane_bound_fps", "one-lane bound", ":"))
             if bound.get(key) is not None]
    handles, labels = left.get_legend_handles_labels()
    fig.legend(handles + lines, labels + [line.get_label() for line in lines], fontsize="small",
               loc="outside right upper")
    right.set_title("total throughput")
    for ax in (left, right):  # room above the tallest bar for its value
        ax.set_ylim(0, ax.get_ylim()[1] * 1.15)
    fig.suptitle(f"Throughput: {report['workload']['name']}")
    fig.savefig(path, dpi=100)
    return path


def write_policy_report(report: dict, latencies: Mapping[str, Mapping[str, Sequence[float]]],
                        out_dir: str | Path, cdf: tuple[Mapping, str] | None = None) -> list[Path]:
    """Write the report's files into `out_dir` (see the module's docstring); returns their paths.
    `cdf`: other latencies for the CDF plot, and what they measure (default: `latencies`)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = _clean(report)
    paths = [out / "report.json", out / "report.md", out / "latencies.json"]
    paths[0].write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
    paths[1].write_text(render_markdown(report))
    paths[2].write_text(json.dumps(_clean({k: {t: list(v) for t, v in per.items()}
                                           for k, per in latencies.items()}), allow_nan=False) + "\n")
    cdf_latencies, measure = cdf or (latencies, "latency, release to done")
    paths.append(plot_latency_cdf(report, cdf_latencies, out / "latency_cdf.png", measure))
    paths.append(plot_miss_rate(report, out / "miss_rate.png"))
    paths.append(plot_throughput(report, out / "throughput.png"))
    return paths
