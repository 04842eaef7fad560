"""The Python distribution aaron_ros: its metadata, packages, console script and entry points.

Not a pip entry: CMakeLists.txt runs it (from this folder, everything written under the CMake
build dir) in every build that installs the package, `scripts/setup` into .venv and colcon:

    python setup.py egg_info --egg-base B build_py --build-lib B/lib install_scripts --install-dir B/scripts

and installs B/lib/aaron_ros (the packages below), B/aaron_ros.egg-info (metadata and entry
points, read through importlib.metadata) and B/scripts/aaron-ros (setuptools' console script
wrapper). The version is the one in package.xml, which ROS requires and ament names the
egg-info after; `aaron_ros.__version__` reads it back from the installed metadata.
"""
from __future__ import annotations

import sys
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
# What would build a wheel or install from here would leave the generated messages out (pip
# install ., bdist_wheel, develop): refused rather than installing half of the package.
REFUSED = {"install", "develop", "editable_wheel", "bdist", "bdist_wheel", "bdist_egg", "sdist",
           "dist_info", "build", "build_ext"}


def package_xml_version() -> str:
    return ET.parse(HERE / "package.xml").getroot().findtext("version").strip()


def refuse_other_builds(argv: list[str]) -> None:
    wrong = sorted(REFUSED.intersection(argv))
    if wrong:
        sys.exit(f"setup.py {' '.join(wrong)}: not supported; build aaron_ros with colcon or scripts/setup "
                 "(CMake builds the messages and runs setup.py egg_info build_py install_scripts)")


if __name__ == "__main__":
    refuse_other_builds(sys.argv[1:])
# install_scripts is the setuptools command that writes console script wrappers; it is run on
# purpose, to a folder of the build dir, not as the deprecated `setup.py install`.
warnings.filterwarnings("ignore", message="setup.py install is deprecated")

setup(
    name="aaron_ros",
    version=package_xml_version(),
    description="Coordinated multi-DNN perception for ROS 2: stage-level scheduling with "
                "contention-aware kernel versions.",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["aaron_ros", "aaron_ros.*"]),
    entry_points={
        "console_scripts": ["aaron-ros = aaron_ros.cli:main"],
        # Components the container loads by name (aaron_ros/ros/components.py); a user package
        # adds its own to this group.
        "aaron_ros.components": ["perception = aaron_ros.ros.perception:PerceptionComponent"],
    },
)
