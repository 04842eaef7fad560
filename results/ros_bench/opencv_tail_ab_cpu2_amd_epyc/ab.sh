#!/usr/bin/env bash
# The runs of this folder, at e15792c (OpenCV's pool as it was), `aaron` alone on the ROS stress
# case, from the repository's root with the demo's sample bag and kernel bags. Each run's
# report.md, report.json (and, for the OpenCV runs, frame_time_tail.png) are kept.
set -euo pipefail
export FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA
here=results/ros_bench/opencv_tail_ab_cpu2_amd_epyc
bench() {  # out folder
  .venv/bin/python -m aaron_ros.cli bench --bag data/sample_bag --config f1tenth --policies aaron --repeats 2 \
    --isolation 0 --kernel-bags kernel_bags --out "$1" --no-progress
}
# The switch interval: sitecustomize.py sets it from AARON_SWITCH_INTERVAL_S in every Python process
# that has its folder on the path (the container's too); an experiment's hook, not the project's.
for run in default_1 short_1 short_2 default_2 default_3 short_3; do
  interval=$([[ $run == short_* ]] && echo 0.0005 || echo 0.005)
  PYTHONPATH="$here/switch_interval:." AARON_SWITCH_INTERVAL_S=$interval bench "$here/switch_interval/$run"
done
# OpenCV's pool (2 threads here) against OpenCV on the calling thread, as the container now sets it.
for run in caller_1 pool_1 pool_2 caller_2 caller_3 pool_3; do
  if [[ $run == caller_* ]]; then OPENCV_FOR_THREADS_NUM=1 PYTHONPATH=. bench "$here/$run"
  else PYTHONPATH=. bench "$here/$run"; fi
done
