"""The container: one process, one executor, the coordinator node and every component the
parameter file lists (and, when asked, a bag player feeding them).

The container node is a lifecycle node (`rclpy.lifecycle`), so a lifecycle manager can bring the
whole container up and down as one: configure loads the models and kernel bags (the coordinator
and the components), activate subscribes the components and starts the sources, deactivate stops
taking frames (those in flight finish and are published, or are counted), cleanup frees the
models. With `autostart` (the default) it configures and activates itself at start.

Components are found by name (`aaron_ros.ros.components`); a component class is constructed as
`cls(name, service=<CoordinatorService>, kernel_bag_dir=<str>, context=<rclpy Context>)` and
reads its own parameters, which come from the file through `--params-file`. A component that
fails to load is reported and left out; one whose callback raises is logged and the rest go on.
"""
from __future__ import annotations

import io
import logging
import tempfile
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import rclpy
import yaml
from rclpy.executors import Executor, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions

from aaron_ros.common.paths import kernel_bag_root
from aaron_ros.ros.components import find_component
from aaron_ros.ros.config import CONTAINER_NODE, COORDINATOR_NODE, ContainerConfig, in_any_namespace, load_config
from aaron_ros.ros.coordinator_node import CoordinatorNode
from aaron_ros.ros.domain import domain_risk
from aaron_ros.ros.failures import FailureLog
from aaron_ros.ros.params import CONTAINER, Transport, declare_params
from aaron_ros.ros.stall import StallWatch

log = logging.getLogger(__name__)

_NODE_RENAME = ("__node:=", "__name:=")
UP = "container up"  # its log line once it takes frames (the bench reads it)
BAG_SETTLE_S = 1.0  # after the bag player's last frame, for the components to take what it sent


def _culprit(exc: BaseException) -> str:
    """The node whose callback raised `exc`: the innermost frame of its traceback run by a node."""
    name, tb = "an unknown node", exc.__traceback__
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if isinstance(owner, Node):
            name = owner.get_name()
        tb = tb.tb_next
    return name


def _transport_hint(topic: str, played: Collection[str]) -> str:
    """Where a topic nobody publishes is the other image transport's name of a played one."""
    compressed = Transport.COMPRESSED.topic
    if raw := next((t for t in played if compressed(t) == topic), None):
        return f"; the bag publishes {raw} as raw images, which image_transport: raw reads"
    if compressed(topic) in played:
        return f"; the bag publishes {compressed(topic)}, which image_transport: compressed reads"
    return ""


def command_line_params(ros_args: list[str], node: str) -> list[Parameter]:
    """The `-p [NODE:]NAME:=VALUE` (`--param`) of ROS arguments that reach `node`, each value read
    as YAML, as rcl reads it. A rule's NODE is the node's name in any namespace (rcl matches a plain
    one only in the root namespace) or its fully qualified name under `-r __ns:=` (which rcl refuses)."""
    pairs = list(zip(ros_args, ros_args[1:]))
    namespace = next((v.split(":=", 1)[1] for f, v in reversed(pairs)
                      if f in ("-r", "--remap") and v.startswith("__ns:=")), "/")
    names = {node, f"{namespace.rstrip('/')}/{node}"}
    out = []
    for flag, value in pairs:
        if flag in ("-p", "--param") and ":=" in value:
            name, text = value.split(":=", 1)
            target, _, name = name.rpartition(":")
            if not target or target in names:
                out.append(Parameter(name, value=yaml.safe_load(text)))
    return out


def params_files_in_any_namespace(ros_args: list[str], out_dir: str | Path) -> list[str]:
    """The ROS arguments with each `--params-file`'s plain node sections read in any namespace, as
    the parameter file's are (`in_any_namespace`)."""
    out = list(ros_args)
    for i, flag in enumerate(out[:-1]):
        if flag == "--params-file":
            folder = Path(out_dir) / f"params_file_{i}"  # two files may share a name
            folder.mkdir()
            out[i + 1] = str(in_any_namespace(out[i + 1], folder))
    return out


def rcl_args(ros_args: list[str], params_file: str | None = None) -> list[str]:
    """rclpy's init arguments: `params_file`, then the user's ROS arguments (so that theirs win),
    without a global node-name remap (`-r __node:=NAME`, which ros2 launch adds for a named Node):
    it would give every node of the process one name."""
    out, skip = [], False
    for i, a in enumerate(ros_args):
        if skip:
            skip = False
            continue
        if a in ("-r", "--remap") and i + 1 < len(ros_args) and ros_args[i + 1].startswith(_NODE_RENAME):
            log.info("ROS argument %s %s left out: the container's nodes keep their own names", a, ros_args[i + 1])
            skip = True
            continue
        if a in ("-p", "--param") and i + 1 < len(ros_args) and ros_args[i + 1].startswith("/"):
            skip = True  # a fully qualified node's rule, which rcl refuses: `command_line_params` applies it
            continue
        out.append(a)
    own = ["--params-file", params_file] if params_file else []
    return ["--ros-args", *own, *out] if own or out else []


