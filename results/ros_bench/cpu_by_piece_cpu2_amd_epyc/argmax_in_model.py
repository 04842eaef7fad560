"""Segmentation's argmax inside the model (an ONNX ArgMax + Cast appended to the graph, as many
deployments export it) against the model's logits and the package's C argmax after it. Both in
ONNX Runtime sessions set as the package's are, alone, the caches evicted before each frame as
a stage beside it would. Prints the labels' agreement and the median CPU and wall per frame.

    PYTHONPATH=. .venv/bin/python results/ros_bench/cpu_by_piece_cpu2_amd_epyc/argmax_in_model.py [THREADS]
"""
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from aaron_ros.common.native import argmax_planes
from aaron_ros.kernels.backends.ort import export_onnx, make_session
from aaron_ros.models.seg_net import INPUT_SHAPE, seg_net


class Labels(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).argmax(dim=1).to(torch.uint8)


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main(threads: int) -> None:
    torch.manual_seed(0)
    model, x = seg_net().eval(), torch.randn(1, *INPUT_SHAPE)
    folder = Path(tempfile.mkdtemp())
    export_onnx(model, x, folder / "logits.onnx")
    export_onnx(Labels(model), x, folder / "labels.onnx")
    logits, labels = (make_session(folder / f"{n}.onnx", threads, torch.device("cpu")) for n in ("logits", "labels"))
    feed = {"input": x.numpy()}
    agree = (labels.run(None, feed)[0][0] == argmax_planes(logits.run(None, feed)[0][0])).mean()
    evict = np.ones(8 << 20, np.float32)  # 32 MB read through before each frame
    times: dict[str, list[tuple[float, float]]] = {"logits, then the C argmax": [], "argmax in the model": []}
    for _ in range(60):
        for name, got in times.items():
            evict.sum()
            c0, t0 = cpu_s(), time.perf_counter()
            if name == "argmax in the model":
                labels.run(None, feed)
            else:
                argmax_planes(logits.run(None, feed)[0][0])
            got.append((cpu_s() - c0, time.perf_counter() - t0))
    print(f"{threads} thread(s); labels agree on {agree:.4%} of pixels")
    for name, got in times.items():
        cpu, wall = np.median(np.array(got[10:]) * 1e3, axis=0)
        print(f"{name:28s} CPU {cpu:.2f} ms, wall {wall:.2f} ms a frame")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
