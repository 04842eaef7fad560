#!/usr/bin/env bash
# A new bag player process for every replay (OLD, a checkout of b10740b) against one for every
# replay into a container (NEW, e478929), alternating, the order reversed in round 2; each run
# from its own root (its own venv, kernel bags and data/sample_bag). Prints each bench's wall time.
#   ab.sh OUT OLD NEW
set -uo pipefail
out="$1" old="$2" new="$3"
mkdir -p "$out" && out="$(cd "$out" && pwd)"
export FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA
for round in 1 2; do
  if [[ $round == 1 ]]; then sides="old new"; else sides="new old"; fi
  for side in $sides; do
    if [[ $side == old ]]; then dir="$old"; else dir="$new"; fi
    t0=$(date +%s.%N)
    (cd "$dir" && .venv/bin/aaron-ros bench --bag data/sample_bag --config f1tenth --kernel-bags kernel_bags \
      --policies priority,aaron --repeats 5 --isolation 0 --out "$out/${side}_$round" --no-progress \
      > "$out/${side}_$round.log" 2>&1)
    rc=$?
    echo "$side round $round rc $rc wall $(python3 -c "print(round($(date +%s.%N) - $t0, 1))") s"
  done
done
