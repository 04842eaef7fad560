"""Results as `vision_msgs` too, for trackers, planners, rviz and Foxglove, where the vision_msgs
package is installed (a ROS 2 install has it; the PyPI wheels this package can also run on do not,
and there this module offers nothing and the component publishes `InferenceResult` alone).

    <result topic>/classification  vision_msgs/Classification      (classes)
    <result topic>/detections      vision_msgs/Detection2DArray    (detections)

A hypothesis' class_id is the class name where the component has labels, else the id as text.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

try:
    from vision_msgs import msg as vm
except ImportError:  # not installed: no vision_msgs output
    vm = None

SUFFIX = {"classes": "classification", "detections": "detections"}


def message_type(output_kind: str) -> type | None:
    """The vision_msgs type a component of this output kind publishes, or None (none for masks,
    or vision_msgs is not installed)."""
    if vm is None or output_kind not in SUFFIX:
        return None
    return vm.Classification if output_kind == "classes" else vm.Detection2DArray


def _hypothesis(class_id: int, score: float, names: Sequence[str]):
    name = names[class_id] if class_id < len(names) and names[class_id] else str(class_id)
    return vm.ObjectHypothesis(class_id=name, score=float(score))


def to_vision(header, output_kind: str, class_ids: Sequence[int], scores: Sequence[float],
              boxes: np.ndarray, names: Sequence[str]):
    """The result as its vision_msgs message (`boxes`: (N, 4) x1, y1, x2, y2 in image pixels)."""
    if output_kind == "classes":
        return vm.Classification(header=header, results=[_hypothesis(c, s, names) for c, s in zip(class_ids, scores)])
    out = vm.Detection2DArray(header=header)
    for (x1, y1, x2, y2), c, s in zip(boxes.tolist(), class_ids, scores):
        det = vm.Detection2D(header=header)
        det.results = [vm.ObjectHypothesisWithPose(hypothesis=_hypothesis(c, s, names))]
        center = det.bbox.center
        point = getattr(center, "position", center)  # vision_msgs 4 has center.position; 3 has center.x
        point.x, point.y = (x1 + x2) / 2, (y1 + y2) / 2
        det.bbox.size_x, det.bbox.size_y = x2 - x1, y2 - y1
        out.detections.append(det)
    return out
