"""Background contention generators and probes, on CPU; CUDA where a GPU is present.

The shared test machine may be loaded by others at any time, so comparisons between levels use
generous margins and medians.
"""
from __future__ import annotations

import statistics
import threading
import time

import pytest
import torch

from aaron_ros.kernels.background import (
    KINDS,
    LEVELS,
    PROBE_KINDS,
    Background,
    make_probe,
    run_standalone,
    workloads,
)
from aaron_ros.kernels.background.generators import THREAD_PREFIX, union_seconds
from aaron_ros.kernels.background.levels import cores
from aaron_ros.runtime.lanes import Lane, LaneSpec

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
LOADED = LEVELS[1:]


def _workers_alive() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX)]


def _run(kind: str, level: str, seconds: float, device: str = "cpu"):
    with Background(kind, level, device) as bg:
        time.sleep(seconds)
    return bg.stats


def test_isolation_starts_no_threads():
    before = threading.active_count()
    with Background("compute", "isolation") as bg:
        assert threading.active_count() == before
        assert not _workers_alive()
    assert bg.stats.workers == 0 and bg.stats.iterations == 0 and bg.stats.share == 0.0


@pytest.mark.parametrize("level", LOADED)
@pytest.mark.parametrize("kind", KINDS)
def test_cpu_generator_runs_then_stops(kind, level):
    with Background(kind, level) as bg:
        alive = _workers_alive()
        time.sleep(0.2)
        assert bg.iterations > 0  # the load is running while the body runs
    assert len(alive) == bg.load.workers > 0
    assert not _workers_alive()
    stats = bg.stats
    assert stats.iterations > 0 and stats.cpu_s > 0 and 0 < stats.share <= 1.05
    assert stats.wall_s >= 0.2


@pytest.mark.parametrize("kind", KINDS)
def test_workers_stop_when_the_body_raises(kind):
    with pytest.raises(ZeroDivisionError):
        with Background(kind, "heavy"):
            1 / 0  # noqa: B018 (raises)
    assert not _workers_alive()


def test_a_worker_failing_to_start_is_reported_and_nothing_keeps_running(monkeypatch):
    def broken(device):
        raise MemoryError("no room for buffers")

    monkeypatch.setattr("aaron_ros.kernels.background.generators.memory_workload", broken)
    with pytest.raises(RuntimeError, match="failed to start") as info:
        with Background("memory", "heavy"):
            pytest.fail("the body must not run")
    assert isinstance(info.value.__cause__, MemoryError)
    assert not _workers_alive()


def test_heavy_takes_every_core_and_light_medium_one_worker():
    assert Background("compute", "heavy").load.workers == cores()
    assert [Background("memory", level).load.workers for level in ("light", "medium")] == [1, 1]


@pytest.mark.parametrize("kind", ["compute", "memory"])
def test_measured_share_rises_with_level(kind):
    shares = {level: _run(kind, level, 0.5).share for level in LOADED}
    # light works half the time on one worker; medium all the time on one.
    assert shares["light"] * 1.3 < shares["medium"]
    assert shares["light"] * 1.3 < shares["heavy"]
    # heavy runs a worker per core; when a neighbour's cgroup takes cores it can get no more than
    # medium does, but never clearly less.
    assert shares["heavy"] > shares["medium"] * 0.8


def _foreground_seconds(lane: Lane, runs: int = 5) -> float:
    def matmuls() -> float:
        a, out = torch.randn(256, 256), torch.empty(256, 256)
        torch.mm(a, a, out=out)
        t0 = time.perf_counter()
        for _ in range(300):
            torch.mm(a, a, out=out)
        return time.perf_counter() - t0

    return statistics.median(lane.run(matmuls).output for _ in range(runs))


def test_heavy_compute_holds_the_cores_while_a_foreground_lane_runs():
    # The slowdown itself is the machine's (1.0-2.7x seen on shared 2-core VMs) and is reported,
    # not asserted; what must hold is that the load really ran beside the foreground: one worker
    # per core, each taking a real part of the cores' CPU time (0.4 seen with the foreground and
    # another job on the machine, against 0 without a load).
    lane = Lane(LaneSpec("foreground", threads=1))
    try:
        alone = _foreground_seconds(lane)
        with Background("compute", "heavy") as bg:
            loaded = _foreground_seconds(lane)
    finally:
        lane.close()
    print(f"foreground slowdown under compute/heavy: {loaded / alone:.2f}x, background share {bg.stats.share:.2f}")
    assert bg.stats.workers == cores() and bg.stats.iterations > 0
    assert bg.stats.share > 0.2


