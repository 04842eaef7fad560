#!/usr/bin/env bash
# Build ros_path.c against the venv's ROS 2 (the ros-* wheels' headers and libraries), then run it
# on the sample bag, played by `aaron-ros play` in its own process as ros_path.py does. From the
# repository's root:  results/ros_bench/ros_path_floor_cpu2_amd_epyc/ros_path_c.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$PWD/.venv"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
pylib="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')"
includes=()
for d in "$venv"/include/*/; do includes+=("-I$d"); done
# librcl pulls in the messages' Python typesupport libraries, hence libpython (no interpreter runs).
gcc -O2 -o "$out/ros_path" "$here/ros_path.c" "${includes[@]}" -L"$venv/lib" -L"$pylib" \
  -Wl,--allow-shlib-undefined -Wl,--no-as-needed -lpython3.11 -lrcl -lrcutils -lrmw \
  -lsensor_msgs__rosidl_typesupport_c -lsensor_msgs__rosidl_generator_c \
  -laaron_ros__rosidl_typesupport_c -laaron_ros__rosidl_generator_c -lrosidl_runtime_c
# The wheels keep their own dependencies in <wheel>.libs folders.
libs="$(printf '%s:' "$venv"/lib/python3.11/site-packages/*.libs)$venv/lib:$pylib"
export FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA ROS_DOMAIN_ID=92
LD_LIBRARY_PATH="$libs" "$out/ros_path" > "$out/said" 2>&1 &
node=$!
sleep 2  # its subscription up before the player starts
PYTHONPATH=. "$venv/bin/python" -m aaron_ros.cli play data/sample_bag > /dev/null 2>&1
wait "$node"
cat "$out/said"
