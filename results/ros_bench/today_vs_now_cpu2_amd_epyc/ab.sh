#!/usr/bin/env bash
# The CPU goal read in one sitting: the code the goal was set against (BEFORE, a checkout of
# 1d6c18c, whose demo gave 4.4-5.2 ms per frame outside the model stages) and today's (NOW), each
# run from its own root with its own venv, kernel bags and the same data/sample_bag, alternating,
# the order reversed in the last round.
#   ab.sh BEFORE NOW OUT [ROUNDS] [POLICIES]
set -euo pipefail
before="$1" now="$2" out="$3" rounds="${4:-3}" policies="${5:-sequential,aaron}"
mkdir -p "$out"
export FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA
for i in $(seq "$rounds"); do
  order=(before now); (( i == rounds )) && order=(now before)
  for side in "${order[@]}"; do
    dir="$before"; [[ $side == now ]] && dir="$now"
    (cd "$dir" && .venv/bin/aaron-ros bench --bag data/sample_bag --config f1tenth \
      --kernel-bags kernel_bags --policies "$policies" --repeats 2 --isolation 0 \
      --out "$out/${side}_$i" --no-progress > "$out/${side}_$i.log" 2>&1)
    echo "round $i $side done"
  done
done
