"""Kernel backends and the equivalence check: every available backend builds, loads and matches
eager on fresh inputs; the check rejects wrong versions; versions run with their thread budget."""
from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import torch
from torch import nn

from aaron_ros.kernels.backends import BACKENDS, get_backend
from aaron_ros.kernels.backends.base import ThreadBudget
from aaron_ros.kernels.check import check_version, relative_error
from aaron_ros.kernels.version import ResourceShape, version_id
from aaron_ros.models.registry import build_model
from aaron_ros.models.stage_graph import Branches, Stage
from aaron_ros.runtime.executor import run_stage
from aaron_ros.runtime.lanes import LanePool, LaneSpec

CPU = torch.device("cpu")
T1, T2, T2_PAR = ResourceShape(1), ResourceShape(2), ResourceShape(2, branches="parallel")


def stage_inputs(name: str, upto: int) -> tuple[list[Stage], list[torch.Tensor]]:
    """The first `upto + 1` stages of a zoo model and an input for each (earlier stages' output)."""
    graph = build_model(name)
    x = graph.example_input()
    inputs = []
    with torch.inference_mode():
        for stage in graph.stages[: upto + 1]:
            inputs.append(x)
            x = stage(x)
    return graph.stages[: upto + 1], inputs


@pytest.fixture(scope="module")
def mobilenet() -> tuple[list[Stage], list[torch.Tensor]]:
    stages, inputs = stage_inputs("mobilenet_v3_small", 13)
    return stages, inputs


@pytest.fixture(scope="module")
def mixed_5b() -> tuple[Stage, torch.Tensor]:
    """Inception-v3's first mixed block: a branch group of four branches."""
    stages, inputs = stage_inputs("inception_v3", 2)
    assert stages[2].is_branch_group
    return stages[2], inputs[2]


def build_and_load(backend_name: str, stage: Stage, x: torch.Tensor, shape: ResourceShape,
                   out_dir: Path) -> tuple[Stage, list[Path]]:
    backend = get_backend(backend_name)
    if backend.unavailable(CPU):
        pytest.skip(f"{backend_name}: {backend.unavailable(CPU)}")
    assert backend.supports(stage, shape, CPU) is None
    stem = version_id(stage.index, backend_name, shape)
    artifacts = backend.build(stage, x, shape, out_dir, stem)
    for path in artifacts:
        assert path.parent == out_dir and path.name.startswith(stem)
        assert path.stat().st_size > 0
    return backend.load(stage, artifacts, shape, CPU), artifacts


# Artifacts per version: eager none, ONNX one file per callable.
FAST_BACKENDS = {"eager": lambda callables: 0, "onnxruntime": lambda callables: callables}


@pytest.mark.parametrize("backend_name", list(FAST_BACKENDS))
@pytest.mark.parametrize("index", [0, 4, 13])  # stem, a squeeze-excite block, the classifier
@pytest.mark.parametrize("shape", [T1, T2], ids=lambda s: s.key)
def test_sequential_versions_match_eager(backend_name, index, shape, mobilenet, tmp_path):
    stages, inputs = mobilenet
    stage = stages[index]
    loaded, artifacts = build_and_load(backend_name, stage, inputs[index], shape, tmp_path)
    assert len(artifacts) == FAST_BACKENDS[backend_name](1)
    assert (loaded.index, loaded.name, loaded.branches) == (stage.index, stage.name, ())
    result = check_version(loaded, stage, tuple(inputs[index].shape))
    assert result.ok, result.reason
    assert result.max_rel_err <= 1e-4


@pytest.mark.parametrize("backend_name", list(FAST_BACKENDS))
@pytest.mark.parametrize("shape", [T1, T2, T2_PAR], ids=lambda s: s.key)
def test_branch_group_versions_match_eager(backend_name, shape, mixed_5b, tmp_path):
    stage, x = mixed_5b
    loaded, artifacts = build_and_load(backend_name, stage, x, shape, tmp_path)
    callables = len(stage.branches) if shape.branches == "parallel" else 1
    assert len(artifacts) == FAST_BACKENDS[backend_name](callables)
    assert len(loaded.branches) == (callables if shape.branches == "parallel" else 0)
    result = check_version(loaded, stage, tuple(x.shape))
    assert result.ok, result.reason


