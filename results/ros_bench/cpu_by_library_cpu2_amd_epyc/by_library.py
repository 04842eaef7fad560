"""`perf report`'s samples by thread and shared object (sample.sh) summed into ms of CPU per frame
received, by thread group and by the kind of code: the models' libraries, the interpreter
(with the extension modules it calls: numpy, rclpy's bindings, torch's Python layer, ctypes),
the kernel (system calls, scheduling, page faults), Fast DDS and rcl, the C and C++ runtimes,
and the compiled host work (the project's C kernels, OpenCV).

    python3 by_library.py REPORT.txt CONTAINER_LOG [--hz 1999]
"""
from __future__ import annotations

import argparse
import collections
import re

THREADS = (("lane-", "lanes"), ("results-", "results"), ("dds.", "dds"), ("python", "executor and model pools"))
KINDS = (
    ("models", ("onnxruntime", "libtorch_cpu", "libc10", "libgomp", "libmkl", "libdnnl")),
    ("interpreter", ("libpython", "cpython-311", "libtorch_python", "libffi")),
    ("kernel", ("[kernel.kallsyms]", "[vdso]")),
    ("DDS and rcl", ("libfastdds", "libfastcdr", "librmw", "librcl", "librosidl")),
    ("host work (C)", ("libaaron_ros_host", "cv2.abi3")),
    ("C/C++ runtime", ("libc.so", "libm.so", "libstdc++", "ld-linux")),
)


def kind_of(dso: str) -> str:
    # onnxruntime's and torch's own .cpython-311 modules are model code, not the interpreter's.
    return next((k for k, marks in KINDS if any(m in dso for m in marks)), "other")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("report")
    ap.add_argument("log")
    ap.add_argument("--hz", type=float, default=1999.0)
    args = ap.parse_args()
    received = sum(int(line.split()[8]) for line in open(args.log)
                   if re.match(r"^\w+ +\w+ +(critical|normal) ", line))
    cells: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for line in open(args.report):
        m = re.match(r"^\s+[\d.]+%\s+(\d+)\s+\d+:(\S+)\s+(.+?)\s*$", line)
        if m:
            samples, comm, dso = int(m[1]), m[2], m[3]
            group = next((g for prefix, g in THREADS if comm.startswith(prefix)), "other")
            cells[group][kind_of(dso)] += samples
    ms = 1e3 / args.hz / max(1, received)
    names = [k for k, _ in KINDS] + ["other"]
    print(f"{received} frames received; ms of CPU per frame received, from perf's samples at {args.hz:g} Hz\n")
    print("| thread group | " + " | ".join(names) + " | all | all but the models |")
    print("|---" * (len(names) + 3) + "|")
    totals: collections.Counter[str] = collections.Counter()
    for group, row in sorted(cells.items(), key=lambda kv: -sum(kv[1].values())):
        totals.update(row)
        print(f"| {group} | " + " | ".join(f"{row[k] * ms:.3f}" for k in names)
              + f" | {sum(row.values()) * ms:.3f} | {(sum(row.values()) - row['models']) * ms:.3f} |")
    print("| all | " + " | ".join(f"{totals[k] * ms:.3f}" for k in names)
          + f" | {sum(totals.values()) * ms:.3f} | {(sum(totals.values()) - totals['models']) * ms:.3f} |")


if __name__ == "__main__":
    main()
