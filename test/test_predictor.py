"""The contention predictor: profiles to predictions, online correction, and its evaluation on
real co-runs of two small bags."""
from __future__ import annotations

import math

import numpy as np
import pytest

from aaron_ros.bench.predictor_eval import evaluate_predictor, format_eval
from aaron_ros.contention.predictor import ContentionPredictor, monotone
from aaron_ros.kernels.compile import CompileOptions, compile_bag
from aaron_ros.kernels.version import LevelProfile, ResourceShape, Version

CORES = 2
FLAT = (1.0, 1.0, 1.0)


def _version(iso: float = 10.0, compute=(1.1, 1.3, 1.8), memory=(1.1, 1.3, 1.8), model=(1.2, 1.5, 2.0),
             threads: int = 1, pressure: dict | None = None, backend: str = "eager") -> Version:
    """A version whose profile under each kind's light, medium and heavy level is iso x factor."""
    profiles = {"isolation": LevelProfile(iso, iso * 1.1, 5)}
    for kind, factors in (("compute", compute), ("memory", memory), ("model", model)):
        for level, f in zip(("light", "medium", "heavy"), factors):
            profiles[f"{kind}/{level}"] = LevelProfile(iso * f, iso * f * 1.1, 5)
    shape = ResourceShape(threads=threads)
    return Version(id=f"s00.{backend}.{shape.key}", stage=0, backend=backend, shape=shape, profiles=profiles,
                   sensitivity={"compute": compute[-1], "memory": memory[-1], "model": model[-1]},
                   pressure=pressure or {"compute": 1.2, "memory": 1.2})


def test_alone_is_the_isolation_median():
    assert ContentionPredictor(CORES).predict(_version(iso=7.5), []) == 7.5


def test_more_co_runner_threads_predict_more_latency():
    pred, v = ContentionPredictor(CORES), _version()
    for threads in (1, 2):
        co = _version(threads=threads)
        ms = [pred.predict(v, [co] * n) for n in range(5)]
        assert ms == sorted(ms) and len(set(ms)) == len(ms), ms


def test_the_co_runners_pressure_picks_the_channel():
    pred = ContentionPredictor(CORES)
    memory_bound = _version(compute=FLAT, memory=(1.5, 2.0, 3.0), model=FLAT)
    compute_bound = _version(compute=(1.5, 2.0, 3.0), memory=FLAT, model=FLAT)
    memory_hog = _version(pressure={"compute": 1.0, "memory": 2.0})
    compute_hog = _version(pressure={"compute": 2.0, "memory": 1.0})
    assert pred.predict(memory_bound, [memory_hog]) > pred.predict(compute_bound, [memory_hog])
    assert pred.predict(compute_bound, [compute_hog]) > pred.predict(memory_bound, [compute_hog])


def test_a_co_runner_holding_the_interpreter_lock_stalls_by_its_call_length():
    pred, v = ContentionPredictor(CORES), _version(backend="onnxruntime")
    holder = _version(iso=20.0, backend="inductor")
    busy = _version(iso=20.0)  # as busy, without the lock
    assert pred.predict(v, [holder]) == pytest.approx(pred.predict(v, [busy]) + 20.0)


def test_monotone_pools_violators():
    assert monotone([1.0, 3.0, 2.0, 4.0]) == [1.0, 2.5, 2.5, 4.0]


def test_a_consistent_bias_is_learned():
    pred, v, co = ContentionPredictor(CORES), _version(), [_version(threads=2)]
    raw = pred.predict(v, co)
    errors = []
    for _ in range(30):
        pred.observe(v, co, 1.5 * raw)
        errors.append(abs(pred.predict(v, co) / (1.5 * raw) - 1))
    assert errors == sorted(errors, reverse=True)
    assert errors[-1] < 0.02
    # Other versions in the same load regime take part of the correction.
    other = _version(iso=3.0, model=(1.3, 1.6, 2.2))
    assert pred.predict(other, co) > ContentionPredictor(CORES).predict(other, co)


def test_one_outlier_does_not_dominate():
    pred, v, co = ContentionPredictor(CORES), _version(), [_version()]
    raw = pred.predict(v, co)
    for _ in range(10):
        pred.observe(v, co, raw)
    pred.observe(v, co, 100 * raw)
    assert pred.predict(v, co) < 1.5 * raw
    for _ in range(10):
        pred.observe(v, co, raw)
    assert pred.predict(v, co) == pytest.approx(raw, rel=0.1)


def test_a_version_never_profiled_predicts_inf_and_learns_nothing():
    pred = ContentionPredictor(CORES)
    bare = Version(id="s00.eager.t1", stage=0, backend="eager", shape=ResourceShape())
    pred.observe(bare, [], 5.0)
    assert pred.predict(bare, []) == math.inf


@pytest.fixture(scope="module")
def small_bags(tmp_path_factory):
    root = tmp_path_factory.mktemp("bags")
    opts = CompileOptions(backends=("eager",), kinds=("compute", "memory", "model"), reps=2, min_reps=2,
                          warmup=1, progress=False)
    models = ("mobilenet_v3_small", "shufflenet_v2")
    for m in models:
        compile_bag(m, root / m, opts)
    return {m: root / m for m in models}


def test_evaluate_predictor_end_to_end(small_bags):
    result = evaluate_predictor(small_bags, runs=4, reps=2, seed=1, progress=False)
    for key in ("corrected", "uncorrected", "isolation"):
        assert set(result[key]) == {"median_ape", "p90_ape"}
        assert all(math.isfinite(x) and x >= 0 for x in result[key].values())
    assert 0 < result["predict_us_p50"] <= result["predict_us_p99"]
    assert (result["observed"], result["held_out"], len(result["samples"])) == (2, 2, 4)
    assert any(s["co_runners"] for s in result["samples"])
    assert all(s["measured_ms"] > 0 for s in result["samples"])
    held = [s for s in result["samples"] if s["held_out"]]
    for key in ("corrected", "uncorrected", "isolation"):
        # The scores are the held-out samples' own errors, not numbers made up on the side.
        ape = [abs(s[f"{key}_ms"] - s["measured_ms"]) / s["measured_ms"] * 100 for s in held]
        assert result[key]["median_ape"] == pytest.approx(float(np.median(ape)), abs=0.1)
    for s in held:
        # Co-runners never make a version faster (they may leave it a free core): the predictor
        # never predicts less than the isolation median beside them, and exactly it alone.
        if s["co_runners"]:
            assert s["uncorrected_ms"] >= s["isolation_ms"]
        else:
            assert s["uncorrected_ms"] == pytest.approx(s["isolation_ms"])
    assert "held-out" in format_eval(result)
