"""The fault campaign (`scripts/faults`; not in CI): the container attacked from outside, as a
robot's operator would meet it. Each scenario runs `aaron-ros run` in its own process (and a
source beside it where it needs one) and prints one line: what held, and its figures (frames
received / accounted, critical miss, RSS start / peak / end, exit time and code).

    scripts/faults [--out results/faults/NAME] [--only NAME ...]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AARON = [sys.executable, "-m", "aaron_ros.cli"]
CONFIG = ROOT / "config" / "f1tenth.yaml"
BAG = ROOT / "data" / "sample_bag"
KERNEL_BAGS = ROOT / "kernel_bags"
DRAIN_S = 2.0  # the container's drain at shutdown (Container.shutdown)
CRITICAL = "detector"
LEDGER = ("received", "on_time", "late", "dropped", "failed", "rejected", "rate_limited", "unaccounted", "lost")
ROW = re.compile(r"^(\S+)\s+(\S+)\s+(critical|normal)\s+\S+\s+\S+\s+\S+\s+([\d.]+)%\s+\S+\s+" + r"\s+".join(
    [r"(\d+)"] * len(LEDGER)) + r"\s*$")


@dataclass
class Run:
    """One `aaron-ros run`, watched from outside."""

    rc: int | None = None
    out: str = ""
    exit_s: float = float("nan")  # from the (first) signal, or the end of --duration, to the process's exit
    rss_mb: list[float] = field(default_factory=list)  # sampled every 0.1 s
    up_sample: int = 0  # the sample when it took frames (models loaded): the start figure
    rows: dict[str, dict] = field(default_factory=dict)  # the whole-run summary, per task

    @property
    def rss(self) -> str:
        r = self.rss_mb
        return f"{r[min(self.up_sample, len(r) - 1)]:.0f}/{max(r):.0f}/{r[-1]:.0f} MB" if r else "-"

    def ledger_holds(self) -> bool:
        return bool(self.rows) and all(r["unaccounted"] == 0 for r in self.rows.values())

    def figures(self) -> str:
        received = sum(r["received"] for r in self.rows.values())
        accounted = received - sum(r["unaccounted"] for r in self.rows.values())
        lost = sum(r["lost"] for r in self.rows.values())
        crit = self.rows.get(CRITICAL)
        miss = f"{crit['miss']:.1f}%" if crit else "-"
        return (f"frames {received} received / {accounted} accounted / {lost} lost; critical miss {miss}; "
                f"RSS {self.rss}; exit {self.exit_s:.1f} s, code {self.rc}")


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def run_container(args: list[str], *, env: dict, signals: tuple[tuple[float, int], ...] = (),
                  sources: tuple[list[str], ...] = (), duration: float | None = None,
                  timeout: float = 180.0) -> Run:
    """`aaron-ros run ARGS`; `signals`: (seconds after the container is up, or after start when
    negative, signal); `sources`: commands started once it takes frames (a camera, a junk
    publisher), each in its own process, and stopped when the run ends."""
    ros = args.index("--ros-args") if "--ros-args" in args else len(args)  # what follows it is ROS's
    cmd = [*AARON, "run", *args[:ros], "--no-table", *(["--duration", f"{duration:g}"] if duration else []),
           *args[ros:]]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)
    run, lines, started = Run(), [], time.monotonic()
    up = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)
            if "taking frames" in line:
                up.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    first_signal = None
    pending = sorted(signals, key=lambda s: (s[0] >= 0, abs(s[0])))
    up_at, started_sources = None, []
    while proc.poll() is None and time.monotonic() - started < timeout:
        now = time.monotonic()
        if up.is_set() and up_at is None:
            up_at, run.up_sample = now, len(run.rss_mb)
            started_sources = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                                                cwd=ROOT) for cmd in sources]
        if pending:
            at, sig = pending[0]
            base = started if at < 0 else up_at
            if base is not None and now >= base + abs(at):
                proc.send_signal(sig)
                first_signal = first_signal or now
                pending.pop(0)
        rss = _rss_mb(proc.pid)
        if rss is not None:
            run.rss_mb.append(rss)
        time.sleep(0.1)
    if proc.poll() is None:
        proc.kill()
        lines.append(f"[faults] killed after {timeout:g} s\n")
    proc.wait()
    ended = time.monotonic()
    for source in started_sources:
        source.terminate()
    for source in started_sources:
        try:
            source.wait(timeout=15)
        except subprocess.TimeoutExpired:
            source.kill()
    reader.join(timeout=5)
    run.rc, run.out = proc.returncode, "".join(lines)
    if first_signal is not None:
        run.exit_s = ended - first_signal
    elif duration and up_at is not None:
        run.exit_s = ended - (up_at + duration)
    for line in run.out.splitlines():
        m = ROW.match(line)
        if m:
            run.rows[m[1]] = {"criticality": m[3], "miss": float(m[4]),
                              **{k: int(v) for k, v in zip(LEDGER, m.groups()[4:])}}
    return run


def player(rate: float) -> list[str]:
    """A bag player, as a camera driver is: `rate` times the recorded pace, looped."""
    return [*AARON, "play", str(BAG), "--rate", f"{rate:g}", "--loop"]


# -- scenarios -----------------------------------------------------------------------------------
@dataclass
class Outcome:
    scenario: str
    held: bool
    what: str
    run: Run | None = None

    def line(self) -> str:
        return (f"{'HELD  ' if self.held else 'FAILED'} {self.scenario:28s} {self.what}"
                + (f" | {self.run.figures()}" if self.run else ""))


def load(seconds: float, rate: float, env: dict) -> Run:
    return run_container([str(CONFIG)], env=env, sources=(player(rate),), duration=seconds)


def scenario_load(name: str, rate: float, env: dict, state: dict) -> Outcome:
    r = load(20.0, rate, env)
    crit = r.rows.get(CRITICAL, {}).get("miss", float("nan"))
    state[f"miss_{rate:g}x"] = crit
    held = r.ledger_holds() and r.rc == 0
    what = f"camera at {rate:g}x (play --rate {rate:g})"
    if rate > 1 and "miss_1x" in state:
        held = held and crit <= state["miss_1x"] + 5.0
        what += f"; critical miss {crit:.1f}% vs {state['miss_1x']:.1f}% at 1x (goal: within 5 points)"
    return Outcome(name, held, what, r)


def scenario_malformed(env: dict) -> Outcome:
    """Bad images on the camera topic beside the valid camera: every kind, junk at 100 Hz, and
    frozen and backward stamps."""
    junk = [sys.executable, str(ROOT / "scripts" / "faults.py"), "--publish-junk", "14"]
    r = run_container([str(CONFIG)], env=env, sources=(player(1.0), junk), duration=15.0)
    rejected = sum(row["rejected"] for row in r.rows.values())
    served = all(row["on_time"] > 0 for row in r.rows.values())
    held = r.ledger_holds() and rejected > 0 and served and r.rc == 0
    return Outcome("malformed images", held, f"{rejected} rejected, every task still served: {served}", r)


def publish_junk(seconds: float) -> None:
    """(A helper process of the malformed-images scenario.) Junk at 100 Hz on the camera topic."""
    import numpy as np
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("junk_source")
    pub = node.create_publisher(Image, "/camera/image_raw", qos_profile_sensor_data)
    good = np.zeros((480, 640, 3), np.uint8)
    kinds = [
        dict(height=1, width=1, encoding="16UC1", step=1, data=bytes(1)),  # step too small
        dict(height=480, width=640, encoding="yuv_weird", step=1920, data=good.tobytes()),  # unknown encoding
        dict(height=480, width=640, encoding="rgb8", step=1920, data=good.tobytes()[:1000]),  # truncated
        dict(height=0, width=0, encoding="rgb8", step=0, data=b""),  # empty
    ]
    wait = time.monotonic() + 10.0  # best effort: what is sent before the container matches is lost
    while pub.get_subscription_count() == 0 and time.monotonic() < wait:
        time.sleep(0.05)
    frozen = node.get_clock().now().to_msg()
    end, i = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        msg = Image(**kinds[i % len(kinds)])
        msg.header.stamp = node.get_clock().now().to_msg()
        pub.publish(msg)
        if i % 20 == 0:  # a valid image with a frozen stamp, now and then
            img = Image(height=480, width=640, encoding="rgb8", step=1920, data=good.tobytes())
            img.header.stamp = frozen
            pub.publish(img)
        i += 1
        time.sleep(0.01)
    node.destroy_node()
    rclpy.shutdown()


def _edit_manifest(fn: Callable[[dict], object]) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        m = json.loads((d / "manifest.json").read_text())
        fn(m)
        (d / "manifest.json").write_text(json.dumps(m))
    return edit


def _first_artifact(d: Path) -> Path:
    return next(p for p in sorted((d / "artifacts").rglob("*")) if p.is_file())


CORRUPTIONS: dict[str, Callable[[Path], None]] = {
    "manifest missing": lambda d: (d / "manifest.json").unlink(),
    "manifest empty": lambda d: (d / "manifest.json").write_text(""),
    "manifest not json": lambda d: (d / "manifest.json").write_text("{ not json"),
    "manifest a list": lambda d: (d / "manifest.json").write_text("[]"),
    "manifest truncated": lambda d: (d / "manifest.json").write_text((d / "manifest.json").read_text()[:500]),
    "schema unknown": _edit_manifest(lambda m: m.update(schema=99)),
    "versions missing": _edit_manifest(lambda m: m.pop("versions")),
    "versions empty": _edit_manifest(lambda m: m.update(versions=[])),
    "torch other": _edit_manifest(lambda m: m.update(torch="1.0.0")),
    "weights other": _edit_manifest(lambda m: m.update(weights_sha256="0" * 64)),
    "device null": _edit_manifest(lambda m: m.update(device=None)),
    "stage out of range": _edit_manifest(lambda m: m["versions"][0].update(stage=99)),
    "stage a string": _edit_manifest(lambda m: m["versions"][0].update(stage="zero")),
    "threads negative": _edit_manifest(lambda m: m["versions"][0]["shape"].update(threads=-4)),
    "backend unknown": _edit_manifest(lambda m: m["versions"][-1].update(backend="warp_drive")),
    "profiles garbage": _edit_manifest(lambda m: m["versions"][0].update(profiles="fast")),
    "partition wrong": _edit_manifest(lambda m: m.update(partition=[[0, 2], [1]])),
    "input shape other": _edit_manifest(lambda m: m.update(input_shape=[3, 7, 7])),
    "artifact missing": lambda d: _first_artifact(d).unlink(),
    "artifact garbage": lambda d: _first_artifact(d).write_bytes(b"garbage"),
}


def scenario_corruption(name: str, damage: Callable[[Path], None], env: dict, work: Path) -> Outcome:
    bags = work / "kernel_bags"
    shutil.rmtree(bags, ignore_errors=True)
    shutil.copytree(KERNEL_BAGS, bags)
    damage(bags / "tiny_yolo")
    r = run_container([str(CONFIG), "--bag", str(BAG), "--ros-args", "-p", f"kernel_bag_dir:={bags}"],
                      env=env, duration=4.0)
    # Said as the whole bag's eager fallback, or as one damaged version left out (the rest serves).
    said = (re.search(r"tiny_yolo: eager versions only, .*? \((.*)\)", r.out)
            or re.search(r"kernel bag \S*tiny_yolo\S*: (version \S+ left out: .*)", r.out))
    served = r.rows.get(CRITICAL, {}).get("on_time", 0) > 0
    why = said[1][:90] if said else "nothing said"
    return Outcome(f"kernel bag: {name}", bool(said) and served and r.rc == 0, f"detector served: {served}; {why}", r)


CONFIG_FAULTS: dict[str, tuple[str, str, str]] = {
    # name: (text replaced in f1tenth.yaml, its replacement, what the error must name)
    "unknown key": ("    deadline_ms: 50.0\n", "    deadline_ms: 50.0\n    dedline_ms: 40.0\n", "dedline_ms"),
    "wrong type": ("    deadline_ms: 50.0\n", "    deadline_ms: fast\n", "deadline_ms"),
    "negative deadline": ("    deadline_ms: 50.0\n", "    deadline_ms: -5.0\n", "deadline_ms"),
    "unknown model": ("    model: tiny_yolo\n", "    model: tiny_yoloo\n", "tiny_yoloo"),
    "unknown policy": ("    policy: aaron ", "    policy: fastest ", "policy"),
    "unknown component": ("components: [detector, signs, segmentation]",
                          "components: [detector, signs, segmentation, ghost]", "ghost"),
    "bad overload rule": ("    overload: keep_latest\n", "    overload: keep_all\n", "overload"),
    "not yaml": ("aaron_container:", "aaron_container: [", "yaml"),
}


def scenario_config(name: str, fault: tuple[str, str, str], env: dict, work: Path) -> Outcome:
    old, new, key = fault
    text = CONFIG.read_text()
    assert old in text, f"the config fault {name!r} no longer applies to {CONFIG.name}"
    cfg = work / f"config_{name.replace(' ', '_')}.yaml"
    cfg.write_text(text.replace(old, new, 1))
    r = run_container([str(cfg), "--bag", str(BAG)], env=env, duration=3.0, timeout=120)
    named = key.lower() in r.out.lower()
    no_trace = "Traceback" not in r.out
    said = next((line.strip() for line in r.out.splitlines() if key.lower() in line.lower()), "")[:110]
    return Outcome(f"config: {name}", named and no_trace and r.rc not in (0, None),
                   f"rc {r.rc}, names {key!r}: {named}, no traceback: {no_trace}; {said}", r)


def scenario_signals(name: str, sigs: tuple[tuple[float, int], ...], env: dict, with_hung: bool = False,
                     work: Path | None = None) -> Outcome:
    args = [str(CONFIG)]
    if with_hung:
        cfg = work / "hung.yaml"
        cfg.write_text(CONFIG.read_text().replace("components: [detector, signs, segmentation]",
                                                  "components: [detector, signs, segmentation, hung]") + """
