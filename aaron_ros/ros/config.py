"""The container's configuration: a ROS 2 parameter file, read with or without ROS.

Layout (the file `aaron-ros run` and `ros2 launch` take, and rclpy's `--params-file` reads):

    /**:                       # shared: applies to every node that does not set the key itself
      ros__parameters: {input_topic: /camera/image_raw, qos: sensor_data}
    aaron_container:
      ros__parameters: {components: [detector, signs]}     # node names, one section each
    aaron_coordinator:
      ros__parameters: {policy: aaron, ...}                 # CoordinatorParams
    detector:
      ros__parameters: {model: tiny_yolo, deadline_ms: 50.0, ...}   # ComponentParams
    bag_player: / camera:      # other nodes: kept raw, for the container to pass on

Every value is checked in the dataclasses' `__post_init__`, the one place both ways in go
through: `load_config` (no rclpy; the bench and tests use it) and `params_from_node` (a live
node's parameters). This module never imports rclpy at module level.
"""
from __future__ import annotations

import array
import dataclasses
import difflib
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from aaron_ros.coordinator.policies import POLICIES
from aaron_ros.coordinator.types import Criticality, Overload, TaskSpec
from aaron_ros.coordinator.versions import SETTINGS
from aaron_ros.models.registry import ZOO, model_names

SHARED = "/**"
CONTAINER_NODE = "aaron_container"
COORDINATOR_NODE = "aaron_coordinator"
PARAMS = "ros__parameters"
CONTAINER_KEYS = ("components",)
# Declared by every rclpy node: accepted in any section, never passed to the dataclasses.
STANDARD_KEYS = ("use_sim_time",)
# Parameters of the image sources (their nodes validate them); known here so that a shared
# (`/**`) key meant for them is not taken for a typo.
SOURCE_PARAMS = {
    "bag_player": ("bag", "rate", "loop", "start_offset_s", "remap", "restamp", "qos"),
    "camera": ("device", "topic", "rate_hz", "width", "height", "loop", "frame_id", "encoding"),
}
DEVICES = ("auto", "cpu", "cuda")
QOS_PROFILES = ("sensor_data", "reliable")

_NODE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TOPIC = re.compile(r"^(~/|/)?[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$")
_COMPONENT = re.compile(r"^[A-Za-z_][\w.]*(:[A-Za-z_][\w.]*)?$")


class ParamError(ValueError):
    """A bad parameter value: `key` is the parameter, `problem` what is wrong with it."""

    def __init__(self, key: str, problem: str):
        self.key, self.problem = key, problem
        super().__init__(f"{key}: {problem}")


def _doc(text: str) -> dict:
    return {"doc": text}


def _kind(f: dataclasses.Field) -> str:
    """A field's parameter type, from its default: str, float, int, bool or int_array."""
    if f.default is dataclasses.MISSING:
        return "int_array"  # the only field with a default_factory
    if isinstance(f.default, bool):
        return "bool"
    return type(f.default).__name__


def _check_types(obj: Any) -> None:
    """Coerce and type-check every field (frozen: through object.__setattr__)."""
    for f in dataclasses.fields(obj):
        value, kind = getattr(obj, f.name), _kind(f)
        if kind == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ParamError(f.name, f"must be a number, got {value!r}")
            object.__setattr__(obj, f.name, float(value))
        elif kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise ParamError(f.name, f"must be an integer, got {value!r}")
        elif kind == "bool":
            if not isinstance(value, bool):
                raise ParamError(f.name, f"must be true or false, got {value!r}")
        elif kind == "str":
            if not isinstance(value, str):
                raise ParamError(f.name, f"must be a string, got {value!r}")
        else:  # int_array: a YAML list or rclpy's array; None is an empty list (rclpy NOT_SET)
            if value is None:
                value = ()
            if not isinstance(value, (list, tuple, array.array)) or any(
                    isinstance(v, bool) or not isinstance(v, int) for v in value):
                raise ParamError(f.name, f"must be a list of integers, got {value!r}")
            object.__setattr__(obj, f.name, tuple(value))


