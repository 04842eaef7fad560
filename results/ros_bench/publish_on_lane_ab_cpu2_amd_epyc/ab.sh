#!/usr/bin/env bash
# Results published by the lane that ended the frame, once it has let the coordinator's lock go
# (`lane`: 3bdfa38 with lane.patch), against each component's own results thread woken for every
# frame (`thread`: 3bdfa38 as it is). `aaron` alone on the ROS stress case, then the light one,
# alternating. Each side runs from its own checkout: `python -m` puts the working folder first on
# the path, ahead of PYTHONPATH (same_code/ holds a first try that missed this, so both sides ran
# the patched code: an A/A). From the repository's root, with the demo's sample bag and kernel bags:
#   results/ros_bench/publish_on_lane_ab_cpu2_amd_epyc/ab.sh
set -euo pipefail
export FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA
here=results/ros_bench/publish_on_lane_ab_cpu2_amd_epyc
root=$PWD
tmp=$(mktemp -d)
git worktree add --detach "$tmp/thread" 3bdfa38 >/dev/null
git worktree add --detach "$tmp/lane" 3bdfa38 >/dev/null
git -C "$tmp/lane" apply "$root/$here/lane.patch"
trap 'git worktree remove --force "$tmp/thread"; git worktree remove --force "$tmp/lane"' EXIT
bench() {  # run name, config[, subfolder]
  src="$tmp/${1%_*}"
  (cd "$src" && PYTHONPATH="$src" "$root/.venv/bin/python" -m aaron_ros.cli bench --bag "$root/data/sample_bag" \
    --config "$2" --policies aaron --repeats 2 --isolation 0 --kernel-bags "$root/kernel_bags" \
    --out "$root/$here/${3:-}$1" --no-progress)
}
for run in thread_1 lane_1 lane_2 thread_2 thread_3 lane_3 lane_4 thread_4; do bench "$run" f1tenth; done
for run in thread_1 lane_1 lane_2 thread_2; do bench "$run" f1tenth_light light/; done
