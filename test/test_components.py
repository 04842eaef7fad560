"""Components by name: a user's plug-in through its entry point, module:Class, clear errors."""
from __future__ import annotations

import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from aaron_ros.ros.components import GROUP, component_names, find_component
from aaron_ros.ros.config import load_config

ROOT = Path(__file__).resolve().parents[1]


def install_plugin(tmp_path: Path, monkeypatch, module: str, body: str, entry: str) -> None:
    """A distribution `<module>` 0.1 with one module and an entry point, importable from tmp_path."""
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(body))
    dist = tmp_path / f"{module}-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[{GROUP}]\n{entry}\n")
    monkeypatch.syspath_prepend(str(tmp_path))


def test_a_user_plugin_is_found_through_its_entry_point(tmp_path, monkeypatch):
    install_plugin(tmp_path, monkeypatch, "my_detector_pkg",
                   "class LidarDetector:\n    kind = 'mine'\n",
                   "lidar_detector = my_detector_pkg:LidarDetector")
    assert "lidar_detector" in component_names()
    cls = find_component("lidar_detector")
    assert cls.__name__ == "LidarDetector" and cls.kind == "mine"


def test_a_config_may_name_a_plugin(tmp_path, monkeypatch):
    install_plugin(tmp_path, monkeypatch, "my_lidar_pkg", "class Mine:\n    pass\n", "lidar = my_lidar_pkg:Mine")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("aaron_container:\n  ros__parameters:\n    components: [lidar]\n"
                   "lidar:\n  ros__parameters:\n    component: lidar\n    deadline_ms: 40.0\n")
    (c,) = load_config(cfg).components
    assert (c.component, c.model, c.deadline_ms) == ("lidar", "", 40.0)
    assert find_component(c.component).__name__ == "Mine"


def test_a_plugin_that_fails_to_import_names_the_component_and_cause(tmp_path, monkeypatch):
    install_plugin(tmp_path, monkeypatch, "broken_pkg", "import no_such_module_here\n",
                   "broken = broken_pkg:Broken")
    with pytest.raises(ValueError, match=r"component 'broken'.*ModuleNotFoundError.*no_such_module_here"):
        find_component("broken")


def test_module_colon_class(tmp_path, monkeypatch):
    (tmp_path / "plain_mod.py").write_text("class Seg:\n    pass\nnot_a_class = 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert find_component("plain_mod:Seg").__name__ == "Seg"
    with pytest.raises(ValueError, match=r"component 'plain_mod:Nope'.*AttributeError"):
        find_component("plain_mod:Nope")
    with pytest.raises(ValueError, match=r"not a class"):
        find_component("plain_mod:not_a_class")
    with pytest.raises(ValueError, match=r"component 'no_such_pkg_xyz:C'.*ModuleNotFoundError"):
        find_component("no_such_pkg_xyz:C")


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError) as err:
        find_component("percepton")
    assert "unknown component 'percepton'" in str(err.value)
    assert "'perception'" in str(err.value) and GROUP in str(err.value)


def test_builtin_perception_is_known_through_its_entry_point():
    assert "perception" in component_names()
    (ep,) = [ep for ep in entry_points(group=GROUP) if ep.name == "perception"]
    assert ep.dist.name == "aaron_ros" and ep.value == "aaron_ros.ros.perception:PerceptionComponent"
    assert f'"{GROUP}": ["perception = {ep.value}"]' in (ROOT / "setup.py").read_text()
