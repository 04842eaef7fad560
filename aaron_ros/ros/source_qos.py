"""The image sources' QoS (bag player, camera), and how large a best-effort frame may be.

Fast DDS (rmw_fastrtps_cpp) carries a best-effort image to another process on the same host whole
when it fits one shared-memory segment; a larger one goes in fragments, and a frame with a lost
fragment is lost. Measured here, two processes, rgb8 frames (serialised size):

- stock transports (FASTDDS_BUILTIN_TRANSPORTS not set: shared memory + UDP):
  a script, 10 frames at 10 Hz: 522,300 B 10 of 10; 540,000 B 0; 0.92 MB 0;
  `aaron-ros play` at 30 Hz: 522,300 B 120 of 120; 0.92 MB 199 of 300; 2.76 MB 57 of 120.
- LARGE_DATA:
  the script: 8.60 MB 10 of 10; 9.03 MB 4; 11.1 MB 0;
  `aaron-ros play` at 30 Hz: 8.60 MB 107 of 120; 11.1 MB 71 of 120.

Reliable delivery carried every size tried (6.2 MB on stock transports: 10 of 10). Within one
process (the container's own bag player or camera) frames cross no transport.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from rclpy.impl.rcutils_logger import RcutilsLogger
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

QosName = Literal["sensor_data", "reliable"]

# Serialised bytes over which best-effort frames were lost (above), by transports setting: the
# stock shared-memory segment (512 KiB), and a bound between the 8.60 MB that arrived and 9.03 MB.
BEST_EFFORT_BYTES = {"": 524_288, "LARGE_DATA": 8_700_000}


def source_qos(name: QosName) -> QoSProfile:
    """sensor_data: best effort, keep a few; reliable: depth 10."""
    if name == "sensor_data":
        return qos_profile_sensor_data
    return QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def best_effort_bytes(env: Mapping[str, str] = os.environ) -> int | None:
    """The measured limit for this process's DDS; None where nothing was measured (another
    middleware, or a transports setting other than stock or LARGE_DATA)."""
    if env.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp") != "rmw_fastrtps_cpp":
        return None
    return BEST_EFFORT_BYTES.get(env.get("FASTDDS_BUILTIN_TRANSPORTS", ""))


class OversizeWarning:
    """Says once per topic that a source publishes best-effort frames too large to reach another
    process safely, and what to do about it."""

    def __init__(self, logger: RcutilsLogger, qos: QosName, env: Mapping[str, str] = os.environ) -> None:
        self._logger = logger
        self.limit = best_effort_bytes(env) if qos == "sensor_data" else None
        self.transports = env.get("FASTDDS_BUILTIN_TRANSPORTS", "") or "stock"
        self.warned: set[str] = set()

    def check(self, topic: str, nbytes: int) -> None:
        if self.limit is None or nbytes <= self.limit or topic in self.warned:
            return
        self.warned.add(topic)
        more = "" if self.transports == "LARGE_DATA" else " or FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA in every process"
        self._logger.warning(
            f"{topic}: frames of {nbytes / 1e6:.2f} MB, best effort, are over the {self.limit / 1e6:.2f} MB that "
            f"Fast DDS's {self.transports} transports carry whole to another process: subscribers in other "
            f"processes may lose many or all of them. Publish with qos reliable (and qos: reliable on the "
            f"components){more}")
