"""Where a frame's time goes: its life from the camera stamp to the result heard, cut into named,
back-to-back parts, each with its wall time and (where one thread does it) that thread's CPU time.

The coordinator's share comes from a record's stage times (`coordinator_parts`); a front end adds
what happens before the frame is handed over and after it ended, and a subscriber adds the last
part (publish and delivery), as the end-to-end time minus all the others.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from aaron_ros.coordinator.types import JobRecord


class FramePart(StrEnum):
    RECEIVE = "receive"  # camera stamp to the callback: publisher, DDS, executor backlog
    DESERIALISE = "deserialise"
    ADMISSION = "admission"  # rate limit and the image's check
    GRANT_WAIT = "grant wait"  # released or between stages, waiting for a grant
    TO_LANE = "to lane"  # hand-off: granted to running on the lane's thread
    CONVERSION = "conversion"  # image to the model's input tensor, in the first granted stage
    STAGES = "stages"  # the model's stages on their lanes
    POST = "post-processing"  # decoding the output, building the messages, in the last granted stage
    FROM_LANE = "from lane"  # hand-off: stage done to seen by the coordinator
    TO_PUBLISHER = "to publisher"  # hand-off: frame ended to picked up for publishing
    PUBLISH = "publish + delivery"  # the result stamped and published, to its arrival at a subscriber
    SUBSCRIBER = "subscriber's callback"  # arrived at the subscriber, to its callback: its own executor


# The short form (a live table's one column): a frame coming in, waiting, in the model, going out.
PHASES: dict[str, tuple[FramePart, ...]] = {
    "in": (FramePart.RECEIVE, FramePart.DESERIALISE, FramePart.ADMISSION, FramePart.CONVERSION),
    "wait": (FramePart.GRANT_WAIT, FramePart.TO_LANE, FramePart.FROM_LANE, FramePart.TO_PUBLISHER),
    "model": (FramePart.STAGES,),
    "out": (FramePart.POST, FramePart.PUBLISH, FramePart.SUBSCRIBER),
}


@dataclass(frozen=True)
class PartTime:
    wall_s: float
    cpu_s: float = math.nan  # NaN: not one thread's work (waiting, transport)


def coordinator_parts(rec: JobRecord) -> dict[FramePart, PartTime]:
    """Release to the end of the last stage, from a record of a driver that timed its stages."""
    wait = to_lane = from_lane = stages = cpu = 0.0
    prev = rec.release
    for t in rec.stage_times:
        wait += t.granted - prev
        to_lane += t.started - t.granted
        stages += t.finished - t.started
        cpu += t.cpu_s
        from_lane += t.seen - t.finished
        prev = t.seen
    return {FramePart.GRANT_WAIT: PartTime(wait), FramePart.TO_LANE: PartTime(to_lane),
            FramePart.STAGES: PartTime(stages, cpu), FramePart.FROM_LANE: PartTime(from_lane)}


def mean_parts(frames: Iterable[Mapping[str, PartTime]]) -> dict[str, PartTime]:
    """Per part, the mean wall and CPU time over frames (in FramePart order; CPU NaN where never
    measured)."""
    frames = list(frames)
    out = {}
    for part in FramePart:
        got = [f[part] for f in frames if part in f]
        if not got:
            continue
        cpus = [p.cpu_s for p in got if not math.isnan(p.cpu_s)]
        out[str(part)] = PartTime(sum(p.wall_s for p in got) / len(got), sum(cpus) / len(cpus) if cpus else math.nan)
    return out


def phase_ms(frames: Iterable[Mapping[str, PartTime]]) -> dict[str, float]:
    """Mean wall milliseconds per phase (PHASES) over frames; parts a frame lacks count as zero."""
    means = mean_parts(frames)
    return {phase: sum(means[p].wall_s for p in parts if p in means) * 1e3 for phase, parts in PHASES.items()}
