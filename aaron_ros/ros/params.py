"""Every node parameter, declared once: name, type, default, range or allowed words, description.

One table (`NodeParams`) per node kind, read by all three consumers:

* the nodes declare from it (`declare_params`, `params_from_node`), each parameter with a
  `ParameterDescriptor` carrying its description, range (`FloatingPointRange` / `IntegerRange`)
  and allowed words (`additional_constraints`), as `ros2 param describe` shows them;
* the file check (`aaron_ros.ros.config.load_config`, no rclpy) checks a file's values with it;
* the live check (`params_from_node`) checks what a node received with it.

A bad value is a `ParamError(key, problem)`: the problem text is the same whichever way the value
came in. This module never imports rclpy at module level.
"""
from __future__ import annotations

import array
import copy
import dataclasses
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any

from aaron_ros.common.paths import KERNEL_BAG_DIR
from aaron_ros.coordinator.policies import POLICIES, SETTINGS, check_policy, check_versions
from aaron_ros.coordinator.types import Criticality, Overload, TaskSpec
from aaron_ros.models.registry import model_names
from aaron_ros.models.source import IMAGENET_MEAN, IMAGENET_STD, DeclarationError, ModelSpec, OutputKind, model_key

DEVICES = ("auto", "cpu", "cuda")
EXECUTORS = ("events", "single")
QOS_PROFILES = ("sensor_data", "reliable")


class Transport(StrEnum):
    """How a component's images travel, in image_transport's words."""

    RAW = "raw"  # sensor_msgs/Image on the input topic
    COMPRESSED = "compressed"  # sensor_msgs/CompressedImage (jpeg, png) on <input topic>/compressed

    def topic(self, camera_topic: str) -> str:
        """Where a camera's images travel this way: the topic itself, or <topic>/compressed."""
        return f"{camera_topic.rstrip('/')}/compressed" if self is Transport.COMPRESSED else camera_topic
ENCODINGS = ("bgr8", "rgb8")
INT64_MAX = 2**63 - 1

_NODE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TOPIC = re.compile(r"^(~/|/)?[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$")
_COMPONENT = re.compile(r"^[A-Za-z_][\w.]*(:[A-Za-z_][\w.]*)?$")
# Python type of each parameter kind (the dataclasses' annotations).
_PYTYPES = {"str": str, "float": float, "int": int, "bool": bool, "int_array": tuple, "str_array": tuple,
            "float_array": tuple}


class ParamError(ValueError):
    """A bad parameter value: `key` is the parameter, `problem` what is wrong with it."""

    def __init__(self, key: str, problem: str):
        self.key, self.problem = key, problem
        super().__init__(f"{key}: {problem}")


def _num(value: float) -> str:
    return f"{value:g}"  # -5.0 -> -5: the number as the file most likely wrote it


