"""`aaron-ros`: one command, one subcommand per job."""
from __future__ import annotations

import argparse
import logging
import os
import queue
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

from aaron_ros.common.bounded import dump_stacks_on_signal, finished_within
from aaron_ros.common.paths import KERNEL_BAG_DIR

log = logging.getLogger("aaron_ros")

# Enough for every model's cheap versions and, where asked for, its largest stages' inductor
# builds on a 2-core CPU; the whole zoo builds from cold in well under 20 minutes.
DEFAULT_BUDGET_PER_MODEL_S = 130.0
DEFAULT_BAG = "data/sample_bag"  # a rosbag (camera recording), never a kernel bag
DEFAULT_RECORD_FPS = 30.0
WAIT_SUBSCRIBERS_S = 10.0  # play --wait-subscribers
MATCH_SETTLE_S = 0.5  # play: after the subscribers matched, and after the last frame
TEARDOWN_S = 5.0  # play: for its DDS participant to go, after it said what it published
# bench --bag: the bag played with no pause before each measured replay. A replay's first frames
# came slower after any pause in the stream, for every policy (results/ros_bench/replay_start_*).
LEAD_IN_S = 1.0


class _OldName(argparse.Action):
    """A flag or command renamed this release: still works, with a warning naming the new one."""

    def __init__(self, option_strings, dest, new: str, **kwargs):
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        _warn_renamed(option_string, self.new)
        setattr(namespace, self.dest, values)


def _warn_renamed(old: str, new: str) -> None:
    print(f"aaron-ros: warning: '{old}' is deprecated and goes in the next release; use '{new}' "
          "(kernel bags are told apart from rosbags)", file=sys.stderr)


def _cmd_models(args: argparse.Namespace) -> int:
    from aaron_ros.bench.alone import bench_models
    from aaron_ros.common.machine import machine_info
    from aaron_ros.common.report import text_table, write_report
    from aaron_ros.models import describe, model_names

    names = args.model or model_names()
    unknown = [n for n in names if n not in model_names()]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; known: {model_names()}")
    rows = [("model", "input", "stages", "params (M)", "GFLOPs", "output", "classes")]
    for n in names:
        info = describe(n)
        rows.append((n, "x".join(map(str, info.input_shape)), str(info.stages),
                     f"{info.params / 1e6:.2f}", f"{info.gflops:.2f}", info.output_kind, str(info.classes or "-")))
    print(text_table(rows[0], rows[1:]))
    if not args.bench:
        return 0
    threads = sorted({1, os.cpu_count() or 1})
    results = bench_models(names, threads, frames=args.frames, warmup=args.warmup,
                           progress=not args.no_progress)
    rows = [("model", *(f"{t} thread{'s' * (t > 1)} p50 / p95 ms" for t in threads))]
    for n in names:
        cells = [f"{r.latency.p50_ms:.1f} / {r.latency.p95_ms:.1f}" for r in results if r.model == n]
        rows.append((n, *cells))
    table = text_table(rows[0], rows[1:]) + (f"\nbatch 1, one CPU lane, {args.frames} timed frames after "
                            f"{args.warmup} warm-up, stage by stage")
    print()
    print(table)
    if args.out:
        data = {"machine": machine_info(), "frames": args.frames, "warmup": args.warmup,
                "results": [{"model": r.model, "threads": r.threads, **r.latency.as_dict()}
                            for r in results]}
        log.info("report written to %s", write_report(args.out, "models_bench", data, table))
    return 0


def _cmd_zoo(args: argparse.Namespace) -> int:
    from aaron_ros.bench.zoo import format_table, load_zoo_config, run_zoo, save_report
    from aaron_ros.common.paths import find_config

    cfg = load_zoo_config(find_config(args.config), duration_s=args.duration, lanes=args.lanes,
                          threads=args.threads)
    log.info("running %d models (%s lanes) for %.0f s: %s", len(cfg.models), cfg.lanes,
             cfg.duration_s, ", ".join(cfg.models))
    report = run_zoo(cfg, progress=not args.no_progress)
    print(format_table(report))
    if args.out:
        log.info("report written to %s", save_report(report, args.out))
    return 0 if all(r.failed is None for r in report.results) else 1