def make_executor(kind: str, context: rclpy.Context, logger) -> Executor:
    """`events`: rclpy's EventsExecutor, which waits on the middleware's events instead of building
    a wait set of every node's entities at each callback (0.7 ms a time with the f1tenth file's
    ~70 entities on the reference machine). It cannot wait on guard conditions; no node here uses
    one. Where rclpy lacks it (before Jazzy), `single` (SingleThreadedExecutor)."""
    if kind == "events":
        try:
            from rclpy.experimental import EventsExecutor

            return EventsExecutor(context=context)
        except ImportError:
            logger.warning("this rclpy has no EventsExecutor: using SingleThreadedExecutor")
        except io.UnsupportedOperation:  # it enables faulthandler on sys.stderr, which needs a file
            logger.warning("EventsExecutor needs a standard error with a file descriptor (it is "
                           "replaced here): using SingleThreadedExecutor")
    return SingleThreadedExecutor(context=context)


@dataclass
class ContainerOptions:
    config: Path
    bag: str | None = None  # replay this rosbag into the container
    camera: str | None = None  # or publish this camera / video file (CameraNode `device`)
    policy: str | None = None  # override the file's coordinator policy
    versions: str | None = None
    domain_id: int | None = None  # None: ROS_DOMAIN_ID or 0
    ros_args: list[str] = field(default_factory=list)  # as after --ros-args: remaps, namespace, parameters
    extra_overrides: dict[str, list[Parameter]] = field(default_factory=dict)  # node name -> params


