#!/usr/bin/env bash
# The f1tenth case under each transports setting, in turns (A B A B), one machine, one hour:
#   A: FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA (TCP, shared memory; UDP for discovery)
#   B: fastdds_shm.xml beside this script (shared memory with a 32 MiB segment, UDP; no TCP)
# Both with best-effort images (config/f1tenth.yaml as shipped). From the repository's root, with
# the demo's bag and kernel bags:  results/ros_bench/shm_profile_ab_cpu2_amd_epyc/run.sh OUT
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:?usage: run.sh OUT}"
scripts/setup  # the package as the tree has it: .venv/bin/aaron-ros runs an installed copy
bench() {
  .venv/bin/aaron-ros bench --bag data/sample_bag --kernel-bags kernel_bags --config f1tenth \
    --policies sequential,naive,priority,elastic,aaron --repeats 2 "$@"
}
for turn in 1 2; do
  FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA bench --out "$out/large_data_$turn"
  FASTDDS_DEFAULT_PROFILES_FILE="$here/fastdds_shm.xml" bench --out "$out/shm_profile_$turn"
done
