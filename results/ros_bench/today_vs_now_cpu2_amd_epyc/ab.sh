#!/usr/bin/env bash
# The CPU goal read in one sitting: codes side by side, each run from its own root with its own
# venv, kernel bags and the same data/sample_bag, alternating. SIDE is NAME=ROOT (before=a
# checkout of 1d6c18c, whose demo gave 4.4-5.2 ms per frame outside the model stages; now=.).
# With two sides the order is reversed in the last round; with more, it turns by one each round.
#   ab.sh OUT ROUNDS POLICIES SIDE SIDE [SIDE ...]
set -euo pipefail
out="$1" rounds="$2" policies="$3"; shift 3
sides=("$@") n=$#
mkdir -p "$out" && out="$(cd "$out" && pwd)"  # each bench runs from its side's root
export FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA
for i in $(seq "$rounds"); do
  for k in $(seq 0 $(( n - 1 ))); do
    if (( n == 2 )); then j=$(( i == rounds ? 1 - k : k )); else j=$(( (i - 1 + k) % n )); fi
    side="${sides[$j]%%=*}" dir="${sides[$j]#*=}"
    (cd "$dir" && .venv/bin/aaron-ros bench --bag data/sample_bag --config f1tenth \
      --kernel-bags kernel_bags --policies "$policies" --repeats 2 --isolation 0 \
      --out "$out/${side}_$i" --no-progress > "$out/${side}_$i.log" 2>&1)
    echo "round $i $side done"
  done
done