def _one_of(key: str, value: str, allowed) -> None:
    if value not in allowed:
        raise ParamError(key, f"must be one of {list(allowed)}, got {value!r}")


def _num(value: float) -> str:
    return f"{value:g}"  # -5.0 -> -5: the number as the file most likely wrote it


def _positive(key: str, value: float) -> None:
    if not (value > 0 and math.isfinite(value)):
        raise ParamError(key, f"must be > 0, got {_num(value)}")


def _topic(key: str, value: str, empty_ok: bool = False) -> None:
    if value == "" and empty_ok:
        return
    if not _TOPIC.match(value):
        raise ParamError(key, f"must be a ROS topic name (e.g. /camera/image_raw), got {value!r}")


@dataclass(frozen=True)
class CoordinatorParams:
    """The coordinator node's parameters (section `aaron_coordinator`)."""

    policy: str = field(default="aaron", metadata=_doc("scheduling policy: " + ", ".join(POLICIES)))
    versions: str = field(default="adaptive", metadata=_doc("kernel version setting: " + ", ".join(SETTINGS)))
    device: str = field(default="auto", metadata=_doc("lanes on: auto (CUDA when present), cpu or cuda"))
    lanes: int = field(default=0, metadata=_doc("lane count; 0 = one per CPU core / the policy's default"))
    kernel_bag_dir: str = field(default="bags", metadata=_doc(
        "folder of kernel bags, one per model (relative: to the working directory)"))
    status_rate_hz: float = field(default=1.0, metadata=_doc("CoordinatorStatus and /diagnostics rate"))
    miss_warn_threshold: float = field(default=0.05, metadata=_doc(
        "deadline-miss rate above which a task is a WARN on /diagnostics"))
    publish_grants: bool = field(default=False, metadata=_doc("publish every StageGrant (debugging)"))

    def __post_init__(self) -> None:
        _check_types(self)
        _one_of("policy", self.policy, POLICIES)
        _one_of("versions", self.versions, SETTINGS)
        _one_of("device", self.device, DEVICES)
        if self.lanes < 0:
            raise ParamError("lanes", f"must be >= 0 (0 = one per CPU core), got {self.lanes}")
        if not self.kernel_bag_dir:
            raise ParamError("kernel_bag_dir", "must be a folder path, got ''")
        _positive("status_rate_hz", self.status_rate_hz)
        if not 0.0 <= self.miss_warn_threshold <= 1.0:
            raise ParamError("miss_warn_threshold", f"must be in [0, 1], got {_num(self.miss_warn_threshold)}")