class Container:
    def __init__(self, options: ContainerOptions):
        self.options = options
        self.config: ContainerConfig = load_config(options.config)  # bad values fail here, naming the key
        self.context = rclpy.Context()
        self._files = tempfile.TemporaryDirectory(prefix="aaron_ros_")
        params_file = str(in_any_namespace(options.config, self._files.name))
        ros_args = params_files_in_any_namespace(options.ros_args, self._files.name)
        init = {"args": rcl_args(ros_args, params_file), "context": self.context,
                "signal_handler_options": SignalHandlerOptions.NO}
        if options.domain_id is not None:
            init["domain_id"] = options.domain_id
        rclpy.init(**init)
        self.executor: Executor | None = None  # made once the container's parameters are read
        self.failed: dict[str, str] = {}  # component -> why it is not running
        self.components: dict[str, Node] = {}
        self.player = None
        self.camera = None
        self.coordinator: CoordinatorNode | None = None
        self._player_started = False
        self._player_waits_for: set[str] = set()  # the player's topics a component reads
        self._published_before: dict[str, int] = {}  # by sources since stopped (deactivated)
        self._stop = threading.Event()
        self._callback_failures = None  # a FailureLog, once the container's node exists
        try:
            self._build()
        except BaseException:
            self.shutdown()
            raise

    def _overrides(self, node: str, **values) -> list[Parameter]:
        """A node's parameters beyond the file: `-p` from the ROS arguments (rcl would let the
        file's node sections win over them), then this container's own options; the later win."""
        extra = [Parameter(k, value=v) for k, v in values.items() if v not in (None, "")]
        return command_line_params(self.options.ros_args, node) + extra + self.options.extra_overrides.get(node, [])

    def _build(self) -> None:
        self.node = ContainerNode(self)
        self._callback_failures = FailureLog(self.node.get_logger())
        if risk := domain_risk(self.context.get_domain_id()):
            self.node.get_logger().warning(f"{risk}: set ROS_DOMAIN_ID to one of those")
        declare_params(self.node, CONTAINER)
        self.executor = make_executor(self.node.get_parameter("executor").value, self.context, self.node.get_logger())
        self.executor.add_node(self.node)
        if not self.node.get_parameter("autostart").value:
            self.node.get_logger().info("unconfigured: waiting for a lifecycle manager to configure and activate "
                                        f"{self.node.get_fully_qualified_name()}")
            return
        for step in (self.node.trigger_configure, self.node.trigger_activate):
            if step() != TransitionCallbackReturn.SUCCESS:  # the run fails as the step did: its error, named
                raise self.node.error or RuntimeError(f"{step.__name__} failed")

    @property
    def state(self) -> str:
        """The container node's lifecycle state: unconfigured, inactive, active, finalized, ..."""
        return self.node._state_machine.current_state[1]  # rclpy keeps it there; it has no getter

    # -- lifecycle transitions (on the executor's thread, or at start) ----------------------
    def configure(self) -> None:
        """The coordinator and every component: models and kernel bags loaded, not yet taking frames."""
        self.failed, self.components = {}, {}
        logger = self.node.get_logger()
        self.coordinator = CoordinatorNode(context=self.context, parameter_overrides=self._overrides(
            COORDINATOR_NODE, policy=self.options.policy, versions=self.options.versions))
        kernel_bag_dir = str(kernel_bag_root(self.coordinator.params.kernel_bag_dir))  # warns once for bags/
        for c in self.config.components:
            try:
                cls = find_component(c.component)
                comp = cls(c.name, service=self.coordinator.service, kernel_bag_dir=kernel_bag_dir,
                           context=self.context, parameter_overrides=self._overrides(c.name))
            except Exception as exc:
                self.failed[c.name] = f"{type(exc).__name__}: {exc}"
                logger.error(f"component {c.name} ({c.component}) failed to load and is left out: "
                             f"{self.failed[c.name]}")
                continue
            self.components[c.name] = comp
            if hasattr(comp, "counts"):
                self.coordinator.task_counters[c.name] = comp.counts
        if not self.components:
            raise ValueError(f"{self.config.path}: no component could be loaded: "
                             + "; ".join(f"{name}: {why}" for name, why in self.failed.items()))
        self.coordinator.not_loaded = self.failed  # in /diagnostics as ERROR
        self.coordinator.taking_frames = False  # until activate
        self.coordinator.start()
        for n in (self.coordinator, *self.components.values()):
            self.executor.add_node(n)
        logger.info(f"configured: {len(self.components)} component(s) [{', '.join(self.components)}], "
                    f"policy {self.coordinator.service.policy_name}"
                    + (f"; {len(self.failed)} failed: {', '.join(self.failed)}" if self.failed else ""))

    def activate(self) -> None:
        """The components take frames; the container's own sources start."""
        self.coordinator.not_subscribed.clear()
        for name, comp in self.components.items():
            if hasattr(comp, "activate"):  # a component without it takes frames from its start
                try:
                    comp.activate()
                except Exception as exc:  # its input cannot be subscribed: the others still serve
                    self.coordinator.not_subscribed[name] = f"{type(exc).__name__}: {exc}"
                    self.node.get_logger().error(f"component {name} takes no frame: its input could not be "
                                                 f"subscribed: {self.coordinator.not_subscribed[name]}")
        self.coordinator.taking_frames = True
        if self.options.bag:
            from aaron_ros.ros.bag_player import BagPlayer

            self.player = BagPlayer(context=self.context,
                                    parameter_overrides=self._overrides("bag_player", bag=self.options.bag))
            self.executor.add_node(self.player)
            self._player_started = False  # by spin(), once the components hear it
            played = set(self.player.published_on)
            read = {name: getattr(comp, "input_topic", None) for name, comp in self.components.items()}
            self._player_waits_for = played & set(read.values())  # a topic nobody reads is not waited for
            for name, topic in read.items():
                if topic is not None and topic not in played:
                    self.node.get_logger().warning(
                        f"component {name} reads {topic}, which the bag does not publish ({', '.join(sorted(played))}):"
                        f" it gets no frame from it{_transport_hint(topic, played)} (a bag_player remap, or -r, moves "
                        "a topic)")
        if self.options.camera:
            from aaron_ros.ros.camera import CameraNode

            self.camera = CameraNode(context=self.context,
                                     parameter_overrides=self._overrides("camera", device=self.options.camera))
            self.executor.add_node(self.camera)
        self.node.get_logger().info(f"{UP}: {len(self.components)} component(s) "
                                    f"[{', '.join(self.components)}] taking frames")

    def deactivate(self) -> None:
        """No more frames are taken: the sources stop; frames in flight finish and are published,
        or end dropped, and are counted either way."""
        self._stop_sources()
        for comp in self.components.values():
            if hasattr(comp, "deactivate"):
                comp.deactivate()
        if self.coordinator is not None:
            self.coordinator.taking_frames = False
        self.node.get_logger().info("deactivated: no frames taken; those in flight finish")

    def cleanup(self, drain_timeout_s: float = 2.0, forget: bool = True) -> None:
        """The coordinator and the components go, and their models with them (`forget=False`:
        still readable for a run's summary, as at shutdown)."""
        coordinator = self.coordinator
        if coordinator is not None:
            coordinator.service.stop(drain_timeout_s)
        for n in [*self.components.values(), *([coordinator] if coordinator is not None else [])]:
            if self.executor is not None:
                self.executor.remove_node(n)
            n.destroy_node()
        if forget:
            self.components, self.coordinator = {}, None
            # What its sources sent was counted against those components' ledgers, gone with them:
            # a next configuration's would read it as lost.
            self._published_before = {}

    def _stop_sources(self, forget: bool = True) -> None:
        """The bag player and camera stop (`forget=False`: still readable, as at shutdown)."""
        for name in ("player", "camera"):
            source = getattr(self, name)
            if source is not None:
                source.stop()
                if self.executor is not None:
                    self.executor.remove_node(source)
                source.destroy_node()
                if forget:
                    for topic, n in source.published_on.items():  # still counted once it is gone
                        self._published_before[topic] = self._published_before.get(topic, 0) + n
                    setattr(self, name, None)

    def published_on(self) -> dict[str, int]:
        """Frames the container's own sources (bag player, camera) published, per topic: what
        its components should have received. Empty when frames come from outside."""
        out = dict(self._published_before)
        for source in (self.player, self.camera):
            for topic, n in (source.published_on if source is not None else {}).items():
                out[topic] = out.get(topic, 0) + n
        return out

    # -- running ------------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Safe from a signal handler or another thread."""
        self._stop.set()

    def spin(self, duration_s: float | None = None, on_tick=None, tick_s: float = 1.0) -> None:
        """Serve until request_stop(), `duration_s`, or the bag player finished (when one runs)."""
        start = time.monotonic()
        next_tick = start + tick_s
        watch = StallWatch(self._progress)  # says where it is if it stops serving
        watch.start()
        try:
            while not self._stop.is_set() and self.context.ok():
                watch.beat()
                now = time.monotonic()
                if duration_s is not None and now - start >= duration_s:
                    break
                player = self.player
                if player is not None and not self._player_started:
                    # Frames published before the components' subscriptions match would be lost.
                    if not player.wait_for_subscribers(1, timeout=5.0, topics=self._player_waits_for):
                        self.node.get_logger().warning(
                            f"bag_player: {', '.join(sorted(self._player_waits_for))} not matched by the components "
                            "reading it after 5 s; playing anyway (frames before the match are lost)")
                    player.start()
                    self._player_started = True
                elif player is not None and player.wait(0):
                    # The bag is over, but its last frames may still wait to be taken: take them all.
                    settle_until = time.monotonic() + BAG_SETTLE_S
                    while time.monotonic() < settle_until:
                        self.executor.spin_once(timeout_sec=0.05)
                    break
                try:
                    self.executor.spin_once(timeout_sec=0.1)
                except Exception as exc:  # a node's callback raised: say whose, in full the first time; keep serving
                    self._callback_failures(f"a callback of {_culprit(exc)}", exc)
                if on_tick is not None and now >= next_tick:
                    next_tick = now + tick_s
                    on_tick(self)
        finally:
            watch.stop()

    def _progress(self) -> tuple[int, int]:
        """Frames received, and frames published, failed or refused, over all components."""
        counts = [c.counters for c in list(self.components.values()) if hasattr(c, "counters")]
        return (sum(c["received"] for c in counts),
                sum(c["published"] + c["failed"] + c["rejected"] + c["rate_limited"] for c in counts))

    def shutdown(self, drain_timeout_s: float = 2.0) -> None:
        """In-flight frames finish (within the drain time) or are counted as dropped."""
        self._stop_sources(forget=False)
        self.cleanup(drain_timeout_s, forget=False)
        if self.executor is not None:
            for n in list(self.executor.get_nodes()):
                self.executor.remove_node(n)
                n.destroy_node()
            self.executor.shutdown(timeout_sec=1.0)
        self.context.try_shutdown()
        self._files.cleanup()


