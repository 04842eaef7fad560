#!/usr/bin/env bash
# The package's own frame-path Python (16 modules: the coordinator, its policy and predictor, the
# live driver and service, the lanes, the components' frame handling, the image views and the
# decoders) compiled with mypyc, in place, in a scratch clone (never in one you work in: the
# compiled modules shadow their .py files until deleted). From that clone's root, with the
# project's .venv set up (or linked) there:
#   git apply results/ros_bench/compiled_frame_path_ab_cpu2_amd_epyc/typing.patch
#   results/ros_bench/compiled_frame_path_ab_cpu2_amd_epyc/compile.sh
# typing.patch: annotations mypy needs and `# type: ignore` where it cannot follow (Optional
# attributes, rclpy without stubs); three work-arounds for mypyc (an attribute named `_thread`
# is a C keyword there, `memoryview` in a dataclass, `torch.cuda` used without its import).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "$here/../compiled_coordinator_ab_cpu2_amd_epyc/compile.sh" \
  aaron_ros/coordinator/coordinator.py aaron_ros/coordinator/versions.py aaron_ros/coordinator/slack.py \
  aaron_ros/coordinator/policies/aaron.py aaron_ros/coordinator/policies/base.py \
  aaron_ros/contention/predictor.py aaron_ros/coordinator/live.py aaron_ros/coordinator/service.py \
  aaron_ros/coordinator/monitor.py aaron_ros/coordinator/metrics.py aaron_ros/runtime/executor.py \
  aaron_ros/runtime/lanes.py aaron_ros/ros/shared_input.py aaron_ros/ros/perception.py \
  aaron_ros/ros/image_conversions.py aaron_ros/models/postprocess.py
