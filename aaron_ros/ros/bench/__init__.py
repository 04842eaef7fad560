"""The policy benchmark over the real ROS 2 system, measured from outside as ros2_benchmark does:
the container under test runs as `aaron-ros run` on the parameter file in a process of its own,
the bag is played into it by `aaron-ros play` in another (as a camera driver runs beside the
perception on a robot), and this process only listens and asks, over the container's topics and
its service, never by reaching into it.

For each policy (and versions setting), in the interleaved rounds of the bench driver
(`bench/driver.py`, shared with the core bench), the container is switched to it by
`/aaron/set_policy`, the bag is replayed once (frames stamped as they are published, as a live
camera's), and the run waits until every frame a component took has ended and every result has
been heard. Before each replay the player plays a lead-in (the CLI's `--lead-in`, 1 s) with no
pause between: a replay's first frames came slower after any pause in the stream, for every
policy, and a camera on a robot streams without one. Results and outcomes carry their image's
stamp, so the figures leave the lead-in's frames out; the CPU, read over the whole play, keeps
them. The bench's node hears:

- `/aaron/outcomes` (the coordinator's `publish_outcomes`): how each frame ended (done, dropped,
  failed) and its latency release to done, which is the `latency_ms` the component publishes, with
  its stages' lane CPU and its grants' decision times. These feed the same metrics and report as
  the core bench. (Batched at 10 Hz: the per-stage `/aaron/grants` trace, or a message per frame,
  would cost the container CPU that is part of what is measured.)
- every component's masks (`<result topic>/mask`, where a segmentation component publishes them),
  as a planner reads them: a component makes a mask only while a node reads it, and segmentation's
  product is its mask, so the container is measured making them.
- every component's result topic, as any subscriber would: per frame the end-to-end latency
  (receive time minus `header.stamp`, camera stamp to result heard), the node's `latency_ms`, and
  transport = end-to-end - latency_ms: image delivery in, the node's image conversion, result
  post-processing and delivery out. `input_delay_ms` (stamp to arrival at the node) splits off
  the way in; the result's `timing` says where the rest went.
- `/aaron/status` (at STATUS_RATE_HZ under the bench): the components' counters. They give what
  never reached the coordinator: frames above `max_rate_hz` (rate-limited, by design, not misses),
  bad images (rejected), and frames the player published that a component never received (lost
  by DDS). Every frame of the bag is accounted for per task:
  done + dropped + failed + rate-limited + rejected + lost = frames published.

The CPU the container's threads spent is read from its /proc/<pid> (`common/cpu.py`).

Isolation baseline: each task alone through the same path, a container from the same file with
only that component, the same bag, policy `priority` with solo versions (as the core bench's
isolation runs), so "alone" carries the same executor, conversion and DDS costs and gives an
end-to-end latency alone too. It runs before the policies, once per task.

`RosTarget` is this package's part of the driver's work: feed frames (a replay of the bag) and
collect how they ended; the end-to-end timings and frame counters ride in `RunResult.extra`
(a `Heard`) and add their keys to the report, and `save` adds the end-to-end section.

The parts, as ros2_benchmark has them: `playback` (the camera), `monitor` (the bench's node),
`system` (the container under test, and one replay measured), `target` (the driver's target and
the metrics a replay adds), `report` (the report's ROS sections and plots).
"""
from __future__ import annotations

from aaron_ros.ros.bench.report import comparison_text, headline_text, save
from aaron_ros.ros.bench.target import RosBenchOptions, run_ros_bench

__all__ = ["RosBenchOptions", "comparison_text", "headline_text", "run_ros_bench", "save"]