class ContainerNode(LifecycleNode):
    """The container's own node (`aaron_container`): its lifecycle moves the whole container."""

    def __init__(self, container: Container):
        super().__init__(CONTAINER_NODE, context=container.context,
                         parameter_overrides=container._overrides(CONTAINER_NODE))
        self._container = container
        self.error: Exception | None = None  # what made the last transition fail

    def _run(self, step, state_after_failure: str) -> TransitionCallbackReturn:
        try:
            step()
        except Exception as exc:  # refused, with why: the manager sees the failure, the node stays up
            self.error = exc
            self.get_logger().error(f"{step.__name__} failed, back to {state_after_failure}: "
                                    f"{type(exc).__name__}: {exc}")
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        done = self._run(self._container.configure, "unconfigured")
        if done != TransitionCallbackReturn.SUCCESS:
            self._container.cleanup()  # what it had loaded goes: back to unconfigured
        return done

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._run(self._container.activate, "inactive")

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._run(self._container.deactivate, "active")

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._run(self._container.cleanup, "inactive")

    def destroy_node(self) -> None:
        # rclpy leaves the lifecycle state machine, which holds the node's handle, to the garbage
        # collector: the node, and with the last one the DDS participant, would go down at some later
        # collection, after the context's shutdown. A test run hung there in Fast DDS's TCP teardown.
        self._state_machine.destroy_when_not_in_use()
        super().destroy_node()

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._container.request_stop()  # the process ends as on Ctrl-C: in-flight frames finish first
        return TransitionCallbackReturn.SUCCESS
