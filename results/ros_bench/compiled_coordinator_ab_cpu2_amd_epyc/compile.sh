#!/usr/bin/env bash
# The coordinator's own Python compiled with mypyc, in place, in a scratch checkout of 24727f0
# (never in one you work in: the compiled modules shadow their .py files until deleted). From that
# checkout's root, with the project's .venv set up:
#   git apply results/ros_bench/compiled_coordinator_ab_cpu2_amd_epyc/typing.patch
#   results/ros_bench/compiled_coordinator_ab_cpu2_amd_epyc/compile.sh
set -euo pipefail
tools="$(mktemp -d)"
.venv/bin/python -m pip -q install --target "$tools" mypy==2.4.1
# Other modules as arguments (../compiled_frame_path_ab_cpu2_amd_epyc/compile.sh gives its 16).
modules=("$@")
(( ${#modules[@]} )) || modules=(aaron_ros/coordinator/coordinator.py aaron_ros/coordinator/versions.py
  aaron_ros/coordinator/slack.py aaron_ros/coordinator/policies/aaron.py aaron_ros/coordinator/policies/base.py
  aaron_ros/contention/predictor.py)
PYTHONPATH="$tools" .venv/bin/python -m mypyc --python-executable .venv/bin/python \
  --ignore-missing-imports --follow-imports=silent "${modules[@]}"