@dataclass(frozen=True)
class ComponentParams:
    """One component node's parameters (its section's key is the node name)."""

    name: str = field(default="", metadata=_doc("node name (the section's key)"))
    component: str = field(default="perception", metadata=_doc(
        "component to load: a name (entry point group aaron_ros.components) or package.module:Class"))
    model: str = field(default="", metadata=_doc("zoo model (required for perception)"))
    kernel_bag: str = field(default="", metadata=_doc("kernel bag folder; '' = <kernel_bag_dir>/<model>"))
    input_topic: str = field(default="/camera/image_raw", metadata=_doc("sensor_msgs/Image topic in"))
    output_topic: str = field(default="", metadata=_doc("InferenceResult topic; '' = /aaron/<name>/result"))
    deadline_ms: float = field(default=100.0, metadata=_doc("relative deadline of a frame"))
    criticality: str = field(default="normal", metadata=_doc("critical or normal"))
    max_rate_hz: float = field(default=30.0, metadata=_doc("frames beyond this rate are dropped and counted"))
    overload: str = field(default="drop_oldest", metadata=_doc("drop_oldest, drop_newest or keep_latest"))
    queue_size: int = field(default=2, metadata=_doc("frames waiting at most"))
    input_size: tuple[int, ...] = field(default_factory=tuple, metadata=_doc(
        "[height, width] the model takes; [] = the model's own (the only size kernel bags hold)"))
    qos: str = field(default="sensor_data", metadata=_doc("input subscription QoS: sensor_data or reliable"))

    def __post_init__(self) -> None:
        _check_types(self)
        if not _NODE_NAME.match(self.name):
            raise ParamError("name", f"must be a ROS node name (letters, digits, _), got {self.name!r}")
        if not _COMPONENT.match(self.component):
            raise ParamError("component", f"must be a component name or package.module:Class, got {self.component!r}")
        if self.component == "perception":
            if self.model not in ZOO:
                what = "is required" if self.model == "" else f"unknown model {self.model!r}"
                raise ParamError("model", f"{what}; known: {model_names()}")
        _topic("input_topic", self.input_topic)
        _topic("output_topic", self.output_topic, empty_ok=True)
        _positive("deadline_ms", self.deadline_ms)
        _one_of("criticality", self.criticality, tuple(Criticality))
        _positive("max_rate_hz", self.max_rate_hz)
        _one_of("overload", self.overload, tuple(Overload))
        if self.queue_size < 1:
            raise ParamError("queue_size", f"must be >= 1, got {self.queue_size}")
        if self.input_size:
            if len(self.input_size) != 2 or min(self.input_size) <= 0:
                raise ParamError("input_size", f"must be [] or [height, width] > 0, got {list(self.input_size)}")
            if self.model in ZOO:
                own = list(ZOO[self.model].input_shape[1:])
                if list(self.input_size) != own:
                    raise ParamError("input_size", (
                        f"{self.model} takes {own} and its kernel bags are built for that size (frames are "
                        f"resized to it): leave input_size as [] or set {own}, got {list(self.input_size)}"))
        _one_of("qos", self.qos, QOS_PROFILES)

    @property
    def result_topic(self) -> str:
        """The topic results are published on: output_topic, or /aaron/<name>/result."""
        return self.output_topic or f"/aaron/{self.name}/result"

    def bag_path(self, kernel_bag_dir: str | os.PathLike) -> Path:
        """This component's kernel bag folder: kernel_bag, or <kernel_bag_dir>/<model>."""
        return Path(self.kernel_bag) if self.kernel_bag else Path(kernel_bag_dir) / self.model

    def task_spec(self) -> TaskSpec:
        return TaskSpec(name=self.name, model=self.model, rate_hz=self.max_rate_hz, deadline_ms=self.deadline_ms,
                        criticality=self.criticality, overload=self.overload, queue_size=self.queue_size)


@dataclass(frozen=True)
class ContainerConfig:
    """A whole parameter file, checked."""

    path: Path
    coordinator: CoordinatorParams
    components: list[ComponentParams]
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)  # other nodes' own parameters, raw
    shared: dict[str, Any] = field(default_factory=dict)  # the `/**` parameters, raw

    def component(self, name: str) -> ComponentParams:
        for c in self.components:
            if c.name == name:
                return c
        raise KeyError(f"{self.path}: no component {name!r}; components: {[c.name for c in self.components]}")

    def tasks(self) -> list[TaskSpec]:
        return [c.task_spec() for c in self.components]

    def kernel_bag(self, component: str | ComponentParams) -> Path:
        c = self.component(component) if isinstance(component, str) else component
        return c.bag_path(self.coordinator.kernel_bag_dir)

    def params_for(self, node: str) -> dict[str, Any]:
        """What a ROS node named `node` receives from the file: `/**` under its own section."""
        return {**self.shared, **self.nodes.get(node, {})}


def _field_names(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if f.name != "name"]


