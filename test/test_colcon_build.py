"""The repository builds as a ROS 2 package with colcon (ament_cmake + rosidl), over the ROS 2
prefix this environment has: the wheels' venv here, /opt/ros/<distro> on a robot."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
colcon = shutil.which("colcon", path=str(Path(sys.executable).parent)) or shutil.which("colcon")


@pytest.mark.skipif(colcon is None, reason="colcon is not installed")
def test_colcon_builds_and_installs_the_package(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "aaron_ros").symlink_to(ROOT)
    env = dict(os.environ)
    prefix = env.get("AMENT_PREFIX_PATH") or sys.prefix
    env.update(AMENT_PREFIX_PATH=prefix, CMAKE_PREFIX_PATH=prefix,
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    out = subprocess.run([colcon, "--log-base", "log", "build", "--packages-select", "aaron_ros",
                          "--cmake-args", "-DBUILD_TESTING=OFF"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]

    install = tmp_path / "install" / "aaron_ros"
    site = next(install.glob("lib/python3*/site-packages"))
    for path in (install / "share" / "aaron_ros" / "package.xml",
                 install / "share" / "aaron_ros" / "config" / "zoo.yaml",
                 site / "aaron_ros" / "msg" / "_inference_result.py",
                 site / "aaron_ros" / "cli.py"):
        assert path.is_file(), f"{path.relative_to(tmp_path)} was not installed"

    # `ros2 run aaron_ros aaron-ros` starts this launcher; run it against the installed tree.
    run_env = dict(env, PYTHONPATH=str(site),
                   LD_LIBRARY_PATH=f"{install / 'lib'}{os.pathsep}{env.get('LD_LIBRARY_PATH', '')}")
    code = ("import aaron_ros, aaron_ros.msg as m; print(aaron_ros.__file__); "
            "print(m.CoordinatorStatus(policy='aaron').policy)")
    got = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=run_env,
                         capture_output=True, text=True, timeout=120)
    assert got.returncode == 0, got.stderr
    assert got.stdout.splitlines() == [str(site / "aaron_ros" / "__init__.py"), "aaron"]
    launcher = subprocess.run([str(install / "lib" / "aaron_ros" / "aaron-ros"), "--help"], cwd=tmp_path,
                              env=run_env, capture_output=True, text=True, timeout=120)
    assert launcher.returncode == 0 and "zoo" in launcher.stdout, launcher.stderr
    # The launcher is setuptools' wrapper of setup.py's console script, and the installed metadata
    # (setup.py's, with its entry points) is what the installed tree finds.
    assert "'console_scripts', 'aaron-ros'" in (install / "lib" / "aaron_ros" / "aaron-ros").read_text()
    (egg_info,) = site.glob("aaron_ros-*.egg-info")
    code = ("import importlib.metadata as md, aaron_ros; d = md.distribution('aaron_ros'); "
            "print(d._path); print(aaron_ros.__version__, d.metadata['Summary']); "
            "print(sorted(f'{e.group} {e.name} {e.value}' for e in d.entry_points)); "
            "from aaron_ros.ros.components import component_names; print(component_names())")
    got = subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp_path, env=run_env,
                         capture_output=True, text=True, timeout=120)
    assert got.returncode == 0, got.stderr
    path, version, eps, names = got.stdout.splitlines()
    xml_version = ET.parse(ROOT / "package.xml").getroot().findtext("version")
    assert Path(path) == egg_info and version.startswith(f"{xml_version} Coordinated multi-DNN"), got.stdout
    assert eps == str(["aaron_ros.components perception aaron_ros.ros.perception:PerceptionComponent",
                       "console_scripts aaron-ros aaron_ros.cli:main"])
    assert names == str(["perception"])
