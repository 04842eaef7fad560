#!/usr/bin/env bash
# Both floor nodes (ros_path_c.sh, ros_path.py), each alone and then beside an f1tenth container
# (`aaron-ros run`, policy aaron) that serves the same bag on the same ROS domain, in its own
# process: does running beside the models raise what the same ROS side costs? From the
# repository's root:  results/ros_bench/ros_path_floor_cpu2_amd_epyc/beside.sh > output_beside.txt
set -uo pipefail
here=results/ros_bench/ros_path_floor_cpu2_amd_epyc
export FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA
export GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=268435456
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
beside() {  # domain (ros_path_c.sh's 92, ros_path.py's 91), then the floor command
  local domain=$1; shift
  ROS_DOMAIN_ID=$domain PYTHONPATH=. .venv/bin/python -m aaron_ros.cli run config/f1tenth.yaml --no-table > "$log" 2>&1 &
  local container=$!
  sleep 30  # its kernel bags loaded and its subscription up
  "$@"
  kill -INT "$container"; wait "$container"
  echo "  the container's own table:"; grep -A4 "^task " "$log" | cut -c1-120
}
for round in 1 2 3; do
  echo "# round $round: compiled, alone"; "$here/ros_path_c.sh" | tail -4
  echo "# round $round: compiled, beside the container"; beside 92 "$here/ros_path_c.sh" | tail -10
  echo "# round $round: rclpy, alone"; PYTHONPATH=. .venv/bin/python "$here/ros_path.py" | tail -6
  echo "# round $round: rclpy, beside the container"; beside 91 env PYTHONPATH=. .venv/bin/python "$here/ros_path.py" | tail -12
done