def _cmd_compile(args: argparse.Namespace) -> int:
    from aaron_ros.kernels.compile import CompileOptions, compile_many
    from aaron_ros.models import describe, model_names

    if (args.model is None) == (args.config is None):
        raise ValueError("give --model (zoo models) or --config (a parameter file's models), one of them")
    if args.config:
        from aaron_ros.ros.config import load_config

        if args.weights:
            raise ValueError("--weights comes from the parameter file's components with --config")
        config = load_config(args.config)
        perception = [c for c in config.components if c.component == "perception"]
        # One bag per folder: components sharing a model share its bag.
        models = list({config.kernel_bag(c): (c.model_spec, config.kernel_bag(c)) for c in perception}.values())
        for spec, _ in models:  # every model built before any bag is (compile_many reads them cached)
            try:
                describe(spec)
            except ValueError as exc:
                names = ", ".join(c.name for c in perception if c.model_spec == spec)
                raise ValueError(f"{args.config}: {names}.ros__parameters.model: {exc}") from None
    else:
        names = model_names() if args.model == "all" else args.model.split(",")
        unknown = [n for n in names if n not in model_names()]
        if unknown:
            raise ValueError(f"unknown model(s) {unknown}; known: {model_names()} or 'all' (other models: "
                             f"declare them in a parameter file and give --config)")
        if args.weights and len(names) != 1:
            raise ValueError(f"--weights fits one model, not {len(names)}: give one --model")
        models = [(n, Path(args.out) / n) for n in names]
    backends = tuple(args.backends.split(",")) if args.backends else None
    opts = CompileOptions(device=args.backend, backends=backends, kinds=tuple(args.kinds.split(",")),
                          reps=args.reps, progress=not args.no_progress, retry_skipped=args.retry_skipped,
                          weights=args.weights,
                          **({} if args.min_stage_ms is None else {"min_stage_ms": args.min_stage_ms}))
    compile_many(models, opts, args.budget_s or DEFAULT_BUDGET_PER_MODEL_S * len(models))
    return 0


def _cmd_kernel_bag_show(args: argparse.Namespace) -> int:
    from aaron_ros.kernels.show import show

    if args.command == "bag":
        _warn_renamed("aaron-ros bag show", "aaron-ros kernel-bag show")

    text, pngs = show(args.dir, plot=not args.no_plot)
    print(text)
    for png in pngs:
        log.info("plot written to %s", png)
    return 0


