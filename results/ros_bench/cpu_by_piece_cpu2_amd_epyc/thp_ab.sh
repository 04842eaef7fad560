#!/usr/bin/env bash
# Transparent huge pages for glibc's heap (and with PYTHONMALLOC=malloc, for Python's objects too):
# fewer TLB misses when the frame path runs after a model stage? Alternates the bench of run_N/
# as is (base), with glibc.malloc.hugetlb=1 (thp), and with it and PYTHONMALLOC=malloc (thpm),
# ROUNDS times; prints the CPU per frame received outside the model stages. From the repository's
# root (THP in `madvise` mode, glibc 2.35 or later):  .../thp_ab.sh ROUNDS OUT_DIR
set -euo pipefail
rounds="$1" out="$2"
mkdir -p "$out"
for r in $(seq "$rounds"); do
  for side in base thp thpm; do
    envs=(FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA PYTHONPATH=.)
    [[ $side != base ]] && envs+=(GLIBC_TUNABLES=glibc.malloc.hugetlb=1)
    [[ $side == thpm ]] && envs+=(PYTHONMALLOC=malloc)
    env "${envs[@]}" .venv/bin/python -m aaron_ros.cli bench --bag data/sample_bag --config f1tenth \
      --policies aaron --repeats 2 --isolation 0 --kernel-bags kernel_bags --out "$out/${side}_$r" \
      --no-progress > "$out/${side}_$r.log" 2>&1
    .venv/bin/python -c '
import json, sys
cpu = json.load(open(sys.argv[1] + "/report.json"))["policies"]["aaron"]
print(sys.argv[2], sys.argv[3], "outside the model stages %.2f, host work %.2f, coordinator %.2f, executor %.2f, results %.2f"
      % (cpu["cpu_outside_stages_ms_per_frame"], cpu["cpu_host_ms_per_frame"], cpu["cpu_coordinator_ms_per_frame"],
         cpu["cpu_ms_per_frame"]["executor"], cpu["cpu_ms_per_frame"]["results"]), flush=True)' "$out/${side}_$r" "$side" "$r"
  done
done
