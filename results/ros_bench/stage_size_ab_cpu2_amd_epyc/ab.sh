#!/usr/bin/env bash
# The runs of this folder, from the repository's root. Kernel bags of tiny_yolo, seg_net,
# mobilenet_v3_small and resnet18 built at each stage size (base: the demo's kernel_bags/, built a
# day earlier at 4 ms), then `aaron` alone on the ROS stress case, the bag sets alternating.
set -euo pipefail
export FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA
here=results/ros_bench/stage_size_ab_cpu2_amd_epyc
aaron() { PYTHONPATH=. .venv/bin/python -m aaron_ros.cli "$@"; }
for ms in 4 8 16; do
  aaron compile --model tiny_yolo,seg_net,mobilenet_v3_small --out "/tmp/kb$ms" --backends eager,onnxruntime \
    --budget-s 180 --min-stage-ms "$ms" --no-progress
  aaron compile --model resnet18 --out "/tmp/kb$ms" --backends eager,onnxruntime --budget-s 90 \
    --min-stage-ms "$ms" --no-progress
done
bags() { [[ $1 == base ]] && echo kernel_bags || echo "/tmp/$1"; }
ros() {  # set, run name
  aaron bench --bag data/sample_bag --config f1tenth --policies aaron --repeats 2 --isolation 0 \
    --kernel-bags "$(bags "${2%_*}")" --out "$here/$1/$2" --no-progress
}
for run in base_1 kb8_1 kb8_2 base_2 base_3 kb8_3; do ros first "$run"; done
for run in kb16_1 kb8_1 kb4_1 base_1 base_2 kb4_2 kb8_2 kb16_2 kb8_3 kb16_3 base_3 kb4_3; do ros second "$run"; done
# The core bench's heaviest f1tenth workload (ResNet-18 signs), in process, aaron beside naive.
for run in kb4_1 kb8_1 kb16_1 kb16_2 kb8_2 kb4_2; do
  aaron bench --workload f1tenth_heavy --policies aaron,naive --duration 20 --repeats 2 --isolation 0 \
    --kernel-bags "/tmp/${run%_*}" --out "$here/core_f1tenth_heavy/$run" --no-progress
done
# Later, on a quiet half hour: 8 ms against 16 ms, aaron alone on the ROS stress case.
for run in kb8_1 kb16_1 kb16_2 kb8_2 kb8_3 kb16_3; do ros quiet "$run"; done
