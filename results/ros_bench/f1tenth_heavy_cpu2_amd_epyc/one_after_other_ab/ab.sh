#!/usr/bin/env bash
# The heavy case before and after a change to aaron (this checkout, with gate.patch or
# gate_and_wait.patch applied), naive and elastic in every bench for reference; alternating, the
# last pair reversed. From the repository's root after ./scripts/demo, BEFORE a clean checkout of
# the same commit (it borrows this root's venv, kernel bags and sample bag):
#   results/ros_bench/f1tenth_heavy_cpu2_amd_epyc/one_after_other_ab/ab.sh BEFORE OUT [BUSY_MS IDLE_MS]
# With BUSY_MS IDLE_MS, a noisy neighbour (../../noisy_neighbour_cpu2_amd_epyc/neighbour.py) spins
# beside every bench.
set -euo pipefail
here="$PWD" before="$(cd "$1" && pwd)"
mkdir -p "$2" && out="$(cd "$2" && pwd)"
for f in .venv kernel_bags data; do [[ -e "$before/$f" ]] || ln -s "$here/$f" "$before/$f"; done
export FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA
if [[ $# -ge 4 ]]; then
  python3 results/ros_bench/noisy_neighbour_cpu2_amd_epyc/neighbour.py "$3" "$4" & spinner=$!
  trap 'kill $spinner' EXIT
fi
bench() {  # from the side's own root: `python -m` puts it first on the path
  (cd "$2" && PYTHONPATH=. .venv/bin/python -m aaron_ros.cli bench --bag data/sample_bag --config f1tenth_heavy \
    --policies naive,elastic,aaron --repeats 2 --isolation 0 --kernel-bags kernel_bags --out "$out/$1" --no-progress)
}
bench before_1 "$before"; bench after_1 "$here"
bench before_2 "$before"; bench after_2 "$here"
bench after_3 "$here"; bench before_3 "$before"