@dataclass(frozen=True)
class Param:
    """One parameter. `kind` is inferred from the default unless given (lists: int_array,
    str_array, float_array). `low`/`high` bound a number (inclusive; `above`: strictly greater than `low`).
    `choices`: the allowed words (a tuple, or a StrEnum whose member the value becomes).
    `check`: a further check of the value, raising ValueError with the problem (or returning the
    value to keep). `any_type`: a scalar of any type, read as its text (`device: 0` is "0").
    `live`: a running node takes a new value (`ros2 param set`); the others are read-only."""

    name: str
    default: Any
    description: str
    kind: str = ""
    low: float | None = None
    high: float | None = None
    above: bool = False
    choices: tuple[str, ...] | type[Enum] = ()
    check: Callable[[Any], Any] | None = None
    any_type: bool = False
    live: bool = False

    def __post_init__(self) -> None:
        if not self.kind:
            kind = "bool" if isinstance(self.default, bool) else type(self.default).__name__
            object.__setattr__(self, "kind", kind)
        assert self.kind in _PYTYPES, f"{self.name}: unknown kind {self.kind}"

    @property
    def constraints(self) -> str:
        """The range or allowed words in words (the descriptor's additional_constraints)."""
        if self.choices:
            return "one of: " + ", ".join(self.choices)
        if self.low is not None and self.high is not None:
            return f"in [{_num(self.low)}, {_num(self.high)}]"
        if self.low is not None:
            return f"{'>' if self.above else '>='} {_num(self.low)}"
        return ""

    def value(self, value: Any) -> Any:
        """`value` checked and in its kind's form (float, tuple, enum member); ParamError if bad."""
        value = self._typed(value)
        if self.kind in ("float", "int") and not self._in_range(value):
            raise ParamError(self.name, f"must be {self.constraints}, got {_num(value)}")
        if self.check is not None:  # first: a registry's check words its own error
            try:
                checked = self.check(value)
            except ValueError as exc:
                raise ParamError(self.name, str(exc)) from None
            value = value if checked is None else checked
        if self.choices:
            if value not in tuple(self.choices):
                raise ParamError(self.name, f"must be one of {[str(c) for c in self.choices]}, got {value!r}")
            if isinstance(self.choices, type):
                value = self.choices(value)
        return value

    def _in_range(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.above else value < self.low):
            return False
        return self.high is None or value <= self.high

    def _typed(self, value: Any) -> Any:
        kind, number = self.kind, isinstance(value, (int, float)) and not isinstance(value, bool)
        if kind == "float":
            if not number:
                raise ParamError(self.name, f"must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ParamError(self.name, f"must be a finite number, got {value!r}")
            return float(value)
        if kind == "int":
            if not number or not isinstance(value, int):
                raise ParamError(self.name, f"must be an integer, got {value!r}")
            return value
        if kind == "bool":
            if not isinstance(value, bool):
                raise ParamError(self.name, f"must be true or false, got {value!r}")
            return value
        if kind == "str":
            if self.any_type and number:
                return str(value)
            if not isinstance(value, str):
                raise ParamError(self.name, f"must be a string, got {value!r}")
            return value
        # A YAML list or rclpy's array; None is an empty list (how rclpy reads "not set").
        item = {"int_array": int, "float_array": (int, float)}.get(kind, str)
        value = () if value is None else value
        if not isinstance(value, (list, tuple, array.array)) or any(
                isinstance(v, bool) or not isinstance(v, item) for v in value):
            what = {"int_array": "integers", "float_array": "numbers"}.get(kind, "strings")
            raise ParamError(self.name, f"must be a list of {what}, got {value!r}")
        return tuple(float(v) for v in value) if kind == "float_array" else tuple(value)


@dataclass(frozen=True)
class NodeParams:
    """One node kind's parameters. `cross` checks values against each other (ParamError)."""

    node: str  # the node's usual name ("" for components: each is named by its section)
    params: tuple[Param, ...]
    cross: Callable[[dict[str, Any]], None] | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def __getitem__(self, name: str) -> Param:
        return next(p for p in self.params if p.name == name)

    def check(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Every parameter's value (its default when absent), checked; ParamError naming the key."""
        out = {p.name: p.value(values.get(p.name, p.default)) for p in self.params}
        if self.cross is not None:
            self.cross(out)
        return out


# -- checks the table's parameters name ---------------------------------------------------------

def topic(value: str) -> None:
    if not _TOPIC.match(value):
        raise ValueError(f"must be a ROS topic name (e.g. /camera/image_raw), got {value!r}")


def in_root(name: str) -> str:
    """A topic name as it resolves in the root namespace: `x` and `/x` are the same there."""
    return "/" + name.lstrip("/")


def _topic_or_empty(value: str) -> None:
    if value:
        topic(value)


def _not_empty(value: str) -> None:
    if not value:
        raise ValueError("must not be empty")


def _component(value: str) -> None:
    if not _COMPONENT.match(value):
        raise ValueError(f"must be a component name or package.module:Class, got {value!r}")


def _size(value: tuple[int, ...]) -> None:
    if value and (len(value) != 2 or min(value) <= 0):
        raise ValueError(f"must be [] or [height, width] > 0, got {list(value)}")


def _three(value: tuple[float, ...]) -> None:
    if len(value) != 3:
        raise ValueError(f"must be 3 numbers, one per channel, got {list(value)}")


def _three_nonzero(value: tuple[float, ...]) -> None:
    _three(value)
    if 0.0 in value:
        raise ValueError(f"must not hold 0 (pixels are divided by it), got {list(value)}")


def _component_cross(v: dict[str, Any]) -> None:
    if v["component"] != "perception":
        return
    if v["model"] == "":
        raise ParamError("model", f"is required: a zoo model ({', '.join(model_names())}), a factory "
                                  "package.module:function, or a .pt, .pt2 or .onnx file")
    try:
        ModelSpec(v["model"], v["weights"], v["input_size"], v["output"]).check()
    except DeclarationError as exc:
        raise ParamError(exc.key, exc.problem) from None


def _camera_cross(v: dict[str, Any]) -> None:
    if (v["width"] == 0) != (v["height"] == 0):
        raise ParamError("width", "width and height must both be positive or both 0 (the source's size), "
                                  f"got {v['width']}x{v['height']}")


# -- the tables ---------------------------------------------------------------------------------

COORDINATOR = NodeParams("aaron_coordinator", (
    Param("policy", "aaron", "scheduling policy", choices=tuple(POLICIES), check=check_policy, live=True),
    Param("versions", "adaptive", "kernel version setting", choices=SETTINGS, check=check_versions, live=True),
    Param("device", "auto", "lanes on: auto (CUDA when present), cpu or cuda", choices=DEVICES),
    Param("lanes", 0, "lane count; 0 = one per CPU core / the policy's own", low=0),
    Param("kernel_bag_dir", KERNEL_BAG_DIR, "folder of kernel bags, one per model; relative to the "
          "working directory", check=_not_empty),
    Param("status_rate_hz", 1.0, "CoordinatorStatus and /diagnostics rate (Hz)", low=0.0, above=True, live=True),
    Param("miss_warn_threshold", 0.05, "a task missing more than this share of deadlines is a WARN on "
          "/diagnostics", low=0.0, high=1.0, live=True),
    Param("publish_grants", False, "publish every StageGrant on /aaron/grants (debugging)"),
    Param("publish_outcomes", False, "publish how every frame ended (FrameOutcome, batched in FrameOutcomes at "
          "10 Hz) on /aaron/outcomes"),
))

COMPONENT = NodeParams("", (
    Param("component", "perception", "what to load: a name (entry point group aaron_ros.components) or "
          "package.module:Class", check=_component),
    Param("model", "", "required for perception: a zoo model (`aaron-ros models`), a factory "
          "package.module:function returning an nn.Module, a TorchScript (.pt), torch.export (.pt2) or ONNX "
          "(.onnx) file (README \"Your own model\")"),
    Param("weights", "", "a state-dict file for a zoo or factory model; '' = the zoo's seeded weights, or "
          "what the factory returns"),
    Param("output", "", "what the model's output is: classes ((1, C) logits), detections ((1, N, 6) rows "
          "x1, y1, x2, y2, score, class in input pixels), mask ((1, C, H, W) logits) or raw (one tensor of any "
          "shape, passed through in InferenceResult.raw); '' = the zoo's own (required for other models)",
          choices=("",) + tuple(OutputKind)),
    Param("kernel_bag", "", "its kernel bag folder; '' = <kernel_bag_dir>/<model>"),
    Param("input_topic", "camera/image_raw", "camera topic in (see image_transport)", check=topic),
    Param("output_topic", "", "InferenceResult topic out, unique per component; '' = aaron/<name>/result "
          "(in the namespace)",
          check=_topic_or_empty),
    Param("deadline_ms", 100.0, "relative deadline of a frame (ms)", low=0.0, above=True, live=True),
    Param("criticality", Criticality.NORMAL.value, "critical tasks are served first", choices=Criticality),
    Param("max_rate_hz", 30.0, "frames beyond this rate are dropped and counted (Hz)", low=0.0, above=True,
          live=True),
    Param("overload", Overload.DROP_OLDEST.value, "what a full queue does with one more frame",
          choices=Overload, live=True),
    Param("queue_size", 2, "frames waiting at most", low=1),
    Param("input_size", (), "[height, width] frames are resized to; [] = the model's own (zoo, ONNX); "
          "required for factory, .pt and .pt2 models", kind="int_array", check=_size),
    Param("mean", IMAGENET_MEAN, "per-channel mean subtracted from pixels scaled to [0, 1], in the model's "
          "channel order", kind="float_array", check=_three),
    Param("std", IMAGENET_STD, "per-channel divisor after the mean", kind="float_array", check=_three_nonzero),
    Param("channel_order", "rgb", "the channel order the model takes (the image's is converted)",
          choices=("rgb", "bgr")),
    Param("resize", "stretch", "how a frame is fitted to input_size: stretch (each axis on its own) or "
          "letterbox (aspect kept, centred, padded with grey 114); boxes and masks are mapped back to the "
          "image either way", choices=("stretch", "letterbox")),
    Param("qos", "sensor_data", "input subscription QoS (sensor_data: best effort)", choices=QOS_PROFILES),
    Param("labels", "", "a text file of class names, one per line, line k naming class id k: results carry "
          "them in class_names; '' = ids only"),
    Param("annotated_hz", 0.0, "publish the image annotated with the result (boxes and labels, the top "
          "class, or the mask over it) on <result topic>/annotated at most this often (Hz), while a node "
          "subscribes; 0 = never",
          low=0.0),
    Param("image_transport", Transport.RAW.value, "raw: sensor_msgs/Image on input_topic; compressed: "
          "sensor_msgs/CompressedImage (jpeg, png) on <input_topic>/compressed, decoded inside the "
          "frame's first grant", choices=Transport),
), cross=_component_cross)

BAG_PLAYER = NodeParams("bag_player", (
    Param("bag", "", "rosbag2 to replay: a folder, .mcap or .db3"),
    Param("rate", 1.0, "playback speed (2.0 = twice as fast)", low=0.0, above=True),
    Param("loop", False, "replay forever"),
    Param("start_offset_s", 0.0, "skip the bag's first seconds", low=0.0),
    Param("lead_in_s", 0.0, "first play this many seconds of the bag, then the bag from start_offset_s with no pause: "
          "a warm-up a benchmark leaves out by stamp (needs restamp)", low=0.0),
    Param("remap", (), "bag topic -> published topic: [\"/recorded:=/camera/image_raw\", ...]",
          kind="str_array"),
    Param("restamp", True, "stamp frames when published"),
    Param("qos", "sensor_data", "publisher QoS (sensor_data: best effort)", choices=QOS_PROFILES),
))

CAMERA = NodeParams("camera", (
    Param("device", "0", "camera index (\"0\") or a video file / stream URL", any_type=True),
    Param("topic", "camera/image_raw", "where frames are published (relative: in the namespace)", check=topic),
    Param("rate_hz", 30.0, "frames per second; 0 = the source's own (a video file's frame rate, "
          "or as fast as a camera delivers)", low=0.0),
    Param("width", 0, "frame width; 0 (with height 0) = the source's", low=0),
    Param("height", 0, "frame height; 0 (with width 0) = the source's", low=0),
    Param("loop", True, "restart a video file at its end"),
    Param("frame_id", "camera", "header frame id"),
    Param("encoding", "bgr8", "image encoding", choices=ENCODINGS),
    Param("qos", "sensor_data", "publisher QoS (sensor_data: best effort; reliable for frames too large for it)",
          choices=QOS_PROFILES),
), cross=_camera_cross)

CONTAINER = NodeParams("aaron_container", (
    Param("components", (), "component node names, one section each", kind="str_array"),
    Param("executor", "events", "what runs the nodes' callbacks: events (rclpy's experimental EventsExecutor, "
          "where this rclpy has it: half the executor's CPU per frame) or single (SingleThreadedExecutor)",
          choices=EXECUTORS),
    Param("autostart", True, "configure and activate at start; false: wait, unconfigured, for a lifecycle "
          "manager (or `ros2 lifecycle set /aaron_container configure`, then `activate`)"),
))

# Nodes the container may start besides the components, by their usual names.
SOURCES = {t.node: t for t in (BAG_PLAYER, CAMERA)}


# -- the values of the coordinator and of a component, as dataclasses made from the tables -------

def _checked(self) -> None:
    """__post_init__ of a table's dataclass: every field checked and in its kind's form."""
    values = self.TABLE.check({name: getattr(self, name) for name in self.TABLE.names})
    for name, value in values.items():
        object.__setattr__(self, name, value)  # frozen


def from_table(table: NodeParams):
    """Class decorator: a frozen dataclass with one field per parameter of `table` (after the
    class's own fields), checked on construction."""

    def wrap(cls):
        annotations = dict(cls.__dict__.get("__annotations__", {}))
        for p in table.params:
            annotations[p.name] = _PYTYPES[p.kind]
            setattr(cls, p.name, p.default)
        cls.__annotations__ = annotations
        cls.TABLE = table
        if "__post_init__" not in cls.__dict__:
            cls.__post_init__ = _checked
        return dataclass(frozen=True)(cls)

    return wrap


@from_table(COORDINATOR)
class CoordinatorParams:
    """The coordinator node's parameters (section `aaron_coordinator`)."""


@from_table(COMPONENT)
class ComponentParams:
    """One component node's parameters; its name is the section's key, not a parameter."""

    name: str = ""

    def __post_init__(self) -> None:
        if not _NODE_NAME.match(self.name):
            raise ParamError("name", f"must be a ROS node name (letters, digits, _), got {self.name!r}")
        _checked(self)

    @property
    def result_topic(self) -> str:
        """The topic results are published on: output_topic, or aaron/<name>/result (in the node's
        namespace)."""
        return self.output_topic or f"aaron/{self.name}/result"

    @property
    def image_topic(self) -> str:
        """The topic images arrive on: input_topic, or <input_topic>/compressed."""
        return self.image_transport.topic(self.input_topic)

    @property
    def model_spec(self) -> ModelSpec:
        """The model as declared (`model`, `weights`, `input_size`, `output`)."""
        return ModelSpec(self.model, self.weights, self.input_size, self.output)

    def kernel_bag_path(self, kernel_bag_dir: str | os.PathLike) -> Path:
        """This component's kernel bag folder: kernel_bag, or <kernel_bag_dir>/<model's name>."""
        return Path(self.kernel_bag) if self.kernel_bag else Path(kernel_bag_dir) / model_key(self.model)

    def task_spec(self) -> TaskSpec:
        return TaskSpec(name=self.name, model=model_key(self.model), rate_hz=self.max_rate_hz,
                        deadline_ms=self.deadline_ms,
                        criticality=self.criticality, overload=self.overload, queue_size=self.queue_size)


# -- the ROS side: declaring and reading a live node's parameters --------------------------------

def descriptor(p: Param, dynamic: bool = False, ranges: bool = True):
    """`p` as an rcl_interfaces ParameterDescriptor, read-only unless `p.live` (the type is set by
    rclpy)."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    d = ParameterDescriptor(name=p.name, description=p.description, additional_constraints=p.constraints,
                            read_only=not p.live, dynamic_typing=dynamic or p.any_type)
    if ranges and p.kind == "float" and p.low is not None:
        high = math.inf if p.high is None else p.high
        d.floating_point_range = [FloatingPointRange(from_value=float(p.low), to_value=float(high), step=0.0)]
    elif ranges and p.kind == "int" and p.low is not None:
        high = INT64_MAX if p.high is None else p.high
        d.integer_range = [IntegerRange(from_value=int(p.low), to_value=int(high), step=0)]
    return d


def _declare(node: Any, p: Param) -> Any:
    """Declare `p` on `node` (once) and return the value it received, whatever its type.

    Declared typed, with its range, when the value fits; a value rclpy refuses (an integer for a
    float, a string for a number, out of range) is declared again with dynamic typing (then
    without the range) and returned as given, for the table's check to accept or name."""
    if node.has_parameter(p.name):
        return node.get_parameter(p.name).value
    from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
    from rclpy.parameter import Parameter

    array_type = {"int_array": Parameter.Type.INTEGER_ARRAY, "str_array": Parameter.Type.STRING_ARRAY,
                  "float_array": Parameter.Type.DOUBLE_ARRAY}
    empty = p.kind in array_type and not p.default
    typed_default = list(p.default) if isinstance(p.default, tuple) else p.default
    loose_default = None if p.kind in array_type else p.default
    attempts = [(p.any_type, True), (True, True), (True, False)]
    for i, (dynamic, ranges) in enumerate(attempts):
        try:
            if empty and not dynamic:
                return _declare_empty(node, p.name, array_type[p.kind], descriptor(p, dynamic, ranges))
            default = loose_default if dynamic else typed_default
            return node.declare_parameter(p.name, default, descriptor(p, dynamic, ranges)).value
        except (InvalidParameterTypeException, InvalidParameterValueException):
            if i == len(attempts) - 1:
                raise


def _declare_empty(node: Any, name: str, type_: Any, d: Any) -> Any:
    """An array parameter whose default is empty. An empty list has no type of its own, so rclpy
    declares it by its type alone, holding no value: `ros2 param get` of it, and `ros2 param dump`
    of the node, would get nothing back. So it is declared writable, given its typed empty value,
    then made read-only if its descriptor says so (before any on-set callback is added)."""
    from rclpy.parameter import Parameter

    writable = copy.deepcopy(d)  # rclpy keeps the descriptor it is given
    writable.read_only = False
    value = node.declare_parameter(name, type_, writable).value
    if value is None:
        node.set_parameters([Parameter(name, type_, [])])
        value = []
    if d.read_only:
        d.type = writable.type  # which rclpy set from type_
        node.set_descriptor(name, d)
    return value


def declare_params(node: Any, table: NodeParams, build: Callable[[dict], Any] | None = None) -> Any:
    """Declare every parameter of `table` on `node` and check what it received: `build(values)`
    (default: the checked values as a dict). A bad value is a ValueError naming node and key."""
    raw = {p.name: _declare(node, p) for p in table.params}
    try:
        return (build or table.check)(raw)
    except ParamError as exc:
        raise ValueError(f"node {node.get_name()}: parameter {exc.key}: {exc.problem}") from None


def set_live(node: Any, table: NodeParams, params: Sequence[Any], apply: Callable[[Any, dict], None]):
    """A parameter set on a running node (its on-set-parameters callback): each value checked by
    `table` (rclpy refuses the read-only ones before), `apply(new params, changed values)` makes
    them take effect, then `node.params` is the new one. A ValueError from either refuses the set
    with its reason; returns the SetParametersResult."""
    from rcl_interfaces.msg import SetParametersResult

    try:
        values = {p.name: table[p.name].value(p.value) for p in params}
        new = dataclasses.replace(node.params, **values)
        apply(new, values)
    except ValueError as exc:  # ParamError too
        node.get_logger().warning(f"parameter refused: {exc}")
        return SetParametersResult(successful=False, reason=str(exc))
    node.params = new
    node.get_logger().info("set " + ", ".join(f"{k} = {v}" for k, v in values.items()))
    return SetParametersResult(successful=True)


def params_from_node(node: Any, cls: type, name: str | None = None):
    """cls (CoordinatorParams or ComponentParams) from a live rclpy node's parameters, declared
    from cls's table; a component's `name` defaults to the node's name."""
    if any(f.name == "name" for f in fields(cls)):
        name = name or node.get_name()
        return declare_params(node, cls.TABLE, lambda values: cls(name=name, **values))
    return declare_params(node, cls.TABLE, lambda values: cls(**values))