def test_memory_kind_reports_bandwidth():
    stats = _run("memory", "medium", 0.3)
    assert stats.gbps > 0
    assert _run("compute", "medium", 0.1).gbps is None


def test_model_kind_loops_real_models_built_once():
    with Background("model", "medium") as bg:
        time.sleep(0.3)
    assert bg.load.models == ("mobilenet_v3_small", "shufflenet_v2")
    assert bg.stats.iterations > 0 and bg.stats.share > 0
    misses = workloads.zoo_model.cache_info().misses
    _run("model", "medium", 0.05)
    assert workloads.zoo_model.cache_info().misses == misses


@pytest.mark.parametrize("kind", PROBE_KINDS)
def test_probe_keeps_the_callers_thread_budget(kind):
    # How long a probe takes is the machine's (2-150 ms seen): not asserted, speed is for benches.
    probe = make_probe(kind)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        probe()
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_run_standalone_returns_stats():
    stats = run_standalone("compute", "light", 0.3, device="cpu", progress=False)
    assert (stats["kind"], stats["level"], stats["device"]) == ("compute", "light", "cpu")
    assert stats["wall_s"] >= 0.3 and stats["iterations"] > 0
    assert not _workers_alive()


@pytest.mark.parametrize("call, what, allowed", [
    (lambda: Background("gpu", "light"), "kind", KINDS),
    (lambda: run_standalone("gpu", "light", 1.0, progress=False), "kind", KINDS),
    (lambda: Background("compute", "extreme"), "level", LEVELS),
    (lambda: run_standalone("memory", "extreme", 1.0, progress=False), "level", LEVELS),
])
def test_invalid_kind_or_level_names_the_allowed_values(call, what, allowed):
    with pytest.raises(ValueError, match=what) as info:
        call()
    assert all(value in str(info.value) for value in allowed)


def test_invalid_duration_is_refused():
    with pytest.raises(ValueError, match="seconds"):
        run_standalone("compute", "light", 0, progress=False)



def test_probe_kinds_are_checked():
    with pytest.raises(ValueError, match="compute, memory"):
        make_probe("model")


def test_union_counts_overlapping_spans_once():
    assert union_seconds([(0.0, 1.0), (0.5, 1.5), (2.0, 3.0), (2.2, 2.4)]) == pytest.approx(2.5)
    assert union_seconds([]) == 0.0


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without a CUDA device")
def test_cuda_request_without_a_device_says_so():
    with pytest.raises(RuntimeError, match="CUDA"):
        Background("compute", "light", "cuda")


@needs_cuda
@pytest.mark.parametrize("level", LOADED)
@pytest.mark.parametrize("kind", KINDS)
def test_cuda_generator_runs_then_stops(kind, level):
    stats = _run(kind, level, 0.3, "cuda")
    assert not _workers_alive()
    assert stats.device.startswith("cuda") and stats.iterations > 0
    assert 0 < stats.share <= 1.05
    if kind == "memory":
        assert stats.gbps > 0


@needs_cuda
def test_cuda_share_rises_with_level():
    light, heavy = (_run("compute", level, 0.5, "cuda").share for level in ("light", "heavy"))
    assert light * 1.3 < heavy


@needs_cuda
def test_cuda_workers_stop_when_the_body_raises():
    with pytest.raises(ZeroDivisionError):
        with Background("memory", "heavy", "cuda"):
            1 / 0  # noqa: B018 (raises)
    assert not _workers_alive()


@needs_cuda
@pytest.mark.parametrize("kind", PROBE_KINDS)
def test_cuda_probe_runs(kind):
    probe = make_probe(kind, "cuda")
    probe()
    t0 = time.perf_counter()
    probe()
    assert time.perf_counter() - t0 < 1.0


@needs_cuda
def test_standalone_auto_picks_cuda():
    stats = run_standalone("compute", "light", 0.2, progress=False)
    assert stats["device"].startswith("cuda")
