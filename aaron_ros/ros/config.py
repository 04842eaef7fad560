"""The container's parameter file, read with or without ROS: what a file adds to the checks of
each node's declarations (`aaron_ros.ros.params`).

Layout (the file `aaron-ros run` and `ros2 launch` take, and rclpy's `--params-file` reads):

    /**:                       # shared: applies to every node that does not set the key itself
      ros__parameters: {input_topic: /camera/image_raw, qos: sensor_data}
    aaron_container:
      ros__parameters: {components: [detector, signs]}     # node names, one section each
    aaron_coordinator:
      ros__parameters: {policy: aaron, ...}                 # params.COORDINATOR
    detector:
      ros__parameters: {model: tiny_yolo, deadline_ms: 50.0, ...}   # params.COMPONENT
    bag_player: / camera:      # the image sources: params.SOURCES; other sections are kept raw

Each value is checked by its node's table (the same check a live node's parameters get); this
module adds the file's own: sections, `/**` keys, unknown keys (with the closest known one), YAML
syntax and keys given twice (with line), listed components without a section, duplicate output
topics. Every error names the file and the key. No rclpy here.
"""
from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from aaron_ros.common.paths import kernel_bag_root
from aaron_ros.coordinator.types import TaskSpec
from aaron_ros.ros.params import (
    COMPONENT,
    CONTAINER,
    COORDINATOR,
    SOURCES,
    ComponentParams,
    CoordinatorParams,
    NodeParams,
    ParamError,
    in_root,
)

SHARED = "/**"
CONTAINER_NODE = CONTAINER.node
COORDINATOR_NODE = COORDINATOR.node
PARAMS = "ros__parameters"
# Declared by every rclpy node: accepted in any section, never checked here.
STANDARD_KEYS = ("use_sim_time",)


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
        """The component's kernel bag folder, as the running container finds it."""
        c = self.component(component) if isinstance(component, str) else component
        return c.kernel_bag_path(kernel_bag_root(self.coordinator.kernel_bag_dir))

    def params_for(self, node: str) -> dict[str, Any]:
        """What a ROS node named `node` receives from the file: `/**` under its own section."""
        return {**self.shared, **self.nodes.get(node, {})}


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


def in_any_namespace(path: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """The parameter file with each plain node name `NAME` as `/**/NAME`, written to `out_dir`: in
    a file, a node is named by its fully qualified name, so plain names would miss the nodes once
    a namespace (`-r __ns:=/car1`) moves them. Without a namespace it means the same."""
    data = _read_yaml(Path(path))
    out = Path(out_dir) / Path(path).name
    qualified = {k if str(k).startswith("/") else f"/**/{k}": v for k, v in data.items()}
    out.write_text(yaml.safe_dump(qualified, sort_keys=False))
    return out


def _unknown(where: str, keys, known) -> None:
    for key in keys:
        if key in known:
            continue
        close = difflib.get_close_matches(str(key), list(known), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ValueError(f"{where}.{PARAMS}.{key}: unknown key; {hint}known: {sorted(known)}")


def _build(file: str, table: NodeParams, section: str, own: dict, shared: dict, make: Callable[[dict], Any]):
    """make(values) from a section's own parameters over the shared ones its table knows; the
    section's unknown keys and bad values are errors naming where the value came from."""
    _unknown(f"{file}: {section}", own, table.names + STANDARD_KEYS)
    values = {k: shared[k] for k in table.names if k in shared}
    values.update({k: v for k, v in own.items() if k in table.names})
    try:
        return make(values)
    except ParamError as exc:
        if exc.key in own or exc.key not in shared:
            raise ValueError(f"{file}: {section}.{PARAMS}.{exc.key}: {exc.problem}") from None
        raise ValueError(f"{file}: {SHARED}.{PARAMS}.{exc.key}: {exc.problem} (as applied to {section})") from None


def _sections(file: str, data: Any) -> dict[str, dict]:
    """node name -> its parameters, the layout checked (a leading / of a node name dropped)."""
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
    return sections


def _component_names(file: str, sections: dict[str, dict]) -> list[str]:
    if CONTAINER_NODE not in sections:
        raise ValueError(f"{file}: {CONTAINER_NODE}: missing; it lists the components: "
                         f"{CONTAINER_NODE}: {{{PARAMS}: {{components: [detector, ...]}}}}")
    container = sections[CONTAINER_NODE]
    _unknown(f"{file}: {CONTAINER_NODE}", container, CONTAINER.names + STANDARD_KEYS)
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
    return names


def _same_declaration(file: str, first: ComponentParams, c: ComponentParams) -> None:
    """Components share a model by its name, so they must declare it alike (the container loads
    it once)."""
    a, b = first.model_spec, c.model_spec
    differ = [f"{f.name} {getattr(a, f.name)!r} against {getattr(b, f.name)!r}" for f in fields(a)
              if getattr(a, f.name) != getattr(b, f.name)]
    if differ:
        raise ValueError(f"{file}: {c.name}.{PARAMS}: model {c.model_spec.key} is declared by {first.name} too, "
                         f"differently ({'; '.join(differ)}): the container loads a model once, so every "
                         "component on it declares it alike")


def load_config(path: str | os.PathLike) -> ContainerConfig:
    """Read and check a container parameter file; any problem is a ValueError naming file and key."""
    path = Path(path)
    file = str(path)
    sections = _sections(file, _read_yaml(path))
    names = _component_names(file, sections)
    shared = sections.get(SHARED, {})
    others = [n for n in sections if n not in (SHARED, CONTAINER_NODE, COORDINATOR_NODE, *names)]
    shared_known = set(STANDARD_KEYS).union(COORDINATOR.names, COMPONENT.names, *(t.names for t in SOURCES.values()),
                                            *(sections[n] for n in others if n not in SOURCES))
    _unknown(f"{file}: {SHARED}", shared, shared_known)

    coordinator = _build(file, COORDINATOR, COORDINATOR_NODE, sections.get(COORDINATOR_NODE, {}), shared,
                         lambda values: CoordinatorParams(**values))
    for n in others:
        if n in SOURCES:
            _build(file, SOURCES[n], n, sections[n], shared, SOURCES[n].check)

    from aaron_ros.ros.components import component_names  # entry points: scanned once per file

    known_components = None
    components: list[ComponentParams] = []
    topics: dict[str, str] = {}
    declared: dict[str, ComponentParams] = {}  # model -> the first component declaring it
    for n in names:
        own = sections[n]
        c = _build(file, COMPONENT, n, own, shared, lambda values, n=n: ComponentParams(name=n, **values))
        if ":" not in c.component:
            known_components = known_components if known_components is not None else component_names()
            if c.component not in known_components:
                src = n if "component" in own else SHARED
                raise ValueError(f"{file}: {src}.{PARAMS}.component: unknown component {c.component!r}; "
                                 f"known: {known_components} (or package.module:Class)")
        where = in_root(c.result_topic)  # relative and absolute names meet without a namespace
        if where in topics:
            src = SHARED if "output_topic" in shared and "output_topic" not in own else n
            raise ValueError(f"{file}: {src}.{PARAMS}.output_topic: {c.result_topic} is already the output "
                             f"of {topics[where]}; each component needs its own")
        topics[where] = n
        if c.model:
            _same_declaration(file, declared.setdefault(c.model_spec.key, c), c)
        components.append(c)

    return ContainerConfig(path=path, coordinator=coordinator, components=components,
                           nodes={n: dict(sections[n]) for n in others}, shared=dict(shared))
