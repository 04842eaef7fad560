"""Do a burst's first inferences come slower after a pause with no ROS and no coordinator at all?
Three threads run the kernel bags' one-thread ONNX Runtime stages of f1tenth's models, chained,
paced as the workload (tiny_yolo at 20 Hz, mobilenet_v3_small and seg_net at 30 Hz), in 3-s
bursts after pauses of 0.3 to 4 s. Printed per burst: the detector's first 6 frame latencies (ms)
and the median, and segmentation's first 4 and median. From the repository's root, after
`./scripts/demo` built the kernel bags:

    .venv/bin/python results/ros_bench/replay_start_cpu2_amd_epyc/compute_only.py
"""
import glob
import statistics
import threading
import time

import numpy as np
import onnxruntime as ort

MODELS = {"detector": ("tiny_yolo", (1, 3, 320, 320), 20), "signs": ("mobilenet_v3_small", (1, 3, 224, 224), 30),
          "segmentation": ("seg_net", (1, 3, 240, 320), 30)}
PAUSES_S = (0.3, 1, 2, 4, 0.3, 1, 2, 4)


def chain(model: str) -> list[ort.InferenceSession]:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    return [ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
            for path in sorted(glob.glob(f"kernel_bags/{model}/artifacts/s*.onnxruntime.t1.onnx"))]


def run(sessions: list[ort.InferenceSession], x: np.ndarray) -> np.ndarray:
    for s in sessions:
        x = s.run(None, {s.get_inputs()[0].name: x})[0]
    return x


chains = {task: chain(model) for task, (model, _, _) in MODELS.items()}
inputs = {task: np.random.rand(*shape).astype(np.float32) for task, (_, shape, _) in MODELS.items()}
for task in chains:
    for _ in range(5):
        run(chains[task], inputs[task])


def paced(task: str, hz: float, start: float, end: float, out: list[float]) -> None:
    n = 0
    while (due := start + n / hz) < end:
        time.sleep(max(0.0, due - time.perf_counter()))
        began = time.perf_counter()
        run(chains[task], inputs[task])
        out.append((time.perf_counter() - began) * 1e3)
        n += 1


for pause in PAUSES_S:
    time.sleep(pause)
    start = time.perf_counter() + 0.01
    ms: dict[str, list[float]] = {task: [] for task in MODELS}
    threads = [threading.Thread(target=paced, args=(task, MODELS[task][2], start, start + 3.0, ms[task]))
               for task in MODELS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    det, seg = ms["detector"], ms["segmentation"]
    print(f"after {pause:3.1f} s: detector first 6 {[round(x) for x in det[:6]]}, median {statistics.median(det):.1f}"
          f" | segmentation first 4 {[round(x) for x in seg[:4]]}, median {statistics.median(seg):.1f}", flush=True)
