#!/usr/bin/env bash
# OpenCV's own thread pool in the container (2 threads on this machine: its worker yields in a
# loop after each resize, `perf` found) against OpenCV sequential (`OPENCV_FOR_THREADS_NUM=1`),
# `aaron` alone on the ROS stress case, then on the light case, alternating. From the
# repository's root, with the demo's sample bag and kernel bags:
#   results/ros_bench/opencv_threads_ab_cpu2_amd_epyc/ab.sh
set -euo pipefail
export FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA
here=results/ros_bench/opencv_threads_ab_cpu2_amd_epyc
for run in pool_1 one_1 one_2 pool_2 pool_3 one_3 one_4 pool_4 pool_5 one_5 one_6 pool_6 pool_7 one_7 one_8 pool_8; do
  threads=$([[ $run == one_* ]] && echo 1 || echo 2)
  OPENCV_FOR_THREADS_NUM=$threads PYTHONPATH=. .venv/bin/python -m aaron_ros.cli bench --bag data/sample_bag \
    --config f1tenth --policies aaron --repeats 2 --isolation 0 --kernel-bags kernel_bags \
    --out "$here/$run" --no-progress
done
# The light case (f1tenth_light): the cores idle more often, where a yielding worker costs most.
for run in pool_1 one_1 one_2 pool_2 pool_3 one_3 one_4 pool_4; do
  threads=$([[ $run == one_* ]] && echo 1 || echo 2)
  OPENCV_FOR_THREADS_NUM=$threads PYTHONPATH=. .venv/bin/python -m aaron_ros.cli bench --bag data/sample_bag \
    --config f1tenth_light --policies aaron --repeats 2 --isolation 0 --kernel-bags kernel_bags \
    --out "$here/light/$run" --no-progress
done
