"""Components by name, so a user's own node class plugs into the container.

A component is a class the container instantiates as a node. It is found by name:

1. the entry point group `aaron_ros.components` of any installed distribution: this package's own
   (declared in setup.py, whose egg-info every build installs, the venv's and colcon's alike), or
   a user package's (`[project.entry-points."aaron_ros.components"] mine = "my_pkg.nodes:Mine"`);
2. a literal `package.module:Class`.

Importing a component may import rclpy; this module itself does not.
"""
from __future__ import annotations

import importlib
from importlib.metadata import entry_points

GROUP = "aaron_ros.components"


def component_names() -> list[str]:
    """Names find_component knows: the entry points of GROUP."""
    return sorted({ep.name for ep in entry_points(group=GROUP)})


def _load_target(name: str, target: str) -> type:
    module_name, _, attr = target.partition(":")
    try:
        obj = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except Exception as exc:  # ImportError, AttributeError, or whatever the module raised on import
        raise ValueError(f"component {name!r}: cannot load {target}: {type(exc).__name__}: {exc}") from exc
    return _must_be_class(name, target, obj)


def _must_be_class(name: str, target: str, obj: object) -> type:
    if not isinstance(obj, type):
        raise ValueError(f"component {name!r}: {target} is a {type(obj).__name__}, not a class")
    return obj


def find_component(name: str) -> type:
    """The component class for `name`; ValueError naming known names, or the import failure."""
    for ep in entry_points(group=GROUP):
        if ep.name == name:
            try:
                obj = ep.load()
            except Exception as exc:
                raise ValueError(f"component {name!r}: cannot load entry point {ep.value} "
                                 f"({GROUP}): {type(exc).__name__}: {exc}") from exc
            return _must_be_class(name, ep.value, obj)
    module_name, colon, attr = name.partition(":")
    if colon and module_name and attr:
        return _load_target(name, name)
    raise ValueError(f"unknown component {name!r}; known: {component_names()} "
                     f"(or package.module:Class; plug-ins register in entry point group {GROUP!r})")
