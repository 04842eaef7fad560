"""Reading a kernel bag as a person would: which version is best where, as a table and a plot
like Aaron's Fig. 1b (latency of each compiled form across contention levels, with the trace of
the best choice per level)."""
from __future__ import annotations

from pathlib import Path

from aaron_ros.common.report import text_table
from aaron_ros.kernels.background.levels import ISOLATION, LOADED_LEVELS
from aaron_ros.kernels.bag import MANIFEST, Manifest, read_manifest
from aaron_ros.kernels.version import Version


def find_bags(path: str | Path) -> list[Path]:
    """A bag folder, or a folder of bag folders."""
    path = Path(path)
    if (path / MANIFEST).is_file():
        return [path]
    bags = sorted(p.parent for p in path.glob(f"*/{MANIFEST}"))
    if not bags:
        raise FileNotFoundError(f"no kernel bag in {path} (no {MANIFEST} there or one level below)")
    return bags


def short(v: Version) -> str:
    return f"{v.backend}:{v.shape.key}"


def best(versions: list[Version], condition: str) -> Version:
    return min(versions, key=lambda v: v.profiles[condition].p50_ms)


def kinds_of(m: Manifest) -> list[str]:
    return sorted({c.split("/")[0] for c in m.conditions if c != ISOLATION})


def family_totals(m: Manifest) -> dict[str, dict[str, float]]:
    """Whole-model median latency (sum over stages) per version family and condition.

    A family is one backend at one resource shape applied to every stage; a stage that has no
    such version (e.g. parallel branches on a plain stage) uses its eager version at the same
    thread count. "best per level" picks the best version of each stage for each condition."""
    families = sorted({short(v) for v in m.versions})
    totals: dict[str, dict[str, float]] = {f: {} for f in families}
    totals["best per level"] = {}
    for cond in m.conditions:
        for s in m.stages:
            vs = m.versions_of(s.index)
            if not vs:
                continue
            by_key = {short(v): v for v in vs}
            for fam in families:
                backend, key = fam.split(":")
                v = by_key.get(fam) or by_key.get(f"eager:{key.replace('-par', '')}") or vs[0]
                totals[fam][cond] = totals[fam].get(cond, 0.0) + v.profiles[cond].p50_ms
            best_ms = best(vs, cond).profiles[cond].p50_ms
            totals["best per level"][cond] = totals["best per level"].get(cond, 0.0) + best_ms
    return totals


def changed_under_heavy(m: Manifest) -> dict[str, list[str]]:
    """Per contention kind, the stages whose best version under heavy is not the isolation best:
    where a single solo-compiled build leaves time on the table."""
    out = {}
    for kind in kinds_of(m):
        out[kind] = [s.name for s in m.stages if (vs := m.versions_of(s.index))
                     and best(vs, f"{kind}/heavy").id != best(vs, ISOLATION).id]
    return out


def format_bag(m: Manifest, bag_dir: Path) -> str:
    lines = [f"kernel bag {bag_dir}: {m.model} {'x'.join(map(str, m.input_shape))}, {m.backend} "
             f"({m.device.get('name')}, {m.device.get('cores')} cores), torch {m.torch}, "
             f"{len(m.versions)} versions, {len(m.skipped)} left out"]
    head = ["stage"] + m.conditions
    rows = []
    for s in m.stages:
        vs = m.versions_of(s.index)
        rows.append([s.name] + [f"{short(best(vs, c))} {best(vs, c).profiles[c].p50_ms:.2f}" if vs else "-"
                                for c in m.conditions])
    lines.append("best version per stage and condition (median ms):")
    lines.append(text_table(head, rows, left=len(head)))
    lines.append("stages whose best version under heavy contention differs from isolation: " + ", ".join(
        f"{kind} {len(changed)}/{len(m.stages)}" for kind, changed in changed_under_heavy(m).items()))
    totals = family_totals(m)
    lines.append("whole model, sum of stage medians (ms):")
    lines.append(text_table(["version family"] + m.conditions,
                            [[f] + [f"{t.get(c, float('nan')):.1f}" for c in m.conditions] for f, t in totals.items()],
                            left=len(m.conditions) + 1))
    if m.skipped:
        lines.append("left out: " + "; ".join(f"{s['id']} ({s['reason']})" for s in m.skipped[:12])
                     + (f"; ... {len(m.skipped) - 12} more" if len(m.skipped) > 12 else ""))
    return "\n".join(lines)


# The same backend has the same colour in every bag's plot; its resource shapes differ by line.
BACKEND_COLOURS = {"eager": "tab:blue", "onnxruntime": "tab:orange", "inductor": "tab:green", "tensorrt": "tab:red"}
SHAPE_KEY = ("tN: N intra-op threads (CPU); par: a branch group's branches on parallel lanes; "
             "p-1: a high-priority CUDA stream; smN: N SMs (green context)")


def _style(family: str, shapes: list[str]) -> dict:
    backend, shape = family.split(":")
    return dict(color=BACKEND_COLOURS.get(backend, "tab:purple"), marker=".",
                linestyle=("-", "--", "-.", (0, (1, 1)))[shapes.index(shape) % 4])


def plot_bag(m: Manifest, out_png: str | Path) -> Path:
    """One panel per contention kind: whole-model latency per family across levels; one legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = kinds_of(m)
    totals = family_totals(m)
    levels = [ISOLATION, *LOADED_LEVELS]
    shapes = sorted({fam.split(":")[1] for fam in totals if ":" in fam}, key=lambda k: (len(k), k))
    fig, axes = plt.subplots(1, len(kinds), figsize=(5.2 * len(kinds), 4.6), squeeze=False, sharey=True)
    for ax, kind in zip(axes[0], kinds):
        conds = [ISOLATION] + [f"{kind}/{lvl}" for lvl in LOADED_LEVELS]
        for fam, t in totals.items():
            ys = [t[c] for c in conds]
            if fam == "best per level":
                ax.plot(levels, ys, ":", color="grey", linewidth=3, marker="o", label="best version per stage",
                        zorder=3)
            else:
                ax.plot(levels, ys, label=f"every stage {fam}", **_style(fam, shapes))
        ax.set_title(f"{m.model}: {kind} contention")
        ax.set_xlabel("background level")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("whole model, sum of stage medians (ms)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, 0.045), ncol=min(len(labels), 4),
               fontsize=8, frameon=False)
    fig.text(0.5, 0.012, SHAPE_KEY, ha="center", fontsize=7.5, color="dimgrey")
    fig.tight_layout(rect=(0, 0.17, 1, 1))
    out_png = Path(out_png)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png


def show(path: str | Path, plot: bool = True) -> tuple[str, list[Path]]:
    texts, pngs = [], []
    for bag_dir in find_bags(path):
        m = read_manifest(bag_dir)
        texts.append(format_bag(m, bag_dir))
        if plot:
            pngs.append(plot_bag(m, bag_dir / "versions.png"))
    return "\n\n".join(texts), pngs
