"""How well the contention predictor predicts real co-runs on this machine.

Random combinations of a target stage version and 0-2 co-runner stage versions of other models:
the co-runners loop on lanes of their own while the target is timed (median of `reps`). The
first half of the combinations only feeds `observe` (the online correction); the second half is
held out and scored by absolute percentage error for the predictor with and without that
correction, and for the isolation profile taken as the prediction.

    python -m aaron_ros.bench.predictor_eval --bag-root bags [--out results/...]
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from aaron_ros.common.report import write_report
from aaron_ros.contention.predictor import ContentionPredictor
from aaron_ros.kernels.bag import ISOLATION, KernelBag, load_bag
from aaron_ros.kernels.compile import stage_inputs
from aaron_ros.kernels.profile import LaneSet, stage_timer
from aaron_ros.kernels.version import Version
from aaron_ros.models import build_model

CPU = torch.device("cpu")
MAX_CO_RUNNERS = 2
TIMING_ROUNDS = 200  # passes over the held-out combinations when timing `predict`


@dataclass
class Loaded:
    """One model's bag with a real input for each of its stages."""

    bag: KernelBag
    inputs: list[torch.Tensor]

    def timer(self, v: Version, lanes: LaneSet) -> Callable[[], float]:
        return stage_timer(self.bag.runner(v), v.shape, self.inputs[v.stage], lanes)


@dataclass(frozen=True)
class Pick:
    model: str
    version: Version

    @property
    def name(self) -> str:
        return f"{self.model}/{self.version.id}"


@dataclass(frozen=True)
class Combo:
    target: Pick
    co_runners: tuple[Pick, ...]

    @property
    def co_versions(self) -> list[Version]:
        return [p.version for p in self.co_runners]


BagDirs = Mapping[str, str | Path] | Sequence[str]  # model -> bag folder, or model names


def load_all(bags: BagDirs, bag_root: str | Path | None) -> dict[str, Loaded]:
    if not isinstance(bags, Mapping):
        if bag_root is None:
            raise ValueError("model names need a bag_root to find their bags under")
        bags = {name: Path(bag_root) / name for name in bags}
    loaded = {}
    for name, path in bags.items():
        bag = load_bag(path, build_model(name))
        loaded[name] = Loaded(bag, stage_inputs(bag.graph, CPU))  # in the bag's stages
    return loaded


def draw(loaded: dict[str, Loaded], runs: int, rng: random.Random) -> list[Combo]:
    """Target and co-runners each a random profiled version of a random stage, all of different
    models (a version never profiled in isolation has nothing to predict from)."""
    def pick(model: str) -> Pick:
        versions = loaded[model].bag.versions
        stage = rng.choice(sorted(versions))
        return Pick(model, rng.choice([v for v in versions[stage] if ISOLATION in v.profiles]))

    models = sorted(loaded)
    combos = []
    for _ in range(runs):
        target = rng.choice(models)
        others = [m for m in models if m != target]
        co = rng.sample(others, rng.randint(0, min(MAX_CO_RUNNERS, len(others))))
        combos.append(Combo(pick(target), tuple(pick(m) for m in co)))
    return combos


