"""The bench's camera: the bag played by `aaron-ros play` in a process of its own, as a camera
driver runs beside the perception on a robot (ros2_benchmark's playback node)."""
from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from aaron_ros.common.bounded import DUMP_STACKS, DUMP_WAIT_S
from aaron_ros.ros.bag_player import parse_remaps
from aaron_ros.ros.record import IMAGE_TYPES, image_topics, open_reader

log = logging.getLogger(__name__)

WAIT_MATCHED_S = 10.0  # for the components to match the bag player's publishers
PLAYER_SLACK_S = 30.0
PLAYER_EXIT_S = 10.0  # for the player to exit once its input closed (its teardown is bounded at 5 s)
MATCH_TRIES = 3  # players started, each given WAIT_MATCHED_S to be matched, before one plays anyway
# What `aaron-ros play` prints (its log lines, on the same stream, say it too, but rounded).
PLAYED = re.compile(r"^published (\d+) frames of .* in ([0-9.]+) s$", re.M)
LEAD_IN = re.compile(r"^lead-in of (\d+) frames; measured from stamp (\d+) ns$", re.M)


def bag_info(path: str | Path) -> tuple[int, float, float]:
    """(Image messages, frames per second, seconds from its first message to its last) of a bag,
    from its index."""
    reader = open_reader(Path(path))
    try:
        conns = [c for c in reader.connections if c.msgtype in IMAGE_TYPES]
        n = sum(c.msgcount for c in conns)
        span_s = (reader.end_time - reader.start_time) / 1e9
    finally:
        reader.close()
    if not n:
        raise ValueError(f"bag {path} has no {' or '.join(IMAGE_TYPES)} message")
    per_topic = n / max(1, len(conns))
    # Rounded: stamps in whole nanoseconds make 10 fps read 9.99999999.
    return n, round((per_topic - 1) / span_s, 3) if per_topic > 1 and span_s > 0 else float("nan"), span_s


class Played(NamedTuple):
    """What one play of the bag published."""

    frames: int  # after the lead-in
    seconds: float  # from the start after the lead-in to the last frame
    lead_in: int = 0  # frames of the lead-in
    measured_from_ns: int = 0  # the stamp of the first frame after it (0: no lead-in)


def parse_played(text: str) -> Played | None:
    """What `aaron-ros play` said it published, from its output; None when it did not say."""
    done, lead = PLAYED.search(text), LEAD_IN.search(text)
    if done is None:
        return None
    return Played(int(done[1]), float(done[2]), *((int(lead[1]), int(lead[2])) if lead else ()))


def play_rate(player_params: Mapping[str, Any]) -> float:
    """The speed a file's `bag_player` plays at (2.0: a 30 fps bag is a 60 fps camera)."""
    return float(player_params.get("rate", 1.0))


def played_topics(bag: Path, params: Mapping[str, Any]) -> list[str]:
    """Where a play of `bag` with a file's `bag_player` parameters publishes (its remaps applied)."""
    remaps = parse_remaps(params.get("remap", ()))
    return [remaps.get(t, t) for t in image_topics(bag)]