COORDINATOR_KEYS = tuple(_field_names(CoordinatorParams))
COMPONENT_KEYS = tuple(_field_names(ComponentParams))


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice (PyYAML would keep the last silently)."""


def _mapping_without_duplicates(loader: _Loader, node: yaml.MappingNode, deep: bool = False):
    loader.flatten_mapping(node)
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        except TypeError:  # unhashable key: construct_mapping says so
            pass
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc}") from None
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.problem and exc.context:  # e.g. "while parsing a flow sequence", where it began
            began = f" at line {exc.context_mark.line + 1}" if exc.context_mark else ""
            problem += f" ({exc.context}{began})"
        raise ValueError(f"{path}: YAML error{where}: {problem}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: YAML error: {exc}") from None


def _unknown(where: str, keys, known) -> None:
    for key in keys:
        if key in known:
            continue
        close = difflib.get_close_matches(str(key), list(known), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ValueError(f"{where}.{PARAMS}.{key}: unknown key; {hint}known: {sorted(known)}")


def _build(file: str, cls, section: str, own: dict, shared: dict, **extra):
    """cls from a section's own parameters over the shared ones; errors name where the value came from."""
    keys = _field_names(cls)
    values = {k: shared[k] for k in keys if k in shared}
    values.update({k: v for k, v in own.items() if k in keys})
    try:
        return cls(**extra, **values)
    except ParamError as exc:
        if exc.key in own or exc.key not in shared:
            raise ValueError(f"{file}: {section}.{PARAMS}.{exc.key}: {exc.problem}") from None
        raise ValueError(f"{file}: {SHARED}.{PARAMS}.{exc.key}: {exc.problem} (as applied to {section})") from None


def load_config(path: str | os.PathLike) -> ContainerConfig:
    """Read and check a container parameter file; any problem is a ValueError naming file and key."""
    path = Path(path)
    file = str(path)
    data = _read_yaml(path)
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{file}: expected a ROS 2 parameter file (node name: {{{PARAMS}: ...}}), "
                         f"got {type(data).__name__}")

    sections: dict[str, dict] = {}
    for key, body in data.items():
        if not isinstance(key, str):
            raise ValueError(f"{file}: {key!r}: node names must be strings")
        name = key if key == SHARED else key.lstrip("/")
        if name in sections:
            raise ValueError(f"{file}: {key}: node {name!r} has two sections")
        if not isinstance(body, dict) or PARAMS not in body:
            raise ValueError(f"{file}: {key}: missing '{PARAMS}:' (each node's parameters go under "
                             f"{key}: {{{PARAMS}: {{...}}}})")
        extra = sorted(set(body) - {PARAMS}, key=str)
        if extra:
            raise ValueError(f"{file}: {key}.{extra[0]}: unexpected; only '{PARAMS}' belongs under a node "
                             "(namespaced sections are not supported)")
        params = body[PARAMS] if body[PARAMS] is not None else {}
        if not isinstance(params, dict):
            raise ValueError(f"{file}: {key}.{PARAMS}: must be a mapping of parameter: value, got {params!r}")
        bad = [k for k in params if not isinstance(k, str)]
        if bad:
            raise ValueError(f"{file}: {key}.{PARAMS}.{bad[0]!r}: parameter names must be strings")
        sections[name] = params

    if CONTAINER_NODE not in sections:
        raise ValueError(f"{file}: {CONTAINER_NODE}: missing; it lists the components: "
                         f"{CONTAINER_NODE}: {{{PARAMS}: {{components: [detector, ...]}}}}")
    container = sections[CONTAINER_NODE]
    _unknown(f"{file}: {CONTAINER_NODE}", container, CONTAINER_KEYS + STANDARD_KEYS)
    names = container.get("components")
    where = f"{file}: {CONTAINER_NODE}.{PARAMS}.components"
    if not isinstance(names, list) or not names:
        raise ValueError(f"{where}: must be a non-empty list of component node names, got {names!r}")
    for n in names:
        if not isinstance(n, str):
            raise ValueError(f"{where}: {n!r} is not a node name (quote it if YAML read it as another type)")
        if n in (SHARED, CONTAINER_NODE, COORDINATOR_NODE):
            raise ValueError(f"{where}: {n!r} is reserved, not a component")
        if names.count(n) > 1:
            raise ValueError(f"{where}: {n!r} is listed twice")
        if n not in sections:
            raise ValueError(f"{where}: {n!r} is listed but the file has no '{n}:' section")

    shared = sections.get(SHARED, {})
    others = [n for n in sections if n not in (SHARED, CONTAINER_NODE, COORDINATOR_NODE, *names)]
    shared_known = set(COORDINATOR_KEYS) | set(COMPONENT_KEYS) | set(STANDARD_KEYS)
    for n in SOURCE_PARAMS:
        shared_known |= set(SOURCE_PARAMS[n])
    for n in others:
        shared_known |= set(sections[n])
    _unknown(f"{file}: {SHARED}", shared, shared_known)

    own = sections.get(COORDINATOR_NODE, {})
    _unknown(f"{file}: {COORDINATOR_NODE}", own, COORDINATOR_KEYS + STANDARD_KEYS)
    coordinator = _build(file, CoordinatorParams, COORDINATOR_NODE, own, shared)

    from aaron_ros.ros.components import component_names  # entry points: scanned once per file

    known_components = None
    components: list[ComponentParams] = []
    topics: dict[str, str] = {}
    for n in names:
        own = sections[n]
        _unknown(f"{file}: {n}", own, COMPONENT_KEYS + STANDARD_KEYS)
        c = _build(file, ComponentParams, n, own, shared, name=n)
        if ":" not in c.component:
            known_components = known_components if known_components is not None else component_names()
            if c.component not in known_components:
                src = n if "component" in own else SHARED
                raise ValueError(f"{file}: {src}.{PARAMS}.component: unknown component {c.component!r}; "
                                 f"known: {known_components} (or package.module:Class)")
        if c.result_topic in topics:
            src = SHARED if "output_topic" in shared and "output_topic" not in own else n
            raise ValueError(f"{file}: {src}.{PARAMS}.output_topic: {c.result_topic} is already the output "
                             f"of {topics[c.result_topic]}; each component needs its own")
        topics[c.result_topic] = n
        components.append(c)

    return ContainerConfig(path=path, coordinator=coordinator, components=components,
                           nodes={n: dict(sections[n]) for n in others}, shared=dict(shared))