def _cmd_contention(args: argparse.Namespace) -> int:
    from aaron_ros.kernels.background import run_standalone

    stats = run_standalone(args.kind, args.level, args.seconds, device=args.device,
                           progress=not args.no_progress)
    gbps = f", {stats['gbps']:.1f} GB/s" if stats.get("gbps") else ""
    print(f"{args.kind}/{args.level} on {stats['device']}: {stats['workers']} worker(s), "
          f"{stats['share']:.0%} of the device for {stats['wall_s']:.1f} s, "
          f"{stats['rate']:.0f} iterations/s{gbps}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from aaron_ros.bench.policies import BenchOptions, run_bench, save
    from aaron_ros.bench.workload import load_workload
    from aaron_ros.coordinator.policies import POLICIES

    if bool(args.workload) == bool(args.bag or args.config):
        raise ValueError("give either --workload, or --bag and --config (the ROS 2 system), not both")
    if args.kernel_bags and not Path(args.kernel_bags).is_dir():  # named, so meant: not a silent eager run
        raise FileNotFoundError(f"--kernel-bags {args.kernel_bags}: no such folder (build one with "
                                "`aaron-ros compile --model all --out FOLDER`)")
    if not args.workload:
        return _bench_ros(args)
    from aaron_ros.common.paths import kernel_bag_root

    kernel_bags = kernel_bag_root(args.kernel_bags or KERNEL_BAG_DIR)
    workload = load_workload(args.workload)
    if args.scenario:
        workload = workload.scenario(args.scenario)
    policies = list(POLICIES) if args.policies == "all" else args.policies.split(",")
    opts = BenchOptions(policies=policies, versions=args.versions.split(",") if args.versions else None,
                        duration_s=args.duration, repeats=args.repeats, isolation_s=args.isolation,
                        kernel_bag_dir=kernel_bags, lanes=args.lanes,
                        progress=not args.no_progress)
    log.info("bench %s: %s, %.0f s each (%d rounds), kernel bags from %s", workload.name,
             ", ".join(k for k, _, _ in opts.entries()), opts.duration_s, opts.repeats, kernel_bags)
    report, latencies = run_bench(workload, opts)
    for path in save(report, latencies, args.out):
        log.info("wrote %s", path)
    print((Path(args.out) / "report.md").read_text())
    return 0


def _cmd_decisions(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from aaron_ros.bench.decisions import EVICT_MB, ROUNDS, decision_cost
    from aaron_ros.bench.workload import load_workload
    from aaron_ros.common.paths import kernel_bag_root
    from aaron_ros.common.report import fmt, md_table
    from aaron_ros.coordinator.policies import POLICIES
    from aaron_ros.coordinator.service import ModelSet

    workload = load_workload(args.workload)
    if args.scenario:
        workload = workload.scenario(args.scenario)
    kernel_bags = kernel_bag_root(args.kernel_bags or KERNEL_BAG_DIR)
    models = ModelSet("cpu")
    for t in workload.tasks:
        models.load(t.model, kernel_bags / t.model)
    policies = list(POLICIES) if args.policies == "all" else args.policies.split(",")
    evict_mb = EVICT_MB if args.evict_mb is None else args.evict_mb
    rows = []
    for name in tqdm(policies, desc="decisions", unit="policy", disable=args.no_progress):
        c = decision_cost(workload, models.bags, name, args.versions, args.duration, evict_mb)
        rows.append([name, str(c.grants), fmt(c.warm_us), fmt(c.evicted_us), fmt(c.evicted_us / c.warm_us, 2)])
    print(f"Decision time per grant on `{workload.name}`, simulated clock, {args.versions} versions, "
          f"{args.duration:g} s (median of {ROUNDS} runs):\n")
    print(md_table(["policy", "grants", "warm us", f"caches evicted ({evict_mb:g} MB) us", "ratio"], rows))
    return 0


def _exit_on_signal(signum: int, frame) -> None:
    raise SystemExit(128 + signum)  # the shell's code for it


def _bench_ros(args: argparse.Namespace) -> int:
    from aaron_ros.common.paths import find_config
    from aaron_ros.coordinator.policies import POLICIES
    from aaron_ros.ros.bench import RosBenchOptions, comparison_text, run_ros_bench, save

    if not (args.bag and args.config):
        raise ValueError("the ROS 2 bench needs both --bag and --config")
    if not Path(args.bag).exists():
        raise FileNotFoundError(f"bag {args.bag} does not exist (make one with `aaron-ros record`)")
    policies = list(POLICIES) if args.policies == "all" else args.policies.split(",")
    opts = RosBenchOptions(bag=Path(args.bag), config=find_config(args.config), policies=policies,
                           versions=args.versions.split(",") if args.versions else None, repeats=args.repeats,
                           kernel_bag_dir=args.kernel_bags, isolation=args.isolation > 0,
                           lead_in_s=args.lead_in, progress=not args.no_progress,
                           log_dir=Path(args.out) / "logs")
    log.info("ros bench %s on %s: %s, %d round(s)%s", opts.config.name, args.bag,
             ", ".join(k for k, _, _ in opts.entries()), opts.repeats,
             ", each task alone first" if opts.isolation else "")
    # SIGTERM (a CI job's timeout, `kill`) ends it as Ctrl-C does, through every `finally`: the
    # containers and cameras it started stop with it instead of serving on, orphaned.
    previous = signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        report, latencies, timings = run_ros_bench(opts)
    finally:
        signal.signal(signal.SIGTERM, previous)
    for path in save(report, latencies, timings, args.out):
        log.info("wrote %s", path)
    print(comparison_text(args.out))
    return 0


def _size(text: str) -> tuple[int, int]:
    w, sep, h = text.lower().partition("x")
    if not (sep and w.isdigit() and h.isdigit() and int(w) > 0 and int(h) > 0):
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, e.g. 640x480; got {text!r}")
    return int(w), int(h)


def _warn_transport() -> None:
    """Camera images cross processes whole only on Fast DDS's LARGE_DATA transports (measured: README,
    "Large images on best-effort QoS"); unset, a best-effort camera into another process loses about a third here."""
    if (os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp") == "rmw_fastrtps_cpp"
            and "FASTDDS_BUILTIN_TRANSPORTS" not in os.environ):
        log.warning("FASTDDS_BUILTIN_TRANSPORTS is not set: camera images between processes on Fast DDS's "
                    "default transports are often lost with best-effort QoS; set FASTDDS_BUILTIN_TRANSPORTS="
                    "LARGE_DATA in every process on the camera topic (README, Running the system)")


def _cmd_run(args: argparse.Namespace) -> int:
    from aaron_ros.common.paths import find_config
    from aaron_ros.ros.run import run

    if not (args.bag or args.camera):  # frames come from another process
        _warn_transport()
    rc = run(find_config(args.config), bag=args.bag, duration_s=args.duration, policy=args.policy,
             table=not args.no_table, camera=args.camera, ros_args=args.ros_args)
    if rc > 128:  # stopped by a signal, the container shut down: leave now. The interpreter's
        # teardown (torch, the DDS libraries) would add about half a second, and a second signal
        # in it would find Python's handlers gone and kill the process.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)
    return rc


def _cmd_record(args: argparse.Namespace) -> int:
    from itertools import takewhile

    from aaron_ros.ros.params import Transport
    from aaron_ros.ros.record import (
        COMPRESSIONS,
        frames_from_folder,
        frames_from_video,
        resize_frames,
        sample_frames,
        write_cameras_bag,
    )

    cameras = [t.strip() for t in args.topic.split(",") if t.strip()]
    # A camera's frame_id, by default its topic's first name (/front/image_raw: front).
    frame_ids = ([f.strip() for f in args.frame_id.split(",")] if args.frame_id
                 else [t.strip("/").split("/")[0] for t in cameras])
    if len(set(cameras)) != len(cameras):
        raise ValueError(f"--topic {args.topic}: a camera topic given twice")
    if len(frame_ids) != len(cameras) or not all(frame_ids):
        raise ValueError(f"--frame-id {args.frame_id}: one non-empty frame_id per --topic camera "
                         f"({len(cameras)}), comma-separated in the same order")

    # The sample's size, rate and length.
    (width, height), fps, seconds = args.size or (640, 480), args.fps or DEFAULT_RECORD_FPS, args.seconds or 10.0

    def frames_of(camera: int):
        """One camera's frames: the same video or folder for each, the sample with its own seed."""
        if args.video or args.images:
            if args.video:
                frames = frames_from_video(args.video, args.fps)
            else:
                frames = frames_from_folder(args.images, args.fps or DEFAULT_RECORD_FPS)
            if args.size:
                frames = resize_frames(frames, *args.size)
            return takewhile(lambda f: f[0] < args.seconds, frames) if args.seconds else frames
        return sample_frames(width, height, fps, seconds, seed=args.seed + camera)

    if args.video or args.images:
        total, source = None, args.video or args.images
    else:
        total, source = len(cameras) * max(1, round(seconds * fps)), f"the sample photographs at {width}x{height}"
    transport = Transport.COMPRESSED if args.encoding in COMPRESSIONS else Transport.RAW
    topics = [transport.topic(t) for t in cameras]
    count = write_cameras_bag(args.out, {t: (fid, frames_of(i)) for i, (t, fid) in enumerate(zip(topics, frame_ids))},
                              storage=args.storage, encoding=args.encoding, progress=not args.no_progress,
                              overwrite=args.overwrite, total=total)
    each = f" ({count // len(topics)} per camera)" if len(topics) > 1 else ""
    print(f"wrote {count} frames{each} of {source} to {args.out} "
          f"({args.storage}, {', '.join(topics)}, {args.encoding})")
    return 0


def _cmd_play(args: argparse.Namespace) -> int:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from aaron_ros.ros.bag_player import BagPlayer

    params = [Parameter("bag", value=args.bag), Parameter("rate", value=args.rate),
              Parameter("loop", value=args.loop), Parameter("start_offset_s", value=args.start),
              Parameter("qos", value=args.qos), Parameter("lead_in_s", value=args.lead_in)]
    if args.remap:  # an empty list would be typed as bytes, not strings
        params.append(Parameter("remap", value=args.remap))
    from aaron_ros.ros.container import rcl_args

    _warn_transport()
    context = rclpy.Context()
    rclpy.init(args=rcl_args(args.ros_args), context=context)
    player, played = None, False
    try:
        player = BagPlayer(context=context, parameter_overrides=params)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(player)  # serves its parameters while it plays
        if args.wait_subscribers:
            log.info("waiting up to %g s for %d subscriber(s) on every topic", WAIT_SUBSCRIBERS_S,
                     args.wait_subscribers)
            if player.wait_for_subscribers(args.wait_subscribers, WAIT_SUBSCRIBERS_S):
                if not args.start_on_enter:  # a subscriber may match the player a moment after the player matched it
                    time.sleep(MATCH_SETTLE_S)
            else:
                print(f"not every topic had {args.wait_subscribers} subscriber(s) after {WAIT_SUBSCRIBERS_S:g} s; "
                      "playing anyway", file=sys.stderr)
        # One play, or one per line on standard input until it closes (a harness's replays, from one
        # camera process and DDS participant as on a robot).
        if args.start_on_enter:
            log.info("playing the bag once per line on standard input (Enter), until it closes (Ctrl-D)")
        for _ in _stdin_lines(lambda: executor.spin_once(timeout_sec=0)) if args.start_on_enter else [None]:
            player.start()
            while not player.wait(0):
                executor.spin_once(timeout_sec=0.1)
            if player.error is not None:
                raise player.error
            if args.lead_in:
                print(f"lead-in of {player.lead_in} frames; measured from stamp {player.measured_from_ns} ns",
                      flush=True)
            print(f"published {player.published} frames of {args.bag} in {player.seconds:.3f} s", flush=True)
        # Best effort drops what a writer had not delivered when it goes away: let the last frames land.
        time.sleep(MATCH_SETTLE_S)
        played = True
    finally:
        def down() -> None:
            if player is not None:
                player.destroy_node()
            context.try_shutdown()

        # LARGE_DATA, which camera images need, is TCP: its teardown can hang (see finished_within).
        if not finished_within(down, TEARDOWN_S, "play-teardown"):
            log.warning("the DDS participant did not go down within %g s; leaving without it", TEARDOWN_S)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0 if played else 1)
        log.info("the DDS participant left the domain")  # its normal end, which a slow player's last words show
    return 0


def _stdin_lines(idle: Callable[[], None]) -> Iterator[None]:
    """One item per line read on standard input, until it closes; `idle` called meanwhile (the
    player's executor, so that its parameters are served between plays)."""
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in sys.stdin:
            lines.put(line)
        lines.put("")  # closed

    threading.Thread(target=read, name="stdin", daemon=True).start()
    while True:
        try:
            line = lines.get(timeout=0.1)
        except queue.Empty:
            idle()
            continue
        if not line:
            return
        yield


class _Help(argparse.HelpFormatter):
    """Each option's default at the end of its help, where the help does not say it already."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (action.option_strings and action.default not in (None, False, argparse.SUPPRESS)
                and "default" not in text):
            text += " (default %(default)s)"
        return text


def _command(sub, name: str, help: str):
    """A subcommand, described in its own --help by what the command list says of it."""
    return sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".", formatter_class=_Help)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="aaron-ros", description=__doc__, formatter_class=_Help)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    m = _command(sub, "models", "list the model zoo; --bench times each model alone")
    m.add_argument("--model", action="append", help="only this model (repeatable)")
    m.add_argument("--bench", action="store_true", help="time each model alone at 1 and all threads")
    m.add_argument("--frames", type=int, default=10, help="timed frames per model (default 10)")
    m.add_argument("--warmup", type=int, default=2, help="untimed frames first (default 2)")
    m.add_argument("--out", help="with --bench: write models_bench.json and .md here")
    m.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")
    m.set_defaults(func=_cmd_models)

    z = _command(sub, "zoo", "run the zoo's models at once on lanes; print latency per model")
    z.add_argument("--config", default="zoo.yaml", help="YAML file, or a name in config/ (default zoo.yaml)")
    z.add_argument("--duration", type=float, help="seconds all models run together")
    z.add_argument("--lanes", choices=["auto", "cpu", "cuda"], help="lane kind")
    z.add_argument("--threads", type=int, help="intra-op threads per CPU lane")
    z.add_argument("--out", help="write zoo.json and zoo.md here")
    z.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")
    z.set_defaults(func=_cmd_zoo)

    c = _command(sub, "compile", "build and profile kernel bags")
    c.add_argument("--model", help="a zoo model name, a comma list of them, or 'all'")
    c.add_argument("--config", metavar="FILE", help="instead of --model: the models of a parameter file's "
                   "components, as declared there (zoo, factory, .pt, .pt2, .onnx), each into the kernel bag "
                   "folder the container reads")
    c.add_argument("--out", default=KERNEL_BAG_DIR,
                   help=f"with --model: folder of kernel bags, one sub-folder per model (default {KERNEL_BAG_DIR})")
    c.add_argument("--backend", default="cpu", help="device the bag targets: cpu or cuda[:N] (default cpu)")
    c.add_argument("--weights", metavar="FILE", help="the model's own state dict (a component's `weights`): "
                   "a bag holds the weights it was built from, and a component with other weights runs eager")
    c.add_argument("--backends", help="comma list of kernel backends (default eager,onnxruntime; on "
                   "cuda also inductor, whose CPU runner holds the interpreter lock through its calls)")
    c.add_argument("--kinds", default="compute,memory,model", help="contention kinds to profile under")
    c.add_argument("--budget-s", type=float, help="time budget in seconds for the whole command "
                   f"(default {DEFAULT_BUDGET_PER_MODEL_S:.0f} s per model)")
    c.add_argument("--reps", type=int, default=10, help="timed repetitions per condition, at most")
    c.add_argument("--retry-skipped", action="store_true",
                   help="try again the versions an earlier run left out for lack of time")
    c.add_argument("--min-stage-ms", type=float,
                   help="fuse consecutive model stages until each costs at least this many ms alone, on its "
                        "quickest build (ONNX Runtime where offered, else eager) (default 8; 0: never); "
                        "a new bag only, an earlier one keeps its stages")
    c.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")
    c.set_defaults(func=_cmd_compile)

    k = _command(sub, "contention", "run one background contention generator on its own")
    k.add_argument("--kind", required=True, help="compute, memory or model")
    k.add_argument("--level", required=True, help="isolation, light, medium or heavy")
    k.add_argument("--seconds", type=float, default=10.0, help="how long it runs")
    k.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    k.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")
    k.set_defaults(func=_cmd_contention)

    w = _command(sub, "bench", "compare scheduling policies on a workload, or on the ROS 2 system "
                       "fed by a bag, in one run")
    w.add_argument("--workload", help="a workload name (config/workloads/) or a YAML file")
    w.add_argument("--bag", help="instead: replay this rosbag into the container, once per policy and round")
    w.add_argument("--config", help="with --bag: the container's parameter file, or a name in config/ (f1tenth)")
    w.add_argument("--scenario", help="a scenario of the workload (e.g. light, heavy for aaron_fig3)")
    w.add_argument("--policies", default="all", help="'all' or a comma list")
    w.add_argument("--versions", help="comma list of version settings: eager,solo,adaptive")
    w.add_argument("--duration", type=float, default=20.0, help="seconds per policy (summed over rounds)")
    w.add_argument("--repeats", type=_at_least_one, default=2, help="interleaved rounds")
    w.add_argument("--isolation", type=float, default=4.0, help="seconds of each task alone (with --bag: "
                   "each task replays the whole bag alone; 0 skips it)")
    w.add_argument("--lead-in", type=float, default=LEAD_IN_S, metavar="S",
                   help=f"with --bag: each replay first plays S s of the bag with no pause before it, left out "
                        f"of every figure but the CPU (default {LEAD_IN_S:g}; 0: none)")
    w.add_argument("--kernel-bags", metavar="DIR", help=f"folder of kernel bags (default {KERNEL_BAG_DIR}; "
                   "with --bag, the file's kernel_bag_dir)")
    w.add_argument("--bags", dest="kernel_bags", action=_OldName, new="--kernel-bags", help="deprecated: --kernel-bags")
    w.add_argument("--lanes", default="auto", choices=["auto", "cpu", "cuda"],
                   help="with --workload: lane kind (auto: CUDA streams where a GPU is present)")
    w.add_argument("--out", required=True, help="folder for report.md, report.json and the plots (with --bag, "
                   "also logs/: the output of each container and its camera)")
    w.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")
    w.set_defaults(func=_cmd_bench)

    d = _command(sub, "decisions", "time each policy's decisions on the simulated clock, with the CPU caches "
                                   "warm and evicted before each event as a model stage evicts them live")
    d.add_argument("--workload", required=True, help="a workload name (config/workloads/) or a YAML file")
    d.add_argument("--scenario", help="a scenario of the workload (e.g. heavy for aaron_fig3)")
    d.add_argument("--policies", default="all", help="'all' or a comma list")
    d.add_argument("--versions", default="adaptive", choices=["eager", "solo", "adaptive"], help="version setting")
    d.add_argument("--kernel-bags", help=f"folder of kernel bags (default {KERNEL_BAG_DIR})")
    d.add_argument("--duration", type=float, default=20.0, help="simulated seconds per run")
    d.add_argument("--evict-mb", type=float, help="memory read through before each event (default 32, "
                   "above the last-level cache of common CPUs)")
    d.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")
    d.set_defaults(func=_cmd_decisions)

    r = _command(sub, "record", "record images (sample photographs, a video or a folder) to a ROS 2 bag")
    r.add_argument("--out", default=DEFAULT_BAG, help=f"bag folder to create (default {DEFAULT_BAG})")
    src = r.add_mutually_exclusive_group()
    src.add_argument("--sample", action="store_true",
                     help="pans and zooms over scikit-image's photographs (the default source)")
    src.add_argument("--video", help="a video file")
    src.add_argument("--images", help="a folder of image files, in name order")
    r.add_argument("--seconds", type=float, help="length (default: 10 for the sample, all of a video or folder)")
    r.add_argument("--fps", type=float, help="frame rate (default 30; a video's own rate)")
    r.add_argument("--size", type=_size, help="WIDTHxHEIGHT (default 640x480 for the sample, else native)")
    r.add_argument("--topic", default="/camera/image_raw",
                   help="the camera topic (default /camera/image_raw); several, comma-separated, for several cameras "
                        "(the sample gives each its own view; a video or folder is the same on each)")
    r.add_argument("--frame-id", help="each camera's header.frame_id, comma-separated as --topic "
                                      "(default: its topic's first name: /front/image_raw -> front)")
    r.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap", help="rosbag2 storage format")
    r.add_argument("--encoding", choices=["rgb8", "bgr8", "jpeg", "png"], default="rgb8",
                   help="an Image's pixel layout, or jpeg / png: CompressedImage messages on TOPIC/compressed")
    r.add_argument("--seed", type=int, default=0, help="the sample's photo order and motions")
    r.add_argument("--overwrite", action="store_true", help="replace an existing bag at --out")
    r.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")
    r.set_defaults(func=_cmd_record)

    y = _command(sub, "play", "replay a bag's image topics with their recorded timing")
    y.add_argument("bag", help="a bag folder, .mcap or .db3 file")
    y.add_argument("--rate", type=float, default=1.0, help="speed factor (default 1: recorded timing)")
    y.add_argument("--loop", action="store_true", help="start over at the end, until Ctrl-C")
    y.add_argument("--start", type=float, default=0.0, help="skip this many seconds of the bag")
    y.add_argument("--lead-in", type=float, default=0.0, metavar="S",
                   help="first play S seconds of it, then the bag with no pause, and say the stamp the measured "
                        "part starts from (a warm-up a benchmark leaves out)")
    y.add_argument("--remap", nargs="+", action="extend", metavar="/FROM:=/TO",
                   help="publish a topic under another name (repeatable)")
    y.add_argument("--qos", default="sensor_data",
                   help="publisher QoS: sensor_data (best effort, the default) or reliable")
    y.add_argument("--wait-subscribers", type=int, default=1, metavar="N",
                   help=f"first wait (up to {WAIT_SUBSCRIBERS_S:g} s, then play anyway) until every topic has N "
                        "subscribers: frames published before a subscriber is matched are lost to it (default 1; "
                        "0: do not wait). A container counts once: its components on a topic share one "
                        "subscription")
    y.add_argument("--start-on-enter", action="store_true",
                   help="then play once per line on standard input, until it closes (a harness that checks "
                        "its own side of the match says go, and replays the bag from one camera process)")
    y.set_defaults(func=_cmd_play)

    u = _command(sub, "run", "start the container (coordinator + components) from a parameter file")
    u.add_argument("config", help="a ROS 2 parameter file, or a name in config/ (e.g. f1tenth.yaml)")
    u.add_argument("--bag", help="replay this rosbag (folder, .mcap or .db3) into the container")
    u.add_argument("--camera", help="or publish a camera (index, e.g. 0) or a video file into it")
    u.add_argument("--duration", type=_seconds_or_empty, help="stop after this many seconds (default: until "
                   "Ctrl-C, or the end of --bag)")
    u.add_argument("--policy", help="override the file's coordinator policy")
    u.add_argument("--no-table", action="store_true", help="no live table (logs only)")
    u.set_defaults(func=_cmd_run)
    u.epilog = ("ROS arguments after --ros-args reach every node of the container, as for any ROS 2 "
                "executable: remaps (-r /camera/image_raw:=/front/image, -r detector:camera/image_raw:=...), "
                "a namespace (-r __ns:=/car1), parameters (-p policy:=priority, --params-file FILE) and "
                "--log-level; a node-name remap (-r __node:=...), which ros2 launch adds, is left out: "
                "the container's nodes keep their own names")

    for name, help_ in (("kernel-bag", "inspect kernel bags (compiled model versions)"),
                        ("bag", "deprecated: kernel-bag")):
        b = _command(sub, name, help_)
        bsub = b.add_subparsers(dest="kernel_bag_command", required=True)
        bs = _command(bsub, "show", "best version per stage and contention level, and a plot")
        bs.add_argument("dir", help="a kernel bag folder, or a folder of them")
        bs.add_argument("--no-plot", action="store_true", help="no versions.png beside the manifest")
        bs.set_defaults(func=_cmd_kernel_bag_show)
    return p


def _at_least_one(text: str) -> int:
    """A whole number of at least 1 (a count of rounds)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def _seconds_or_empty(text: str) -> float | None:
    """A number of seconds, or "" for none (what a launch file passes for an argument not given)."""
    return float(text) if text.strip() else None


def split_ros_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """(our arguments, the ROS arguments): `--ros-args ... [--]` blocks, wherever they are, as
    rclpy reads them (without the `--ros-args` and `--` markers)."""
    own, ros, inside = [], [], False
    for a in argv:
        if a == "--ros-args":
            inside = True
        elif a == "--" and inside:
            inside = False
        else:
            (ros if inside else own).append(a)
    return own, ros


def main(argv: list[str] | None = None) -> int:
    dump_stacks_on_signal()
    own, ros_args = split_ros_args(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(own)
    args.ros_args = ros_args
    # torch.export's own deprecation chatter would bury our progress and results.
    warnings.filterwarnings("ignore", category=FutureWarning, module="torch")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="torch")
    from aaron_ros.kernels.bag import BagError

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="[%(levelname)s] [%(name)s]: %(message)s")
    if ros_args and args.command not in ("run", "play"):
        logging.getLogger("aaron_ros").warning("aaron-ros %s starts no ROS node: --ros-args %s ignored",
                                               args.command, " ".join(ros_args))
    try:
        return args.func(args)
    except (ValueError, KeyError, FileNotFoundError, BagError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"aaron-ros {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
