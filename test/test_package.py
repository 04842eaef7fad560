"""The ROS 2 package files agree with each other and with what is built."""
from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from importlib.metadata import PathDistribution, distribution
from pathlib import Path

import aaron_ros
import aaron_ros.msg

ROOT = Path(__file__).resolve().parents[1]


def test_every_msg_file_is_generated_and_importable():
    cmake = (ROOT / "CMakeLists.txt").read_text()
    for path in sorted((ROOT / "msg").glob("*.msg")):
        assert f"msg/{path.name}" in cmake, f"{path.name} is not in rosidl_generate_interfaces"
        assert hasattr(aaron_ros.msg, path.stem), f"aaron_ros.msg.{path.stem} was not generated"


def test_package_xml_matches_project():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.findtext("name") == "aaron_ros"
    assert root.findtext("version") == aaron_ros.__version__ == distribution("aaron_ros").version
    assert root.findtext("license") == distribution("aaron_ros").metadata["License"]
    assert re.search(r"project\(aaron_ros\)", (ROOT / "CMakeLists.txt").read_text())
    groups = [e.text for e in root.iter("member_of_group")]
    assert "rosidl_interface_packages" in groups


def test_the_distribution_is_declared_in_setup_py_only():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert not re.search(r"^\[(project|build-system)\b", pyproject, re.M), "pyproject.toml declares a distribution"
    assert not (ROOT / "setup.cfg").exists()
    assert not list((ROOT / "scripts").glob("aaron-ros*")), "a hand-written launcher restates the entry point"
    assert "__version__ =" not in (ROOT / "aaron_ros" / "__init__.py").read_text()
    assert "BUILTIN" not in (ROOT / "aaron_ros" / "ros" / "components.py").read_text()


def entry_points_of(egg_info: Path) -> set[tuple[str, str, str]]:
    return {(ep.group, ep.name, ep.value) for ep in PathDistribution(egg_info).entry_points}


def test_the_installed_metadata_is_setup_pys(tmp_path):
    """What setup.py makes now is what the build installed: metadata, entry points, script."""
    subprocess.run([sys.executable, "setup.py", "-q", "egg_info", "--egg-base", str(tmp_path)],
                   cwd=ROOT, check=True, capture_output=True, timeout=120)
    made = tmp_path / "aaron_ros.egg-info"
    installed = distribution("aaron_ros")
    assert {(ep.group, ep.name, ep.value) for ep in installed.entry_points} == entry_points_of(made)
    assert ("console_scripts", "aaron-ros", "aaron_ros.cli:main") in entry_points_of(made)
    assert ("aaron_ros.components", "perception", "aaron_ros.ros.perception:PerceptionComponent") in \
        entry_points_of(made)
    for key in ("Name", "Version", "Summary", "License"):
        assert installed.metadata[key] == PathDistribution(made).metadata[key], key
    # One aaron_ros distribution where the package is installed, and the package is setup.py's.
    site = Path(aaron_ros.msg.__file__).parents[2]
    assert [p.name for p in site.glob("aaron_ros-*")] == [f"aaron_ros-{installed.version}-py3.{sys.version_info[1]}"
                                                         ".egg-info"]
    assert not [f for f in (ROOT / "aaron_ros").rglob("*.py") if not (site / f.relative_to(ROOT)).is_file()]
    # bin/aaron-ros is setuptools' wrapper for the console_scripts entry point.
    script = (Path(sys.executable).parent / "aaron-ros").read_text()
    assert "'console_scripts', 'aaron-ros'" in script


def test_setup_py_refuses_a_build_without_the_messages(tmp_path):
    out = subprocess.run([sys.executable, "setup.py", "bdist_wheel", "--dist-dir", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "colcon or scripts/setup" in out.stderr
    assert not list(tmp_path.iterdir())


def test_scheduling_core_never_imports_rclpy():
    core = ["models", "runtime", "kernels", "contention", "coordinator", "bench"]
    for folder in core:
        for path in (ROOT / "aaron_ros" / folder).rglob("*.py"):
            text = path.read_text()
            assert not re.search(r"^\s*(import|from)\s+rclpy", text, re.M), f"{path} imports rclpy"
