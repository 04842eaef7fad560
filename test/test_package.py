"""The ROS 2 package files agree with each other and with what is built."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
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
    assert root.findtext("version") == aaron_ros.__version__
    assert re.search(r"project\(aaron_ros\)", (ROOT / "CMakeLists.txt").read_text())
    assert f'version = "{aaron_ros.__version__}"' in (ROOT / "pyproject.toml").read_text()
    groups = [e.text for e in root.iter("member_of_group")]
    assert "rosidl_interface_packages" in groups


def test_scheduling_core_never_imports_rclpy():
    core = ["models", "runtime", "kernels", "contention", "coordinator", "bench"]
    for folder in core:
        for path in (ROOT / "aaron_ros" / folder).rglob("*.py"):
            text = path.read_text()
            assert not re.search(r"^\s*(import|from)\s+rclpy", text, re.M), f"{path} imports rclpy"
