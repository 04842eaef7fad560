#!/usr/bin/env bash
# The heavy case, naive and aaron, on the default kernel bags (ResNet-18 fused into one stage of
# at least 8 ms) and on the same bags with ResNet-18 fused to stages of at least 4 ms (two),
# alternating, the last pair reversed. From the repository's root, after ./scripts/demo:
#   results/ros_bench/f1tenth_heavy_cpu2_amd_epyc/stage_size_ab/ab.sh OUT
set -euo pipefail
out="$1"
two="$out/kernel_bags_4ms"  # the other three models' bags as they are, ResNet-18 built again
mkdir -p "$two"
for m in tiny_yolo seg_net; do ln -sfn "$PWD/kernel_bags/$m" "$two/$m"; done
[[ -f "$two/resnet18/manifest.json" ]] || .venv/bin/aaron-ros compile --model resnet18 --out "$two" \
  --backends eager,onnxruntime --budget-s 60 --min-stage-ms 4 --no-progress
export FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA
bench() {
  .venv/bin/aaron-ros bench --bag data/sample_bag --config f1tenth_heavy --policies naive,aaron --repeats 2 \
    --isolation 0 --kernel-bags "$2" --out "$out/$1" --no-progress
}
bench one_1 kernel_bags; bench two_1 "$two"
bench one_2 kernel_bags; bench two_2 "$two"
bench two_3 "$two"; bench one_3 kernel_bags
