#!/usr/bin/env bash
# Alternates the bench of `aaron` from two checkouts, each from its own root with its own sources
# (PYTHONPATH), the order turning each round; prints the CPU per frame received by thread role.
#   results/ros_bench/compiled_frame_path_ab_cpu2_amd_epyc/ab.sh PYTHON_CHECKOUT COMPILED_CHECKOUT ROUNDS OUT_DIR
# Each checkout needs .venv, kernel_bags and data/sample_bag (links will do).
set -euo pipefail
python_root="$(realpath "$1")" compiled_root="$(realpath "$2")" rounds="$3" out="$(realpath -m "$4")"
mkdir -p "$out"
for r in $(seq "$rounds"); do
  order=(python compiled); (( r % 2 == 0 )) && order=(compiled python)
  for side in "${order[@]}"; do
    root="$python_root"; [[ $side == compiled ]] && root="$compiled_root"
    (cd "$root" && FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA PYTHONPATH="$root" .venv/bin/python -m aaron_ros.cli bench \
      --bag data/sample_bag --config f1tenth --policies aaron --repeats 2 --isolation 0 --kernel-bags kernel_bags \
      --out "$out/${side}_$r" --no-progress > "$out/${side}_$r.log" 2>&1)
    "$python_root/.venv/bin/python" -c '
import json, sys
rep = json.load(open(sys.argv[1] + "/report.json")); cpu = rep["policies"]["aaron"]
print(sys.argv[2], sys.argv[3], "outside %.2f host %.2f coord %.2f executor %.2f results %.2f lanes %.2f stages %.2f"
      % (cpu["cpu_outside_stages_ms_per_frame"], cpu["cpu_host_ms_per_frame"], cpu["cpu_coordinator_ms_per_frame"],
         cpu["cpu_ms_per_frame"]["executor"], cpu["cpu_ms_per_frame"]["results"], cpu["cpu_ms_per_frame"]["lanes"],
         cpu["cpu_stages_ms_per_frame"]), flush=True)' "$out/${side}_$r" "$side" "$r"
  done
done