def params_from_node(node: Any, cls: type, name: str | None = None):
    """cls (CoordinatorParams or ComponentParams) from a live rclpy node's parameters.

    Declares every field but `name` as a read-only parameter typed by its default (input_size an
    integer array) and builds cls from what the node received (`--params-file`, overrides), so
    the checks are the dataclass's. A value of another type than declared (an integer for a
    float, a string for a number) is read as given and left to those checks, which turn an
    integer into a float and name the key of anything else. `name` defaults to the node's name.
    """
    from rcl_interfaces.msg import ParameterDescriptor
    from rclpy.exceptions import InvalidParameterTypeException
    from rclpy.parameter import Parameter

    name = name or node.get_name()
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name == "name":
            continue
        kind = _kind(f)
        if node.has_parameter(f.name):
            values[f.name] = node.get_parameter(f.name).value
            continue
        doc = f.metadata.get("doc", "")
        descriptor = ParameterDescriptor(description=doc, read_only=True)
        # An empty default has no type of its own: input_size is declared by type alone.
        default = Parameter.Type.INTEGER_ARRAY if kind == "int_array" else f.default
        try:
            param = node.declare_parameter(f.name, default, descriptor)
        except InvalidParameterTypeException:
            loose = ParameterDescriptor(description=doc, read_only=True, dynamic_typing=True)
            param = node.declare_parameter(f.name, None, loose)
        values[f.name] = param.value
    has_name = any(f.name == "name" for f in dataclasses.fields(cls))
    try:
        return cls(name=name, **values) if has_name else cls(**values)
    except ParamError as exc:
        raise ValueError(f"node {name}: parameter {exc.key}: {exc.problem}") from None