def test_parallel_version_runs_on_separate_lanes(mixed_5b, tmp_path):
    stage, x = mixed_5b
    loaded, _ = build_and_load("onnxruntime", stage, x, T2_PAR, tmp_path)
    specs = [LaneSpec("main", threads=2), LaneSpec("a"), LaneSpec("b")]
    with LanePool(specs) as pool, torch.inference_mode():
        run = run_stage(loaded, x, pool["main"], branch_lanes=[pool["a"], pool["b"]])
        expected = stage(x)
    assert run.lanes == ("a", "b")
    assert relative_error(run.output, expected) < 1e-5


def test_onnx_export_falls_back_to_dynamo(mobilenet, tmp_path, monkeypatch):
    """The TorchScript exporter fails: the dynamo exporter writes one self-contained file."""
    export = torch.onnx.export

    def legacy_broken(*args, dynamo: bool = True, **kwargs):
        if not dynamo:
            raise RuntimeError("legacy exporter gone")
        return export(*args, dynamo=dynamo, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", legacy_broken)
    stages, inputs = mobilenet
    loaded, artifacts = build_and_load("onnxruntime", stages[13], inputs[13], T1, tmp_path)
    assert sorted(tmp_path.iterdir()) == artifacts
    result = check_version(loaded, stages[13], tuple(inputs[13].shape))
    assert result.ok, result.reason


@pytest.mark.timeout(240)
def test_inductor_slow_aot_package_builds_and_matches(mobilenet, tmp_path):
    """The one slow test (10-30 s): a real AOTInductor compile of mobilenet's first stage."""
    stages, inputs = mobilenet
    loaded, artifacts = build_and_load("inductor", stages[0], inputs[0], T1, tmp_path)
    assert [p.suffix for p in artifacts] == [".pt2"]
    assert isinstance(loaded.module, ThreadBudget) and loaded.module.threads == 1
    result = check_version(loaded, stages[0], tuple(inputs[0].shape))
    assert result.ok, result.reason


@pytest.mark.timeout(240)
def test_inductor_slow_falls_back_to_torch_compile(mobilenet, tmp_path, monkeypatch):
    """Packaging fails: a marker artifact says so, and load compiles with torch.compile (5-10 s)."""
    def broken(*args, **kwargs):
        raise RuntimeError("no packaging today")

    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", broken)
    stages, inputs = mobilenet
    loaded, artifacts = build_and_load("inductor", stages[13], inputs[13], T1, tmp_path)
    assert [p.name for p in artifacts] == [f"{version_id(13, 'inductor', T1)}.compile.json"]
    marker = json.loads(artifacts[0].read_text())
    assert marker["fallback"] == "torch.compile" and "no packaging today" in marker["reason"]
    result = check_version(loaded, stages[13], tuple(inputs[13].shape), trials=1)
    assert result.ok, result.reason


# --- what is offered where ---------------------------------------------------------------

def test_parallel_needs_a_branch_group(mobilenet, mixed_5b, tmp_path):
    stage = mobilenet[0][0]
    for backend in BACKENDS.values():
        assert "not a branch group" in backend.supports(stage, T2_PAR, CPU)
    with pytest.raises(ValueError, match="not a branch group"):
        get_backend("onnxruntime").build(stage, mobilenet[1][0], T2_PAR, tmp_path, "x")
    group = mixed_5b[0]
    assert get_backend("eager").supports(group, T2_PAR, CPU) is None
    assert get_backend("onnxruntime").supports(group, T2_PAR, CPU) is None
    assert "does not run branches" in get_backend("inductor").supports(group, T2_PAR, CPU)


def test_sm_budget_needs_cuda(mobilenet):
    assert "CUDA" in get_backend("eager").supports(mobilenet[0][0], ResourceShape(1, sms=8), CPU)


def test_tensorrt_is_unavailable_on_cpu():
    reason = get_backend("tensorrt").unavailable(CPU)
    assert reason and ("CUDA" in reason or "torch_tensorrt" in reason)


def test_eager_and_onnxruntime_are_available_on_cpu():
    assert get_backend("eager").unavailable(CPU) is None
    assert get_backend("onnxruntime").unavailable(CPU) is None


def test_unknown_backend_names_the_known_ones():
    with pytest.raises(KeyError) as err:
        get_backend("nope")
    for name in ("eager", "onnxruntime", "inductor", "tensorrt"):
        assert name in str(err.value)


# --- the check rejects wrong versions -------------------------------------------------------

def _variant(stage: Stage, fn) -> Stage:
    return Stage(stage.index, stage.name, module=fn)


def _raise(x: torch.Tensor) -> torch.Tensor:
    raise RuntimeError("kernel exploded")


@pytest.mark.parametrize("make, expected", [
    (lambda s: lambda x: s.module(x) + 1e-2, "relative error"),
    (lambda s: lambda x: s.module(x) * float("nan"), "NaN"),
    (lambda s: lambda x: s.module(x)[:, :-1], "shape"),
    (lambda s: lambda x: s.module(x).tolist(), "not a tensor"),
    (lambda s: _raise, "kernel exploded"),
], ids=["offset", "nan", "shape", "not-tensor", "raises"])
def test_check_rejects_wrong_versions(make, expected, mobilenet):
    stages, inputs = mobilenet
    stage = stages[4]
    result = check_version(_variant(stage, make(stage)), stage, tuple(inputs[4].shape))
    assert not result.ok
    assert expected in result.reason
    assert result.max_rel_err > 1e-4


def test_check_runs_a_split_version_branch_by_branch(mixed_5b):
    stage, x = mixed_5b
    loaded = get_backend("eager").load(stage, [], T2_PAR, CPU)
    bad = (lambda y: loaded.branches[0](y) + 1e-2, *loaded.branches[1:])
    # Whole, it is right; only the branch-by-branch path (the runtime's) gives it away.
    broken = Stage(stage.index, stage.name, module=loaded.module, branches=bad)
    result = check_version(broken, stage, tuple(x.shape), trials=1)
    assert not result.ok and "branches" in result.reason


def test_check_draws_fresh_nonzero_inputs_every_call(mobilenet):
    stages, inputs = mobilenet
    stage = stages[13]
    seen: list[torch.Tensor] = []

    def recording(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.clone())
        return stage.module(x)

    for _ in range(2):
        assert check_version(_variant(stage, recording), stage, tuple(inputs[13].shape), trials=2).ok
    assert len(seen) == 4
    assert all(x.abs().sum() > 0 for x in seen)
    assert all(not torch.equal(a, b) for i, a in enumerate(seen) for b in seen[i + 1:])


def test_relative_error():
    ref = torch.tensor([3.0, 4.0], dtype=torch.float64)
    assert relative_error(ref, ref) == 0.0
    assert relative_error(ref + torch.tensor([0.0, 0.05]), ref) == pytest.approx(0.01)
    assert relative_error(torch.zeros(2), torch.zeros(2)) == 0.0


# --- thread budgets ------------------------------------------------------------------------

class ThreadProbe(nn.Module):
    """Identity that records the intra-op thread count it runs with."""

    def __init__(self):
        super().__init__()
        self.seen: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(torch.get_num_threads())
        return x


def call_in_thread(fn, x: torch.Tensor, threads: int) -> None:
    """Call `fn` in a fresh thread whose own budget is `threads` (as a lane's would be)."""
    def work() -> None:
        torch.get_num_threads()
        torch.set_num_threads(threads)
        fn(x)

    t = threading.Thread(target=work)
    t.start()
    t.join()


@pytest.mark.parametrize("version_threads, caller_threads", [(2, 1), (1, 2)])
def test_eager_version_runs_with_its_own_thread_count(version_threads, caller_threads):
    probe = ThreadProbe()
    loaded = get_backend("eager").load(Stage(0, "probe", probe), [], ResourceShape(version_threads), CPU)
    call_in_thread(loaded, torch.randn(1, 4), caller_threads)
    assert probe.seen == [version_threads]


def test_split_eager_branches_run_single_threaded():
    probes = (ThreadProbe(), ThreadProbe())
    stage = Stage(0, "probes", Branches(*probes), branches=probes)
    loaded = get_backend("eager").load(stage, [], ResourceShape(2, branches="parallel"), CPU)
    for branch in loaded.branches:
        call_in_thread(branch, torch.randn(1, 4), 2)
    assert [p.seen for p in probes] == [[1], [1]]


@pytest.mark.parametrize("shape, per_session", [(T1, 1), (T2, 2), (T2_PAR, 1)], ids=["t1", "t2", "t2-par"])
def test_onnxruntime_sessions_carry_the_thread_budget(shape, per_session, mixed_5b, tmp_path):
    stage, x = mixed_5b
    loaded, _ = build_and_load("onnxruntime", stage, x, shape, tmp_path)
    runners = loaded.branches or (loaded.module,)
    for runner in runners:
        opts = runner.session.get_session_options()
        assert opts.intra_op_num_threads == per_session
        assert opts.inter_op_num_threads == 1
        assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