hung:
  ros__parameters:
    model: user_models:stuck
    input_size: [16, 16]
    output: raw
    std: [0.001, 0.001, 0.001]
    deadline_ms: 500.0
""")
        args = [str(cfg)]
        env = {**env, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'test'}"}
    r = run_container(args, env=env, signals=sigs, sources=(player(1.0),), timeout=90)
    limit = DRAIN_S + 1.0 if sigs[0][0] >= 0 else 1.5  # at load nothing drains
    twice = len(sigs) > 1
    expected = 128 + sigs[-1][1] if twice else 128 + sigs[0][1]
    traceback = "Traceback" in r.out
    held = r.exit_s <= limit and r.rc == expected and not traceback and (not r.rows or r.ledger_holds())
    return Outcome(name, held, f"exit within {limit:g} s: {r.exit_s <= limit}; code {r.rc} (expected {expected}); "
                   f"traceback: {traceback}", r)


def scenario_third_party_bag(env: dict, work: Path) -> Outcome:
    """A bag as another robot records it: extra topics of other types, and broken image payloads."""
    from rosbags.rosbag2 import Writer

    from aaron_ros.ros.record import BAG_VERSION, STORAGES, TYPESTORE, read_image_bag

    out = work / "third_party_bag"
    shutil.rmtree(out, ignore_errors=True)
    t = TYPESTORE.types
    with Writer(out, version=BAG_VERSION, storage_plugin=STORAGES["mcap"]) as writer:
        cam = writer.add_connection("/camera/image_raw", "sensor_msgs/msg/Image", typestore=TYPESTORE)
        imu = writer.add_connection("/temperature", "sensor_msgs/msg/Temperature", typestore=TYPESTORE)
        text = writer.add_connection("/rosout_agg", "std_msgs/msg/String", typestore=TYPESTORE)
        frames = list(read_image_bag(BAG))[:150]
        for i, f in enumerate(frames):
            stamp, data = f.timestamp_ns, f.data
            if i % 10 == 5:
                data = data[: len(data) // 3]  # a broken payload: cut short
            writer.write(cam, stamp, data)
            writer.write(imu, stamp, bytes(TYPESTORE.serialize_cdr(t["sensor_msgs/msg/Temperature"](
                header=t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](
                    sec=stamp // 10**9, nanosec=stamp % 10**9), frame_id="imu"), temperature=21.0, variance=0.0),
                "sensor_msgs/msg/Temperature")))
            writer.write(text, stamp, bytes(TYPESTORE.serialize_cdr(t["std_msgs/msg/String"](data="hello"),
                                                                    "std_msgs/msg/String")))
    r = run_container([str(CONFIG), "--bag", str(out)], env=env, duration=8.0)
    rejected = r.rows.get(CRITICAL, {}).get("rejected", 0)
    held = r.ledger_holds() and r.rc == 0 and rejected > 0 and r.rows[CRITICAL]["on_time"] > 0
    return Outcome("third-party bag", held, f"extra /temperature and /rosout_agg topics; {rejected} broken payloads "
                   "rejected by the detector", r)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="write faults.txt and faults.json here")
    ap.add_argument("--only", nargs="+", help="only scenarios whose name contains one of these")
    ap.add_argument("--publish-junk", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.publish_junk:
        publish_junk(args.publish_junk)
        return 0
    for need in (BAG / "metadata.yaml", KERNEL_BAGS / "tiny_yolo" / "manifest.json"):
        if not need.exists():
            print(f"faults: {need} is missing: run scripts/demo once first", file=sys.stderr)
            return 2
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA",
           "ROS_DOMAIN_ID": os.environ.get("ROS_DOMAIN_ID", "77"), "PYTHONUNBUFFERED": "1"}
    work = Path(tempfile.mkdtemp(prefix="aaron_faults_"))
    state: dict = {}
    plan: list[tuple[str, Callable[[], Outcome]]] = [
        ("load 1x", lambda: scenario_load("load 1x", 1.0, env, state)),
        ("overload 10x", lambda: scenario_load("overload 10x", 10.0, env, state)),
        ("malformed images", lambda: scenario_malformed(env)),
        *[(f"kernel bag: {n}", lambda n=n, d=d: scenario_corruption(n, d, env, work)) for n, d in CORRUPTIONS.items()],
        *[(f"config: {n}", lambda n=n, f=f: scenario_config(n, f, env, work)) for n, f in CONFIG_FAULTS.items()],
        ("signal at load", lambda: scenario_signals("signal at load", ((-3.0, signal.SIGINT),), env)),
        ("signal mid-run", lambda: scenario_signals("signal mid-run", ((8.0, signal.SIGTERM),), env)),
        ("signal twice", lambda: scenario_signals("signal twice", ((8.0, signal.SIGINT), (8.3, signal.SIGINT)), env)),
        ("hung stage", lambda: scenario_signals("hung stage", ((6.0, signal.SIGTERM),), env, True, work)),
        ("third-party bag", lambda: scenario_third_party_bag(env, work)),
    ]
    if args.only:
        plan = [(n, f) for n, f in plan if any(o in n for o in args.only)]
    outcomes = []
    try:
        for name, fn in plan:
            print(f"[faults] {name} ...", file=sys.stderr, flush=True)
            try:
                o = fn()
            except Exception as exc:  # the campaign goes on; this scenario failed
                o = Outcome(name, False, f"the scenario itself raised {type(exc).__name__}: {exc}")
            outcomes.append(o)
            print(o.line(), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    held = sum(o.held for o in outcomes)
    print(f"{held} of {len(outcomes)} scenarios held")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "faults.txt").write_text("\n".join(o.line() for o in outcomes) + f"\n{held} of {len(outcomes)} held\n")
        (out / "faults.json").write_text(json.dumps([{
            "scenario": o.scenario, "held": o.held, "what": o.what,
            **({"rc": o.run.rc, "exit_s": o.run.exit_s, "rss_mb": o.run.rss, "tasks": o.run.rows}
               if o.run else {})} for o in outcomes], indent=1))
    return 0 if held == len(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
