#!/usr/bin/env bash
# Alternating A/B of the container's CPU by thread: BASE and NEW are two checkouts (each with data/
# and kernel_bags/ of ./scripts/demo), each run from its own root with BASE's venv (or $PYTHON);
# MODE as thread_cpu.py takes it.
#   ab.sh BASE NEW [ROUNDS] [MODE]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
base="$1" new="$2" rounds="${3:-3}" mode="${4:-asis}"
signals="$(mktemp -d)"
py="${PYTHON:-$base/.venv/bin/python}"
export FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA
for i in $(seq "$rounds"); do
  for side in base new; do
    dir="$base"; [[ $side == new ]] && dir="$new"
    cd "$dir"; rm -f "$signals"/go "$signals"/stop
    PYTHONPATH=. "$py" "$here/thread_cpu.py" 32 "$mode" "$signals" > "$signals/$side$i.out" 2>&1 &
    sleep 13; touch "$signals/go"  # the models are loaded by then
    PYTHONPATH=. timeout 60 "$py" -m aaron_ros.cli play data/sample_bag > /dev/null 2>&1
    sleep 1.5; touch "$signals/stop"; wait
    echo "$side $i $(grep 'ms per frame' "$signals/$side$i.out")"
  done
done
