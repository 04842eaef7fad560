"""How often a kernel bag's stage partition comes out differently when the same model is timed
again on the same machine: each trial times every stage as `aaron-ros compile` does before it
fuses them (`stage_costs`: the faster of eager and ONNX Runtime at the widest thread budget),
then groups them at `--min-stage-ms`. Prints each trial's per-stage times and partition, and how
many distinct partitions the trials gave, per model. From the repository's root:

    PYTHONPATH=. .venv/bin/python results/kernel_bags/partition_stability_cpu2_amd_epyc/stability.py [--trials 8]
"""
from __future__ import annotations

import argparse
import collections

import torch

from aaron_ros.kernels import compile as kc
from aaron_ros.kernels.profile import LaneSet
from aaron_ros.models import build_model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="tiny_yolo,seg_net,mobilenet_v3_small,resnet18")
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--min-stage-ms", type=float, default=kc.MIN_STAGE_MS)
    args = ap.parse_args()
    device = torch.device("cpu")
    opts = kc.CompileOptions(progress=False)
    lanes = LaneSet(device, count=max(2, max(opts.thread_counts())))
    for name in args.models.split(","):
        graph = build_model(name, seed=0)
        inputs = kc.stage_inputs(graph, device)
        seen: collections.Counter[str] = collections.Counter()
        for t in range(args.trials):
            eager = kc.eager_costs(graph, inputs, lanes)
            cost = kc.stage_costs(graph, inputs, eager, opts, device, lanes)
            ms = [cost[s.index] * 1e3 for s in graph.stages]
            groups = kc.fused_partition(graph, cost, args.min_stage_ms) or [list(range(len(ms)))]
            seen[str(groups)] += 1
            print(f"{name} trial {t}: total {sum(ms):5.1f} ms, stages " + " ".join(f"{m:.1f}" for m in ms)
                  + f" -> {groups}", flush=True)
        print(f"{name}: {len(seen)} distinct partition(s) in {args.trials} trials: "
              + "; ".join(f"{k} x{v}" for k, v in seen.most_common()), flush=True)
    lanes.close()


if __name__ == "__main__":
    main()
