"""launch/aaron.launch.py: read as source here (no `launch` package); run where launch is installed."""
from __future__ import annotations

import ast
import importlib.util
import os
import re
import sys
from pathlib import Path

import pytest

from aaron_ros.cli import _cmd_run, build_parser, split_ros_args

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch" / "aaron.launch.py"
ARGUMENTS = {"config", "bag", "camera", "policy", "namespace", "duration", "log_level", "autostart"}


def _name(func: ast.expr) -> str:
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and _name(n.func) == name]


def _token(node: ast.expr) -> str:
    """A launch argument as text: "run", or $(config) for LaunchConfiguration("config")."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Call) and _name(node.func) == "LaunchConfiguration":
        return f"$({node.args[0].value})"
    if isinstance(node, ast.List):  # substitutions launch joins into one argument
        return "".join(_token(e) for e in node.elts)
    raise AssertionError(f"unexpected launch argument {ast.dump(node)}")


def _resolve(tree: ast.AST, node: ast.expr) -> ast.expr:
    """A plain variable's assigned value, else the node itself."""
    if isinstance(node, ast.Name):
        for a in ast.walk(tree):
            if isinstance(a, ast.Assign) and any(getattr(t, "id", None) == node.id for t in a.targets):
                return a.value
    return node


@pytest.fixture(scope="module")
def tree() -> ast.Module:
    return ast.parse(LAUNCH.read_text(), filename=str(LAUNCH))


def test_defines_generate_launch_description(tree):
    assert "generate_launch_description" in [f.name for f in tree.body if isinstance(f, ast.FunctionDef)]


def test_starts_one_container_process_running_the_run_subcommand(tree):
    (node,) = _calls(tree, "Node")  # ONE process: the container holds every component
    kw = {k.arg: k.value for k in node.keywords}
    assert {k: kw[k].value for k in ("package", "executable", "name", "output")} == {
        "package": "aaron_ros", "executable": "aaron-ros", "name": "aaron_container", "output": "screen"}
    # What the process gets: the arguments with each launch argument substituted, then the
    # `--ros-args` that launch_ros appends. The real command line must read them as meant.
    given = {"config": "my.yaml", "bag": "rec/cam", "camera": "0", "policy": "priority", "duration": "12.5"}
    argv = [re.sub(r"\$\((\w+)\)", lambda m: given[m[1]], _token(e)) for e in kw["arguments"].elts]
    own, ros = split_ros_args([*argv, "--ros-args", "-r", "__node:=aaron_container", "-r", "__ns:=/car1"])
    parsed = build_parser().parse_args(own)
    assert parsed.func is _cmd_run and ros == ["-r", "__node:=aaron_container", "-r", "__ns:=/car1"]
    assert (parsed.config, parsed.bag, parsed.camera, parsed.policy, parsed.duration, parsed.no_table) == (
        "my.yaml", "rec/cam", "0", "priority", 12.5, True)
    # namespace, log_level and autostart travel as ROS arguments (launch_ros puts them after --ros-args).
    assert _token(kw["namespace"]) == "$(namespace)"
    assert [_token(e) for e in kw["ros_arguments"].elts] == ["--log-level", "$(log_level)", "-p",
                                                             "autostart:=$(autostart)"]
    # Left empty (the defaults), bag, camera, policy and duration reach `run` as not given.
    empty = [re.sub(r"\$\((\w+)\)", lambda m: {"config": "my.yaml"}.get(m[1], ""), _token(e))
             for e in kw["arguments"].elts]
    parsed = build_parser().parse_args(empty)
    assert (parsed.bag, parsed.policy, parsed.camera, parsed.duration) == ("", "", "", None)


def test_declares_exactly_config_bag_policy_and_the_default_config_exists(tree):
    declared = {}
    for call in _calls(tree, "DeclareLaunchArgument"):
        kw = {k.arg: k.value for k in call.keywords}
        declared[call.args[0].value] = _resolve(tree, kw["default_value"])
    assert set(declared) == ARGUMENTS
    for name in ("bag", "camera", "policy", "namespace", "duration"):  # empty: "not given"
        assert declared[name].value == "", name
    assert declared["log_level"].value == "info" and declared["autostart"].value == "true"
    join = declared["config"]  # os.path.join(get_package_share_directory("aaron_ros"), "config", ...)
    assert _name(join.func) == "join"
    share, *parts = join.args
    assert _name(share.func) == "get_package_share_directory" and share.args[0].value == "aaron_ros"
    relative = Path(*(p.value for p in parts))
    assert relative.parts[0] == "config" and (ROOT / relative).is_file(), relative


def test_the_install_holds_what_ros2_launch_looks_up():
    # The venv is this checkout's install prefix (scripts/setup installs into it as colcon does).
    prefix = Path(sys.prefix)
    share = prefix / "share" / "aaron_ros"
    assert (share / "launch" / LAUNCH.name).read_text() == LAUNCH.read_text()
    assert (share / "config" / "f1tenth.yaml").is_file()
    exe = prefix / "lib" / "aaron_ros" / "aaron-ros"  # what `executable="aaron-ros"` resolves to
    assert exe.is_file() and os.access(exe, os.X_OK)


def test_generate_launch_description_where_launch_is_installed(tmp_path, monkeypatch):
    for module in ("launch", "launch_ros", "ament_index_python"):
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:  # this repo's launch/ folder imports as a bare namespace
            pytest.skip(f"{module} is not installed here (no ROS 2 install); the source checks above cover the file")
    import launch
    import launch_ros.actions
    from launch.actions import DeclareLaunchArgument
    from launch.utilities import perform_substitutions

    # A one-package ament prefix in front of the real ones, so the default config resolves to this checkout.
    (tmp_path / "share" / "ament_index" / "resource_index" / "packages").mkdir(parents=True)
    (tmp_path / "share" / "ament_index" / "resource_index" / "packages" / "aaron_ros").write_text("")
    (tmp_path / "share" / "aaron_ros").mkdir()
    (tmp_path / "share" / "aaron_ros" / "config").symlink_to(ROOT / "config")
    monkeypatch.setenv("AMENT_PREFIX_PATH", os.pathsep.join(
        p for p in (str(tmp_path), os.environ.get("AMENT_PREFIX_PATH", "")) if p))

    spec = importlib.util.spec_from_file_location("aaron_launch_under_test", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    assert isinstance(description, launch.LaunchDescription)

    context = launch.LaunchContext()
    arguments = {e.name: perform_substitutions(context, e.default_value)
                 for e in description.entities if isinstance(e, DeclareLaunchArgument)}
    assert set(arguments) == ARGUMENTS and arguments["bag"] == arguments["policy"] == arguments["namespace"] == ""
    assert Path(arguments["config"]).resolve() == (ROOT / "config" / "f1tenth.yaml").resolve()
    nodes = [e for e in description.entities if isinstance(e, launch_ros.actions.Node)]
    assert len(nodes) == 1  # its package, executable and arguments: checked on the source above
