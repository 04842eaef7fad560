"""Kernel bags: built, profiled, written, loaded back with validation, and refused (with the
eager fallback) when missing, corrupted or stale."""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch

from aaron_ros.cli import main
from aaron_ros.kernels.backends import BACKENDS
from aaron_ros.kernels.background import PROBE_KINDS
from aaron_ros.kernels.background.levels import ISOLATION
from aaron_ros.kernels.bag import BagError, load_bag, read_manifest, sha256_file, write_manifest
from aaron_ros.kernels.compile import CompileOptions, compile_bag, stage_costs, stage_inputs
from aaron_ros.kernels.fallback import load_bag_or_eager
from aaron_ros.kernels.profile import LaneSet
from aaron_ros.kernels.show import show
from aaron_ros.kernels.version import Artifact
from aaron_ros.models import Stage, build_model, fuse

MODEL = "mobilenet_v3_small"
KINDS = ("compute", "memory", "model")


def _opts(**kw) -> CompileOptions:
    base = dict(backends=("eager", "onnxruntime"), kinds=KINDS, reps=3, min_reps=2, warmup=1, progress=False)
    base.update(kw)
    return CompileOptions(**base)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One small bag, built once for the tests that only read it."""
    out = tmp_path_factory.mktemp("bags") / MODEL
    report = compile_bag(MODEL, out, _opts())
    return out, report


@pytest.fixture
def bag_copy(built, tmp_path):
    dst = tmp_path / MODEL
    shutil.copytree(built[0], dst)
    return dst


def test_manifest_is_complete(built):
    out, report = built
    m = read_manifest(out)
    graph = build_model(MODEL)
    assert m.model == MODEL and m.schema == 1 and m.torch == torch.__version__
    assert m.conditions == ["isolation", "compute/light", "compute/medium", "compute/heavy",
                            "memory/light", "memory/medium", "memory/heavy",
                            "model/light", "model/medium", "model/heavy"]
    # Its stages: the model's own, fused into fewer (its 14 stages cost well under 1 ms each).
    assert 1 <= len(m.stages) < len(graph.stages) == len([i for g in m.partition for i in g])
    assert [s.name for s in m.stages] == [s.name for s in fuse(graph, m.partition).stages]
    for s in m.stages:
        backends = {v.backend for v in m.versions_of(s.index)}
        assert {"eager", "onnxruntime"} <= backends, f"stage {s.name} lacks versions: {backends}"
    for v in m.versions:
        assert set(v.profiles) == set(m.conditions), v.id
        assert all(p.p50_ms > 0 and p.p95_ms >= p.p50_ms and p.n >= 2 for p in v.profiles.values())
        assert set(v.sensitivity) == set(KINDS) and set(v.pressure) == set(KINDS) & set(PROBE_KINDS)
        assert v.max_rel_err < 1e-4
        for a in v.artifacts:
            assert (out / a.path).is_file()
    assert {c for c in m.calibration} >= set(m.conditions) - {"isolation"}
    assert m.device["cores"] >= 1


def test_bag_round_trips_and_runs_like_eager(built):
    out, _ = built
    graph = build_model(MODEL)
    bag = load_bag(out, graph)
    m = read_manifest(out)
    assert sum(len(v) for v in bag.versions.values()) == len(m.versions)
    assert len(bag.graph.stages) == len(m.stages) < len(graph.stages)  # in the bag's stages
    x = torch.randn(1, *graph.input_shape)
    ref = graph.run_whole(x)
    for cond in m.conditions:
        y = x
        for s in bag.graph.stages:
            y = bag.runner(bag.best(s.index, cond))(y)
        torch.testing.assert_close(y, ref, rtol=1e-4, atol=1e-4)
    write_manifest(out, read_manifest(out))  # rewriting an unchanged manifest keeps it loadable
    assert read_manifest(out).to_dict() == m.to_dict()


def test_rerun_reuses_cache(built, bag_copy):
    report = compile_bag(MODEL, bag_copy, _opts())
    assert report.built == 0 and report.profiled == 0
    assert report.reused == len(read_manifest(bag_copy).versions)
    assert report.seconds < built[1].seconds


def test_missing_manifest_is_a_clear_error_and_falls_back(tmp_path, caplog):
    graph = build_model(MODEL)
    with pytest.raises(BagError, match="manifest.json is missing"):
        load_bag(tmp_path / "nothing", graph)
    with caplog.at_level(logging.WARNING):
        bag = load_bag_or_eager(tmp_path / "nothing", graph)
    assert bag.fallback_reason and "missing" in bag.fallback_reason
    assert "falling back to eager" in caplog.text
    # Fused and timed here, at every thread budget, so the coordinator has times to choose by.
    assert len(bag.graph.stages) < len(graph.stages)
    threads = set(CompileOptions().thread_counts())
    for vs in bag.versions.values():
        assert all(v.backend == "eager" and ISOLATION in v.profiles for v in vs)
        assert {v.shape.threads for v in vs} == threads
    x = torch.randn(1, *graph.input_shape)
    torch.testing.assert_close(bag.graph.run_stages(x), graph.run_whole(x))


def test_a_bag_says_its_stage_size_and_an_older_one_is_told_to_rebuild(built, bag_copy, caplog):
    """A bag records the size its stages were fused to. One built before it did still loads, and
    the log says that compile now fuses larger stages (its finer ones cost more CPU a frame)."""
    graph = build_model(MODEL)
    assert read_manifest(built[0]).min_stage_ms == _opts().min_stage_ms
    data = json.loads((bag_copy / "manifest.json").read_text())
    del data["min_stage_ms"]
    (bag_copy / "manifest.json").write_text(json.dumps(data))
    with caplog.at_level(logging.INFO, logger="aaron_ros.kernels.fallback"):
        bag = load_bag_or_eager(built[0], graph)
        assert bag.fallback_reason is None and "build it again" not in caplog.text
        old = load_bag_or_eager(bag_copy, graph)
    assert old.fallback_reason is None and old.manifest.min_stage_ms is None
    assert f"kernel bag {bag_copy}: built before bags said their stage size" in caplog.text
    assert len(old.graph.stages) == len(bag.graph.stages)


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "manifest.json").write_text("{ not json"), "corrupted"),
    (lambda d: (d / "manifest.json").write_text(json.dumps({"schema": 99})), "schema 99"),
    (lambda d: _edit(d, lambda m: m.pop("versions")), "corrupted"),
    (lambda d: _edit(d, lambda m: m.update(torch="1.0.0")), "torch 1.0.0"),
    (lambda d: _edit(d, lambda m: m.update(weights_sha256="0" * 64)), "other weights"),
    (lambda d: _edit(d, lambda m: m["device"].update(name="Other CPU")), "Other CPU"),
    (lambda d: _edit(d, lambda m: m.update(partition=[[0, 2], [1]])), "stage partition does not fit"),
    (lambda d: _edit(d, lambda m: m.update(device=None)), "device is None"),
    (lambda d: _edit(d, lambda m: m.update(versions=[])), "holds no versions"),
], ids=["bad-json", "schema", "no-versions", "torch", "weights", "device", "partition", "device-null",
        "empty-versions"])
def test_damaged_bag_is_refused_and_runtime_falls_back(bag_copy, damage, message, caplog):
    graph = build_model(MODEL)
    damage(bag_copy)
    with pytest.raises(BagError, match=message):
        load_bag(bag_copy, graph)
    with caplog.at_level(logging.WARNING):
        bag = load_bag_or_eager(bag_copy, graph)
    assert bag.manifest is None and message.split()[0] in bag.fallback_reason
    x = torch.randn(1, *graph.input_shape)
    y = x
    for s in bag.graph.stages:
        y = bag.runner(bag.best(s.index))(y)
    torch.testing.assert_close(y, graph.run_whole(x))


def test_wrong_version_never_enters_a_bag(tmp_path, monkeypatch, caplog):
    """A deliberately wrong backend (a fault injected on purpose) is left out with its reason."""

    class OffByALittle(type(BACKENDS["eager"])):
        name = "off_by_a_little"

        def load(self, stage, artifacts, shape, device):
            runner = super().load(stage, artifacts, shape, device)
            return type(runner)(index=runner.index, name=runner.name,
                                module=lambda x, f=runner.module: f(x) + 1e-2, branches=())

    monkeypatch.setitem(BACKENDS, "off_by_a_little", OffByALittle())
    with caplog.at_level(logging.WARNING):
        report = compile_bag(MODEL, tmp_path / "bag", _opts(backends=("eager", "off_by_a_little"),
                                                             kinds=("compute",), threads=(1,)))
    m = read_manifest(tmp_path / "bag")
    assert {v.backend for v in m.versions} == {"eager"}
    reasons = [s["reason"] for s in m.skipped if "off_by_a_little" in s["id"]]
    assert len(reasons) == len(m.stages) and all("equivalence" in r for r in reasons)
    assert "failed the equivalence check" in caplog.text
    assert report.manifest is not None


def test_unchecked_version_cannot_be_loaded(bag_copy, caplog):
    """An artifact swapped for a different function, with its checksum updated to match, passes
    every file check; loading still re-checks each version against eager and leaves it out."""
    graph = build_model(MODEL)
    m = read_manifest(bag_copy)
    victim = next(v for v in m.versions if v.backend == "onnxruntime" and len(v.artifacts) == 1)
    stage = fuse(graph, m.partition).stages[victim.stage]  # in the bag's stages
    wrong = Stage(stage.index, stage.name, module=_Scaled(stage.module))
    x = torch.randn(*m.stages[victim.stage].input_shape)
    (built_path,) = BACKENDS["onnxruntime"].build(wrong, x, victim.shape, bag_copy / "tmp", "wrong")
    target = bag_copy / victim.artifacts[0].path
    target.write_bytes(built_path.read_bytes())
    victim.artifacts[0] = Artifact(victim.artifacts[0].path, sha256_file(target))
    write_manifest(bag_copy, m)
    with caplog.at_level(logging.WARNING):
        bag = load_bag(bag_copy, graph)
    assert victim.id not in {v.id for vs in bag.versions.values() for v in vs}
    assert victim.id in caplog.text and "relative error" in caplog.text


class _Scaled(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x) * 1.01


def test_stages_are_fused_by_their_time_on_the_quickest_build():
    # Fusion weighs each stage by what will run it: here every stage is said to take a second
    # eager, so each cost under that was timed on its ONNX Runtime build.
    graph, cpu = build_model(MODEL), torch.device("cpu")
    inputs, said = stage_inputs(graph, cpu), {s.index: 1.0 for s in graph.stages}
    lanes = LaneSet(cpu, count=2)
    try:
        costs = stage_costs(graph, inputs, said, _opts(), cpu, lanes)
        assert set(costs) == set(said) and all(0 < c < 1.0 for c in costs.values()), costs
        # No quick backend offered: the eager times stand.
        assert stage_costs(graph, inputs, said, _opts(backends=("eager",)), cpu, lanes) == said
    finally:
        lanes.close()


def test_tiny_budget_still_yields_a_complete_manifest(tmp_path):
    # min_stage_ms=0: the model's own stages, none fused.
    report = compile_bag(MODEL, tmp_path / "bag", _opts(budget_s=0.5, kinds=("compute",), min_stage_ms=0))
    m = read_manifest(tmp_path / "bag")
    assert len(m.stages) == len(build_model(MODEL).stages) and m.partition == []
    assert all(any(v.backend == "eager" for v in m.versions_of(s.index)) for s in m.stages)
    assert all(set(v.profiles) == set(m.conditions) for v in m.versions)
    assert any("budget" in s["reason"] for s in m.skipped)
    assert report.seconds < 120
    # A re-run keeps the earlier run's decisions: nothing is built again.
    again = compile_bag(MODEL, tmp_path / "bag", _opts(budget_s=0.5, kinds=("compute",), min_stage_ms=0))
    assert again.built == 0 and again.profiled == 0
    assert {s["id"] for s in again.skipped} >= {s["id"] for s in m.skipped if "budget" in s["reason"]}


def test_bag_show_prints_best_versions_and_writes_plot(built, capsys):
    out, _ = built
    text, pngs = show(out.parent)
    assert "best version per stage" in text and "best per level" in text
    assert "differs from isolation: compute" in text
    assert pngs and pngs[0].stat().st_size > 10_000 and pngs[0].read_bytes()[:4] == b"\x89PNG"
    assert main(["bag", "show", str(out), "--no-plot"]) == 0
    assert MODEL in capsys.readouterr().out
    assert main(["bag", "show", str(out.parent / "none")]) == 2


def _edit(bag_dir: Path, fn) -> None:
    path = bag_dir / "manifest.json"
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


def _with_artifact(bag_dir: Path):
    return next(v for v in read_manifest(bag_dir).versions if v.artifacts)


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / _with_artifact(d).artifacts[0].path).unlink(), "is missing"),
    (lambda d: (d / _with_artifact(d).artifacts[0].path).write_bytes(b"garbage"), "checksum"),
    (lambda d: _edit(d, lambda m: next(v for v in m["versions"] if v["artifacts"]).update(stage=99)),
     "is for stage 99"),
], ids=["artifact-missing", "artifact-corrupted", "stage-out-of-range"])
def test_a_damaged_version_is_left_out_and_the_rest_of_the_bag_serves(bag_copy, damage, message, caplog):
    graph = build_model(MODEL)
    damaged = _with_artifact(bag_copy).id
    whole = sum(map(len, load_bag(bag_copy, graph, verify=False).versions.values()))
    damage(bag_copy)
    with caplog.at_level(logging.WARNING):
        bag = load_bag(bag_copy, graph)
    assert f"version {damaged} left out" in caplog.text and message in caplog.text, caplog.text
    kept = [v.id for vs in bag.versions.values() for v in vs]
    assert damaged not in kept and len(kept) == whole - 1 and bag.fallback_reason is None
    x = torch.randn(1, *graph.input_shape)
    y = x
    for s in bag.graph.stages:
        y = bag.runner(bag.best(s.index))(y)
    torch.testing.assert_close(y, graph.run_whole(x))


def test_compile_and_contention_commands(tmp_path, capsys):
    assert main(["compile", "--model", MODEL, "--out", str(tmp_path), "--backends", "eager",
                 "--kinds", "compute", "--budget-s", "5", "--reps", "2", "--no-progress"]) == 0
    m = read_manifest(tmp_path / MODEL)
    assert m.conditions == ["isolation", "compute/light", "compute/medium", "compute/heavy"]
    assert main(["compile", "--model", "alexnet", "--out", str(tmp_path)]) == 2
    assert "alexnet" in capsys.readouterr().err
    assert main(["contention", "--kind", "memory", "--level", "light", "--seconds", "0.3",
                 "--device", "cpu", "--no-progress"]) == 0
    assert "memory/light on cpu" in capsys.readouterr().out
    assert main(["contention", "--kind", "memory", "--level", "extreme", "--seconds", "1"]) == 2
    assert "isolation, light, medium, heavy" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without a CUDA device")
def test_cuda_bag_without_a_device_says_so():
    with pytest.raises(ValueError, match="kernel bag for cuda: no CUDA device is available"):
        _opts(device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_bag_builds_checks_and_loads(tmp_path):
    report = compile_bag(MODEL, tmp_path / "bag", _opts(device="cuda", kinds=("compute", "memory")))
    m = read_manifest(tmp_path / "bag")
    assert m.backend == "cuda" and m.device["sms"] > 0
    keys = {v.shape.key for v in m.versions}
    assert {"t1", "t1-p-1"} <= keys, keys  # default and high-priority streams
    # Loaded as a fresh process would, before any lane exists: cuDNN's TF32 on, torch's default.
    # Every version must still pass its check (once, all were left out at 1e-3 off).
    torch.backends.cudnn.allow_tf32 = True
    bag = load_bag(tmp_path / "bag", build_model(MODEL), "cuda")
    assert sum(len(v) for v in bag.versions.values()) == len(m.versions) and report.built > 0
    assert not torch.backends.cudnn.allow_tf32
