#!/usr/bin/env bash
# Where the container's CPU goes, by thread and by library: `perf` samples an f1tenth container
# (`aaron-ros run`, policy aaron, its own process) while the sample bag is played into it from
# another process, then sums the samples by thread and shared object (by_library.py). The bench's CPU table
# says which threads spend; this says in what code (the interpreter, Fast DDS, the kernel's
# system calls and scheduling, the models' libraries). Needs perf and perf_event_paranoid <= 1
# (as root: echo -1 > /proc/sys/kernel/perf_event_paranoid). From the repository's root:
#   results/ros_bench/cpu_by_library_cpu2_amd_epyc/sample.sh OUT_DIR
set -euo pipefail
out="${1:?an output folder}"
mkdir -p "$out"
export FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA ROS_DOMAIN_ID=93
PYTHONPATH=. .venv/bin/python -m aaron_ros.cli run config/f1tenth.yaml --no-table > "$out/container.log" 2>&1 &
container=$!
trap 'kill -INT "$container" 2>/dev/null || true' EXIT
sleep 30  # its kernel bags loaded and its subscription up
perf record -F 1999 -e cpu-clock -g -p "$container" -o "$out/perf.data" > /dev/null 2>&1 &
sampler=$!
timeout 120 env PYTHONPATH=. .venv/bin/python -m aaron_ros.cli play data/sample_bag > /dev/null 2>&1 || echo "the player: exit $?"
kill -INT "$sampler"; wait "$sampler" || true
kill -INT "$container"; wait "$container" || true
trap - EXIT
grep -A4 "^task " "$out/container.log" | cut -c1-140 || true
perf report -i "$out/perf.data" -n --no-children -g none --sort pid,dso --stdio > "$out/report.txt" 2>/dev/null
python3 results/ros_bench/cpu_by_library_cpu2_amd_epyc/by_library.py "$out/report.txt" "$out/container.log"
