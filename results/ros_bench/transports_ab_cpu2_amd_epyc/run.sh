#!/usr/bin/env bash
# The f1tenth case under each transports setting, in turns (A B A B), one machine, one hour:
#   A: FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA, best-effort images (the README's setting)
#   B: Fast DDS's stock transports, every image reliable (f1tenth_reliable.yaml)
# Run from the repository root with the demo's bag and kernel bags: results/.../run.sh OUT
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
out="${1:?usage: run.sh OUT}"
scripts/setup  # the package as the tree has it: .venv/bin/aaron-ros runs an installed copy
bench() {
  .venv/bin/aaron-ros bench --bag data/sample_bag --kernel-bags kernel_bags \
    --policies sequential,naive,priority,elastic,aaron --repeats 2 "$@"
}
for turn in 1 2; do
  FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA bench --config f1tenth --out "$out/large_data_$turn"
  FASTDDS_BUILTIN_TRANSPORTS=DEFAULT bench --config "$here/f1tenth_reliable.yaml" --out "$out/stock_reliable_$turn"
done
