"""The ROS bench's sections of the policy report: end to end over ROS 2 and where a frame's time
goes (with their plots), and the tables the command and the demo print."""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from aaron_ros.bench.policy_report import CPU_OUTSIDE, mark_no_data, write_policy_report
from aaron_ros.common.machine import cpu_text
from aaron_ros.common.report import fmt, md_table, pct, text_table
from aaron_ros.coordinator.timing import FramePart
from aaron_ros.ros.bench.monitor import FrameTiming
from aaron_ros.ros.bench.target import FRAME_TIME, FRAME_TIME_TAIL, STALL_MS, TAIL_SHARE

# Per policy, after its critical miss rate: the critical task's latencies (node p99; end to end and
# transport, p50 and p99) and the frames per second done over every task.
SUMMARY_KEYS = ("critical_p99_ms", "critical_e2e_p50_ms", "critical_e2e_p99_ms", "critical_transport_p50_ms",
                "critical_transport_p99_ms", "throughput_fps")


def _summary_rows(policies: Mapping[str, dict], keys: Sequence[str]) -> list[list[str]]:
    return [[key, pct(p.get("critical_miss_rate")), *(fmt(p.get(k)) for k in keys)] for key, p in policies.items()]


def stall_lines(policies: Mapping[str, dict]) -> list[str]:
    """A line per policy whose results were held in delivery to the bench's subscriber."""
    return [f"- {key}: {sum(p['delivery_stalled'].values())} result(s) ("
            + ", ".join(f"{t} {n}" for t, n in p["delivery_stalled"].items() if n)
            + f") reached the bench's subscriber more than {STALL_MS:g} ms after the container published them, "
            f"up to {fmt(p['delivery_stall_max_ms'])} ms: its e2e figures carry that delivery stall"
            for key, p in policies.items() if p.get("delivery_stall_max_ms", 0.0) > STALL_MS]


def render_e2e_markdown(report: dict) -> str:
    """The end-to-end section of report.md: per policy, then per policy and task."""
    policies, tasks = report["policies"], report["workload"]["tasks"]
    iso, stalls = report.get("isolation", {}), stall_lines(report["policies"])
    lead_s = report.get("settings", {}).get("lead_in_s", 0.0)
    unfed = [f"- {name} received no frame: it {why}"
             for name, why in report.get("settings", {}).get("unfed", {}).items()]
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
        *([*unfed, ""] if unfed else []),
        *([*stalls, "", "Held in delivery: before the subscriber's middleware received the result (its own "
           "time of arrival), so neither the container's node latency nor the bench's executor; every result "
           "topic at once when it happens.", ""] if stalls else []),
        f"Frames: published by the bag player after its lead-in ({lead_in}); each is done, dropped "
        "(its queue's overload rule, or too "
        "late: it could no longer meet its deadline), failed, rate-limited (above `max_rate_hz`, by design), "
        "rejected (a bad image) or "
        "lost (never received). Miss rate is over the frames the coordinator got (done + dropped + "
        "failed). Converted (over the whole play, its lead-in included, as the CPU table): images this task "
        "turned into tensors, in its first granted stage (a frame "
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
                total = sum(v["wall_ms"] for v in ft.values()) if ft else None  # None: no result heard
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
        if not left.any():
            mark_no_data(ax)
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
    done and done on time over every task; then the machine's pace (`pace_line`)."""
    report = json.loads((Path(out_dir) / "report.json").read_text())
    return f"{report['workload']['name']}:\n" + text_table(
        ["policy", "critical miss rate", "critical p99", "e2e p50", "e2e p99", "transport p50", "transport p99",
         "throughput fps", "goodput fps"], _summary_rows(report["policies"], (*SUMMARY_KEYS, "goodput_fps"))) + \
        "".join(f"\n{line}" for line in [*stall_lines(report["policies"]), pace_line(report)])


def pace_line(report: dict) -> str:
    """The machine, how fast it ran each model alone and how many deadlines the critical task
    missed alone: the same case on another machine (or the same one on a slower day) differs by
    this first."""
    iso, tasks = report.get("isolation", {}), report["workload"]["tasks"]
    alone = ", ".join(f"{t['name']} {fmt(iso.get(t['name'], {}).get('p50_ms'))}" for t in tasks)
    missed = "".join(f"; the {t['name']} missed {pct(iso[t['name']]['miss_rate'])} alone" for t in tasks
                    if t["criticality"] == "critical" and iso.get(t["name"], {}).get("miss_rate") is not None)
    return f"- alone, p50 ms: {alone}{missed}; on {cpu_text(report.get('machine', {}))}"


def comparison_text(out_dir: str | Path) -> str:
    """The report's comparison and end-to-end sections, as the command prints them."""
    text = (Path(out_dir) / "report.md").read_text()
    return text[text.index("## Comparison"):] if "## Comparison" in text else text
