#!/bin/bash
# Alternating bench runs without (--lead-in 0) and with (--lead-in 1) the lead-in, aaron and naive.
cd "$(dirname "$0")/../../.."
export FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA PYTHONPATH=.
for r in 1 2 3; do
  for lead in 0 1; do
    [ $r = 2 ] && lead=$((1 - lead))  # order reversed in round 2
    out=results/ros_bench/lead_in_ab_cpu2_amd_epyc/lead${lead}_$r
    .venv/bin/python -m aaron_ros.cli bench --bag data/sample_bag --config f1tenth --policies aaron,naive --repeats 2 \
      --isolation 0 --lead-in $lead --out $out --no-progress > $out.log 2>&1
    echo "round $r lead $lead rc $? $(date +%T)"
  done
done