@contextmanager
def looping(onces: Sequence[Callable[[], float]]) -> Iterator[None]:
    """Each of `onces` run back to back on a thread of its own while the body runs."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def loop(once: Callable[[], float]) -> None:
        try:
            while not stop.is_set():
                once()
        except BaseException as exc:  # noqa: BLE001 - raised in the caller after the join
            errors.append(exc)

    for once in onces:  # warm-up: a first call allocates and selects kernels
        once()
    threads = [threading.Thread(target=loop, args=(once,), daemon=True) for once in onces]
    for t in threads:
        t.start()
    try:
        yield
    finally:
        stop.set()
        for t in threads:
            t.join()
    if errors:
        raise RuntimeError("a co-runner failed") from errors[0]


def co_run(target: Callable[[], float], co_runners: Sequence[Callable[[], float]], reps: int) -> float:
    """Median ms of `target` while `co_runners` loop beside it."""
    with looping(co_runners):
        target()  # warm-up, beside the co-runners
        return statistics.median(target() for _ in range(reps)) * 1e3


def ape_stats(predicted: Sequence[float], measured: Sequence[float]) -> dict[str, float]:
    ape = np.abs(np.asarray(predicted) / np.asarray(measured) - 1.0) * 100
    p50, p90 = np.percentile(ape, [50, 90])
    return {"median_ape": round(float(p50), 1), "p90_ape": round(float(p90), 1)}


def predict_us(predictor: ContentionPredictor, combos: Sequence[Combo]) -> tuple[float, float]:
    """p50 and p99 of the time of one `predict` call, in µs, each call timed on its own."""
    calls = [(c.target.version, c.co_versions) for c in combos]
    times = []
    for _ in range(TIMING_ROUNDS):
        for v, co in calls:
            t0 = time.perf_counter_ns()
            predictor.predict(v, co)
            times.append(time.perf_counter_ns() - t0)
    p50, p99 = np.percentile(times, [50, 99]) / 1e3
    return round(float(p50), 2), round(float(p99), 2)


def evaluate_predictor(bags: BagDirs, bag_root: str | Path | None = None,
                       runs: int = 200, reps: int = 5, seed: int = 0, progress: bool = True,
                       cores: int | None = None, alpha: float = 0.2) -> dict:
    """Measure `runs` random co-runs and score the predictor on the held-out second half.

    bags: model -> bag folder, or model names whose bags are `bag_root/<model>`."""
    if runs < 2:
        raise ValueError(f"runs must be >= 2 (half observed, half held out), got {runs}")
    cores = cores or os.cpu_count() or 1
    loaded = load_all(bags, bag_root)
    combos = draw(loaded, runs, random.Random(seed))
    lanes_needed = max(v.shape.threads for lo in loaded.values()
                       for vs in lo.bag.versions.values() for v in vs)
    # Lanes per role: the target's, and one set per co-runner slot (a lane runs one thing at a time).
    lane_sets = [LaneSet(CPU, max(2, lanes_needed)) for _ in range(1 + MAX_CO_RUNNERS)]
    measured = []
    try:
        for c in tqdm(combos, desc="co-runs", unit="run", disable=not progress):
            target = loaded[c.target.model].timer(c.target.version, lane_sets[0])
            co = [loaded[p.model].timer(p.version, lanes) for p, lanes in zip(c.co_runners, lane_sets[1:])]
            measured.append(co_run(target, co, reps))
    finally:
        for lanes in lane_sets:
            lanes.close()

    half = runs // 2
    plain, corrected = ContentionPredictor(cores), ContentionPredictor(cores, alpha)
    for c, ms in zip(combos[:half], measured[:half]):
        corrected.observe(c.target.version, c.co_versions, ms)
    held = combos[half:]
    predictions = {
        "corrected": [corrected.predict(c.target.version, c.co_versions) for c in held],
        "uncorrected": [plain.predict(c.target.version, c.co_versions) for c in held],
        "isolation": [c.target.version.profiles[ISOLATION].p50_ms for c in held],
    }
    us_p50, us_p99 = predict_us(corrected, held)
    samples = [{"target": c.target.name, "co_runners": [p.name for p in c.co_runners],
                "measured_ms": round(ms, 4), "held_out": i >= half}
               for i, (c, ms) in enumerate(zip(combos, measured))]
    for i, s in enumerate(samples[half:]):
        s.update({f"{key}_ms": round(values[i], 4) for key, values in predictions.items()})
    return {"models": sorted(loaded), "runs": runs, "reps": reps, "seed": seed, "cores": cores,
            "observed": half, "held_out": len(held),
            **{key: ape_stats(values, measured[half:]) for key, values in predictions.items()},
            "predict_us_p50": us_p50, "predict_us_p99": us_p99, "samples": samples}


def format_eval(result: dict) -> str:
    rows = [("predictor, corrected online", result["corrected"]),
            ("predictor, uncorrected", result["uncorrected"]),
            ("isolation profile (baseline)", result["isolation"])]
    lines = [f"contention predictor: {result['held_out']} held-out co-runs "
             f"({result['observed']} observed first), {result['reps']} reps each, {result['cores']} cores",
             f"{'prediction':<30} {'median APE %':>12} {'p90 APE %':>10}"]
    lines += [f"{name:<30} {s['median_ape']:>12.1f} {s['p90_ape']:>10.1f}" for name, s in rows]
    lines.append(f"predict(): {result['predict_us_p50']:.2f} µs p50, {result['predict_us_p99']:.2f} µs p99")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bag-root", required=True, help="folder with one kernel bag per model")
    ap.add_argument("--models", nargs="*", help="default: every bag under --bag-root")
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="write predictor_eval.json and .md here")
    args = ap.parse_args(argv)
    root = Path(args.bag_root)
    models = args.models or sorted(p.parent.name for p in root.glob("*/manifest.json"))
    result = evaluate_predictor(models, root, runs=args.runs, reps=args.reps, seed=args.seed)
    table = format_eval(result)
    print(table)
    if args.out:
        write_report(args.out, "predictor_eval", result, table)


if __name__ == "__main__":
    main()