class CameraProcess:
    """The bag played by `aaron-ros play` in a process of its own, with the file's `bag_player`
    parameters (rate, start offset, remaps, QoS): one process and DDS participant for every play,
    as one camera driver runs for a robot's whole trip, each play started by a line on its input.
    `close()` ends it. Each player's output is added to `log` as it ends, where one is given."""

    def __init__(self, bag: Path, params: Mapping[str, Any], domain_id: int, lead_in_s: float = 0.0,
                 log: Path | None = None):
        rate = play_rate(params)
        self.topics = played_topics(bag, params)  # its remaps checked
        self._cmd = [sys.executable, "-m", "aaron_ros.cli", "play", str(bag),
                     "--rate", str(rate), "--start", str(params.get("start_offset_s", 0.0)),
                     "--qos", str(params.get("qos", "sensor_data")), "--lead-in", str(lead_in_s),
                     *(["--remap", *params["remap"]] if params.get("remap") else [])]
        self._env = {**os.environ, "ROS_DOMAIN_ID": str(domain_id)}
        frames, fps, _ = bag_info(bag)
        span_s = frames / fps / rate if np.isfinite(fps) and fps > 0 else 0.0
        # The bag at its rate, the lead-in, and slack.
        self._limit_s = span_s + lead_in_s + PLAYER_SLACK_S
        self._proc: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None
        self._said: list[str] = []  # its output as it comes, since it started
        self.log = log
        self._plays = 0  # asked of it since it started

    def play(self, subscribers: int, matched: Callable[[], bool],
             while_playing: Callable[[], None]) -> Played:
        """Play the bag to its end once every topic has `subscribers` (the player's side of the
        match, the first time) and `matched()` holds (the subscribers' side; 10 s at most each),
        calling `while_playing` meanwhile.
        A player not matched in time is started afresh (once in a demo, DDS discovery between the
        container and a new player never completed, and a whole replay was lost); the last try
        plays anyway, and what nobody hears is counted lost."""
        cmd = [*self._cmd, "--wait-subscribers", str(subscribers), "--start-on-enter"]
        for attempt in range(1, MATCH_TRIES + 1):
            if self._proc is None:
                self._start(cmd)
            give_up = time.monotonic() + WAIT_MATCHED_S
            while not (heard := matched()) and self._proc.poll() is None and time.monotonic() < give_up:
                while_playing()
            if heard or self._proc.poll() is not None or attempt == MATCH_TRIES:
                break
            log.warning("bench: the bag player's topics not matched after %g s; starting it again (%d of %d)",
                        WAIT_MATCHED_S, attempt + 1, MATCH_TRIES)
            self._stop()
        if not heard:
            log.warning("bench: the bag player's topics not matched after %g s; playing anyway", WAIT_MATCHED_S)
        said_before, first = len(self._said), self._plays == 0
        self._plays += 1
        try:
            self._proc.stdin.write("\n")  # go (the first time, it also waits for its own side of the match)
            self._proc.stdin.flush()
        except OSError:  # it has exited: said below
            pass
        give_up = time.monotonic() + self._limit_s + (WAIT_MATCHED_S if first else 0.0)
        while (self._proc.poll() is None and time.monotonic() < give_up
               and not any(PLAYED.search(line) for line in self._said[said_before:])):
            while_playing()
        text = "".join(self._said[said_before:])
        played = parse_played(text)
        if played is None:
            failed = (f"failed (exit code {self._proc.returncode})" if self._proc.poll() is not None
                      else f"has not ended a play after {self._limit_s:.0f} s")
            self.close()
            raise RuntimeError(f"the bag player ({' '.join(cmd)}) {failed}; it said:\n"
                               f"{''.join(self._said).strip()[-2000:]}")
        if first and "not every topic" in "".join(self._said):
            log.warning("bag player: not every component subscribed after 10 s; it played anyway")
        return played

    def close(self) -> None:
        """End the player as its input closing does, so that its DDS participant says goodbye."""
        if self._proc is None:
            return
        try:
            self._proc.stdin.close()
        except OSError:
            pass  # it has exited
        try:
            self._proc.wait(PLAYER_EXIT_S)
        except subprocess.TimeoutExpired:
            self._proc.send_signal(DUMP_STACKS)
            time.sleep(DUMP_WAIT_S)
            log.warning("bench: the bag player had not ended %g s after its input closed; interrupted it (its "
                        "threads' stacks are in %s). Its last words: %s", PLAYER_EXIT_S, self.log,
                        "".join(line for line in self._said if not line.startswith(" ")
                                and "most recent call first" not in line)[-300:].strip())
        self._stop()

    def _stop(self) -> None:
        """Stop the player as Ctrl-C does (a killed one lingers in the others' graphs and its
        publisher may pass for the next player's); killed if it has not ended within PLAYER_EXIT_S."""
        proc, self._proc = self._proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(PLAYER_EXIT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._reader.join(5.0)
        if self.log is not None:
            with self.log.open("a") as out:
                out.write(f"--- aaron-ros play on ROS domain {self._env['ROS_DOMAIN_ID']} (pid {proc.pid}), "
                          f"exit code {proc.returncode} ---\n")
                out.writelines(self._said)

    def _start(self, cmd: list[str]) -> None:
        """The player started, its output read into `_said` as it comes."""
        self._said, self._plays = (said := []), 0
        self._proc = proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                             stderr=subprocess.STDOUT, text=True, env=self._env)

        def read() -> None:
            for line in proc.stdout:
                said.append(line)

        self._reader = threading.Thread(target=read, name="player-output", daemon=True)
        self._reader.start()
