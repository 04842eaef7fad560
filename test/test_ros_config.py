"""The container's parameter files: loading and checking without ROS, and the same through rclpy."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from aaron_ros.bench.workload import load_workload
from aaron_ros.ros.config import ContainerConfig, load_config
from aaron_ros.ros.params import ComponentParams, CoordinatorParams, ParamError, params_from_node

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ["f1tenth", "f1tenth_light", "f1tenth_heavy", "ar_glasses"]

BASE = """\
/**:
  ros__parameters:
    input_topic: /camera/image_raw
aaron_container:
  ros__parameters:
    components: [detector, signs]
aaron_coordinator:
  ros__parameters:
    policy: aaron
detector:
  ros__parameters:
    model: tiny_yolo
    deadline_ms: 50.0
    criticality: critical
    max_rate_hz: 20.0
    overload: keep_latest
    queue_size: 1
signs:
  ros__parameters:
    model: mobilenet_v3_small
    deadline_ms: 100.0
"""


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def edited(old: str, new: str) -> str:
    assert old in BASE, old
    return BASE.replace(old, new, 1)


# --- the shipped files ----------------------------------------------------------------------

@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_config_matches_its_workload(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # kernel bags resolved from an empty working directory
    cfg = load_config(ROOT / "config" / f"{name}.yaml")
    workload = load_workload(name)
    assert cfg.tasks() == workload.tasks  # names, models, rates, deadlines, criticality, overload, queues
    assert [c.component for c in cfg.components] == ["perception"] * len(workload.tasks)
    assert cfg.coordinator == CoordinatorParams()  # the defaults, written out
    assert set(cfg.nodes) == {"bag_player", "camera"}
    assert cfg.shared["input_topic"] == cfg.nodes["camera"]["topic"]
    assert cfg.params_for("bag_player")["qos"] == "sensor_data"  # `/**` reaches the other nodes too
    for c in cfg.components:
        assert c.input_topic == "camera/image_raw" and c.result_topic == f"aaron/{c.name}/result"  # in the namespace
        assert cfg.kernel_bag(c) == Path("kernel_bags") / c.model


# --- the dataclasses ------------------------------------------------------------------------

def test_component_defaults_and_derived_values():
    c = ComponentParams(name="det", model="tiny_yolo")
    assert c.result_topic == "aaron/det/result"  # relative: in the node's namespace
    assert c.kernel_bag_path("kernel_bags") == Path("kernel_bags/tiny_yolo")
    assert dataclasses.replace(c, kernel_bag="/opt/b").kernel_bag_path("kb") == Path("/opt/b")
    assert ComponentParams(name="det", model="tiny_yolo", input_size=[320, 320]).input_size == (320, 320)
    spec = ComponentParams(name="det", model="seg_net", deadline_ms=80, max_rate_hz=15,
                           criticality="critical").task_spec()
    assert (spec.name, spec.model, spec.rate_hz, spec.deadline_ms, spec.critical) == (
        "det", "seg_net", 15.0, 80.0, True)
    assert isinstance(ComponentParams(name="d", model="seg_net", deadline_ms=80).deadline_ms, float)


@pytest.mark.parametrize("kwargs, key, words", [
    ({"model": ""}, "model", "is required"),
    ({"model": "yolo9000"}, "model", "unknown model"),
    ({"deadline_ms": -5}, "deadline_ms", "must be > 0, got -5"),
    ({"deadline_ms": "50"}, "deadline_ms", "must be a number"),
    ({"deadline_ms": True}, "deadline_ms", "must be a number"),
    ({"max_rate_hz": 0.0}, "max_rate_hz", "must be > 0"),
    ({"queue_size": 0}, "queue_size", ">= 1"),
    ({"queue_size": 1.5}, "queue_size", "must be an integer"),
    ({"criticality": "high"}, "criticality", "must be one of"),
    ({"overload": "drop_all"}, "overload", "must be one of"),
    ({"qos": "best_effort"}, "qos", "must be one of"),
    ({"input_topic": "camera image"}, "input_topic", "ROS topic name"),
    ({"input_size": [224, 224]}, "input_size", "kernel bags are built for that size"),
    ({"input_size": [320]}, "input_size", "[height, width]"),
    ({"input_size": ["a", "b"]}, "input_size", "list of integers"),
    ({"name": "3d"}, "name", "ROS node name"),
])
def test_component_rejects_bad_values_naming_the_key(kwargs, key, words):
    values = {"name": "det", "model": "tiny_yolo", **kwargs}
    with pytest.raises(ParamError) as err:
        ComponentParams(**values)
    assert err.value.key == key and str(err.value).startswith(f"{key}: ") and words in str(err.value)


def test_a_plugin_component_needs_no_zoo_model():
    assert ComponentParams(name="mine", component="my_pkg.nodes:Mine").model == ""


@pytest.mark.parametrize("kwargs, key", [
    ({"policy": "fastest"}, "policy"), ({"versions": "best"}, "versions"), ({"device": "tpu"}, "device"),
    ({"lanes": -1}, "lanes"), ({"status_rate_hz": 0}, "status_rate_hz"),
    ({"miss_warn_threshold": 1.5}, "miss_warn_threshold"), ({"publish_grants": "yes"}, "publish_grants"),
    ({"kernel_bag_dir": ""}, "kernel_bag_dir"),
])
def test_coordinator_rejects_bad_values(kwargs, key):
    with pytest.raises(ParamError) as err:
        CoordinatorParams(**kwargs)
    assert err.value.key == key


# --- load_config: layout and errors ---------------------------------------------------------

def test_shared_values_apply_unless_a_node_sets_its_own(tmp_path):
    text = edited("    input_topic: /camera/image_raw\n",
                  "    input_topic: /camera/image_raw\n    max_rate_hz: 15.0\n    kernel_bag_dir: /data/bags\n")
    cfg = load_config(write(tmp_path, text))
    assert cfg.component("detector").max_rate_hz == 20.0  # its own
    assert cfg.component("signs").max_rate_hz == 15.0     # from /**
    assert cfg.coordinator.kernel_bag_dir == "/data/bags"
    assert cfg.kernel_bag("signs") == Path("/data/bags/mobilenet_v3_small")
    assert isinstance(cfg, ContainerConfig) and cfg.nodes == {}


def test_coordinator_section_is_optional_and_leading_slash_names_match(tmp_path):
    text = BASE.replace("aaron_coordinator:\n  ros__parameters:\n    policy: aaron\n", "")
    text = text.replace("\ndetector:", "\n/detector:")
    cfg = load_config(write(tmp_path, text))
    assert cfg.coordinator == CoordinatorParams()
    assert [c.name for c in cfg.components] == ["detector", "signs"]


def test_unlisted_sections_are_other_nodes_kept_raw(tmp_path):
    text = BASE + "bag_player:\n  ros__parameters:\n    bag: /data/run1\n    rate: 2.0\n"
    cfg = load_config(write(tmp_path, text))
    assert cfg.nodes == {"bag_player": {"bag": "/data/run1", "rate": 2.0}}
    assert cfg.params_for("bag_player") == {"input_topic": "/camera/image_raw", "bag": "/data/run1", "rate": 2.0}


ERRORS = [
    ("bad value",
     edited("deadline_ms: 50.0", "deadline_ms: -5"),
     "detector.ros__parameters.deadline_ms: must be > 0, got -5"),
    ("string deadline",
     edited("deadline_ms: 50.0", "deadline_ms: fast"),
     "detector.ros__parameters.deadline_ms: must be a number, got 'fast'"),
    ("typo in a component",
     edited("deadline_ms: 50.0", "dealine_ms: 50.0"),
     "detector.ros__parameters.dealine_ms: unknown key; did you mean 'deadline_ms'?"),
    ("typo in the coordinator",
     edited("policy: aaron", "polcy: aaron"),
     "aaron_coordinator.ros__parameters.polcy: unknown key; did you mean 'policy'?"),
    ("name is the key, not a parameter",
     edited("model: tiny_yolo", "model: tiny_yolo\n    name: det"),
     "detector.ros__parameters.name: unknown key"),
    ("typo in /**",
     edited("input_topic: /camera/image_raw", "input_topc: /camera/image_raw"),
     "/**.ros__parameters.input_topc: unknown key; did you mean 'input_topic'?"),
    ("bad shared value names /** and the node",
     edited("input_topic: /camera/image_raw", "input_topic: /camera/image_raw\n    queue_size: 0"),
     "/**.ros__parameters.queue_size: must be >= 1, got 0 (as applied to signs)"),
    ("listed without a section",
     edited("components: [detector, signs]", "components: [detector, signs, lanes_net]"),
     "aaron_container.ros__parameters.components: 'lanes_net' is listed but the file has no 'lanes_net:' section"),
    ("listed twice",
     edited("components: [detector, signs]", "components: [detector, signs, detector]"),
     "aaron_container.ros__parameters.components: 'detector' is listed twice"),
    ("no components",
     edited("components: [detector, signs]", "components: []"),
     "aaron_container.ros__parameters.components: must be a non-empty list"),
    ("section without ros__parameters",
     edited("signs:\n  ros__parameters:\n", "signs:\n  parameters:\n"),
     "signs: missing 'ros__parameters:'"),
    ("duplicate output topic",
     edited("queue_size: 1", "queue_size: 1\n    output_topic: /aaron/out") + "    output_topic: /aaron/out\n",
     "signs.ros__parameters.output_topic: /aaron/out is already the output of detector"),
    ("default output topic taken",
     BASE + "    output_topic: /aaron/detector/result\n",
     "signs.ros__parameters.output_topic: /aaron/detector/result is already the output of detector"),
    ("one model declared two ways",
     BASE.replace("model: tiny_yolo", "model: my_pkg:net\n    input_size: [64, 80]\n    output: classes")
     .replace("model: mobilenet_v3_small", "model: my_pkg:net\n    input_size: [64, 80]\n    output: raw"),
     "signs.ros__parameters: model my_pkg.net is declared by detector too, differently (output 'classes' "
     "against 'raw'): the container loads a model once"),
    ("input size",
     edited("queue_size: 1", "queue_size: 1\n    input_size: [416, 416]"),
     "detector.ros__parameters.input_size: tiny_yolo takes [320, 320] and its kernel bags are built for that size"),
    ("unknown model",
     edited("model: tiny_yolo", "model: yolov8"),
     "detector.ros__parameters.model: unknown model 'yolov8'"),
    ("unknown policy",
     edited("policy: aaron", "policy: fifo"),
     "aaron_coordinator.ros__parameters.policy: unknown policy 'fifo'; known: sequential, naive"),
    ("unknown component",
     edited("model: tiny_yolo", "model: tiny_yolo\n    component: percepton"),
     "detector.ros__parameters.component: unknown component 'percepton'; known: ["),
    ("wrong bool",
     edited("policy: aaron", "policy: aaron\n    publish_grants: 1"),
     "aaron_coordinator.ros__parameters.publish_grants: must be true or false, got 1"),
    ("no container",
     BASE.replace("aaron_container:\n  ros__parameters:\n    components: [detector, signs]\n", ""),
     "aaron_container: missing"),
    ("a key twice",
     BASE + "detector:\n  ros__parameters:\n    model: seg_net\n",
     "YAML error at line 22, column 1: duplicate key 'detector'"),
    ("YAML syntax",
     edited("    deadline_ms: 50.0\n", "    deadline_ms: [50.0\n"),
     "YAML error at line 14, column 16: expected ',' or ']', but got ':' (while parsing a flow sequence at line 13)"),
]


@pytest.mark.parametrize("text, expected", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_bad_files_fail_naming_file_and_full_key(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(ValueError) as err:
        load_config(path)
    message = str(err.value)
    assert message.startswith(f"{path}: "), message
    assert expected in message, message


def test_not_a_parameter_file(tmp_path):
    with pytest.raises(ValueError, match="expected a ROS 2 parameter file"):
        load_config(write(tmp_path, "- just\n- a list\n"))
    with pytest.raises(ValueError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")


def test_config_and_components_load_a_file_without_importing_rclpy():
    code = ("import sys; from aaron_ros.ros.config import load_config; "
            "load_config('config/f1tenth.yaml'); assert 'rclpy' not in sys.modules, 'rclpy imported'")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


# --- the ROS side: the same values through a live node's parameters ---------------------------

@pytest.mark.parametrize("name", SHIPPED)
def test_params_from_node_reads_the_shipped_file_like_load_config(ros_context_args, name):
    from rclpy.node import Node

    path = ROOT / "config" / f"{name}.yaml"
    cfg = load_config(path)
    ctx = ros_context_args("--params-file", str(path))
    nodes = []
    try:
        node = Node("aaron_coordinator", context=ctx)
        nodes.append(node)
        assert params_from_node(node, CoordinatorParams) == cfg.coordinator
        assert node.describe_parameter("lanes").read_only
        for c in cfg.components:
            node = Node(c.name, context=ctx)
            nodes.append(node)
            assert params_from_node(node, ComponentParams) == c
            assert node.get_parameter("input_topic").value == "camera/image_raw"  # from /**
    finally:
        for node in nodes:
            node.destroy_node()


def test_params_from_node_takes_integers_for_floats_and_names_bad_keys(ros_context_args, tmp_path):
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    path = write(tmp_path, """\
        /**:
          ros__parameters:
            qos: reliable
        det:
          ros__parameters:
            model: tiny_yolo
            deadline_ms: 50
            input_size: [320, 320]
        seg:
          ros__parameters:
            model: seg_net
            deadline_ms: soon
        bad_size:
          ros__parameters:
            model: seg_net
            input_size: [240, 240]
        coord:
          ros__parameters:
            status_rate_hz: 2
            lanes: 2.5
        """)
    ctx = ros_context_args("--params-file", str(path))
    nodes = {n: Node(n, context=ctx) for n in ("det", "seg", "bad_size", "coord")}
    try:
        det = params_from_node(nodes["det"], ComponentParams)
        assert (det.name, det.deadline_ms, det.input_size, det.qos) == ("det", 50.0, (320, 320), "reliable")
        assert nodes["det"].describe_parameter("input_size").type == Parameter.Type.INTEGER_ARRAY.value
        assert params_from_node(nodes["det"], ComponentParams, "det") == det  # declared once, read again
        with pytest.raises(ValueError, match=r"^node seg: parameter deadline_ms: must be a number, got 'soon'"):
            params_from_node(nodes["seg"], ComponentParams)
        with pytest.raises(ValueError, match=r"node bad_size: parameter input_size: seg_net takes \[240, 320\]"):
            params_from_node(nodes["bad_size"], ComponentParams)
        with pytest.raises(ValueError, match=r"node coord: parameter lanes: must be an integer, got 2.5"):
            params_from_node(nodes["coord"], CoordinatorParams)
        assert nodes["coord"].get_parameter("status_rate_hz").value == 2
    finally:
        for node in nodes.values():
            node.destroy_node()


# --- one declaration per parameter: the tables the nodes, the file check and the live check read --

Parameter = pytest.importorskip("rclpy.parameter").Parameter

MODEL = [Parameter("model", value="tiny_yolo")]  # a component's required parameter, as a file gives it


def test_every_node_declares_its_table_with_descriptors(ros_context):
    from rclpy.node import Node

    from aaron_ros.ros.params import BAG_PLAYER, CAMERA, COMPONENT, CONTAINER, COORDINATOR, declare_params

    for table in (COORDINATOR, COMPONENT, BAG_PLAYER, CAMERA, CONTAINER):
        node = Node(table.node or "detector", context=ros_context, parameter_overrides=MODEL)
        try:
            declare_params(node, table)
            for p in table.params:
                d = node.describe_parameter(p.name)
                assert d.description == p.description != "" and d.additional_constraints == p.constraints, p.name
                assert d.read_only == (not p.live), p.name
            # Every one holds a value, an empty list too, so `ros2 param dump` gets them all back.
            values = node.get_parameters([p.name for p in table.params])
            assert all(v.type_ != Parameter.Type.NOT_SET for v in values), table.node
            assert all(v.value == [] for v in values if v.name in ("input_size", "remap")), table.node
        finally:
            node.destroy_node()


def test_descriptors_carry_ranges_and_allowed_words(ros_context):
    from rclpy.node import Node

    node = Node("detector", context=ros_context, parameter_overrides=MODEL)
    try:
        params_from_node(node, ComponentParams)
        deadline = node.describe_parameter("deadline_ms")
        assert deadline.description == ComponentParams.TABLE["deadline_ms"].description != ""
        assert deadline.floating_point_range[0].from_value == 0.0 and deadline.additional_constraints == "> 0"
        assert node.describe_parameter("queue_size").integer_range[0].from_value == 1
        assert node.describe_parameter("criticality").additional_constraints == "one of: critical, normal"
        assert node.describe_parameter("overload").additional_constraints == \
            "one of: drop_oldest, drop_newest, keep_latest"
    finally:
        node.destroy_node()
    node = Node("aaron_coordinator", context=ros_context)
    try:
        params_from_node(node, CoordinatorParams)
        threshold = node.describe_parameter("miss_warn_threshold").floating_point_range[0]
        assert (threshold.from_value, threshold.to_value) == (0.0, 1.0)
        assert node.describe_parameter("policy").additional_constraints == \
            "one of: sequential, naive, priority, elastic, aaron"
    finally:
        node.destroy_node()


SAME_MESSAGE = [  # section, key, bad value as YAML, problem
    ("detector", "deadline_ms", "-5.0", "must be > 0, got -5"),
    ("detector", "deadline_ms", "soon", "must be a number, got 'soon'"),
    ("detector", "queue_size", "0", "must be >= 1, got 0"),
    ("detector", "criticality", "high", "must be one of ['critical', 'normal'], got 'high'"),
    ("detector", "input_size", "[416, 416]", "tiny_yolo takes [320, 320]"),
    ("signs", "output_topic", "'no spaces'", "must be a ROS topic name"),
    ("aaron_coordinator", "policy", "fifo", "unknown policy 'fifo'; known: sequential, naive, priority"),
    ("aaron_coordinator", "lanes", "2.5", "must be an integer, got 2.5"),
    ("aaron_coordinator", "miss_warn_threshold", "1.5", "must be in [0, 1], got 1.5"),
    ("bag_player", "rate", "0.0", "must be > 0, got 0"),
    ("camera", "encoding", "yuv", "must be one of ['bgr8', 'rgb8'], got 'yuv'"),
    ("camera", "width", "640.0", "must be an integer, got 640.0"),
]


@pytest.mark.parametrize("section, key, value, problem", SAME_MESSAGE, ids=[f"{s[0]}.{s[1]}" for s in SAME_MESSAGE])
def test_file_check_and_live_check_reject_a_bad_value_with_the_same_message(
        ros_context_args, tmp_path, section, key, value, problem):
    from rclpy.node import Node

    from aaron_ros.ros.params import COMPONENT, COORDINATOR, SOURCES, declare_params

    text = ("aaron_container:\n  ros__parameters:\n    components: [detector, signs]\n"
            "detector:\n  ros__parameters:\n    model: tiny_yolo\n"
            "signs:\n  ros__parameters:\n    model: mobilenet_v3_small\n")
    if section not in text:
        text += f"{section}:\n  ros__parameters:\n"
    path = write(tmp_path, text.replace(f"{section}:\n  ros__parameters:\n",
                                        f"{section}:\n  ros__parameters:\n    {key}: {value}\n", 1))
    with pytest.raises(ValueError) as in_file:
        load_config(path)
    file_problem = str(in_file.value).removeprefix(f"{path}: {section}.ros__parameters.{key}: ")
    assert file_problem != str(in_file.value) and problem in file_problem, str(in_file.value)

    table = {"aaron_coordinator": COORDINATOR, **SOURCES}.get(section, COMPONENT)
    node = Node(section, context=ros_context_args("--params-file", str(path)))
    try:
        with pytest.raises(ValueError) as live:
            if table is COMPONENT:
                params_from_node(node, ComponentParams)
            else:
                declare_params(node, table, (lambda v: CoordinatorParams(**v)) if table is COORDINATOR else None)
    finally:
        node.destroy_node()
    assert str(live.value) == f"node {section}: parameter {key}: {file_problem}"


@pytest.mark.parametrize("section, typo, known", [
    ("camera", "rate_h", "rate_hz"), ("bag_player", "start_offset", "start_offset_s"),
    ("signs", "max_rate", "max_rate_hz"), ("aaron_container", "component", "components"),
])
def test_an_unknown_key_names_the_closest_known_one(tmp_path, section, typo, known):
    text = BASE if section in ("signs", "aaron_container") else BASE + f"{section}:\n  ros__parameters:\n"
    path = write(tmp_path, text.replace(f"{section}:\n  ros__parameters:\n",
                                        f"{section}:\n  ros__parameters:\n    {typo}: 1\n", 1))
    with pytest.raises(ValueError, match=rf"^{path}: {section}\.ros__parameters\.{typo}: unknown key; "
                                         rf"did you mean '{known}'\? known: \["):
        load_config(path)


def test_policy_and_versions_names_have_one_registry():
    from aaron_ros.bench.policies import BenchOptions
    from aaron_ros.coordinator.policies import POLICIES, SETTINGS, check_policy, check_versions
    from aaron_ros.coordinator.service import ServiceOptions

    with pytest.raises(ValueError) as err:
        check_versions("best")
    message = str(err.value)
    assert message == f"unknown versions setting 'best'; known: {', '.join(SETTINGS)}"
    for make in (lambda: ServiceOptions(versions="best"), lambda: BenchOptions(["aaron"], ["best"])):
        with pytest.raises(ValueError, match=f"^{message}$"):
            make()
    with pytest.raises(ParamError) as err:
        CoordinatorParams(versions="best")
    assert err.value.problem == message
    with pytest.raises(ValueError, match=f"^unknown policy 'fifo'; known: {', '.join(POLICIES)}$"):
        check_policy("fifo")
    assert check_policy("aaron") == "aaron" and check_versions("solo") == "solo"


def test_enums_and_kernel_bag_folder(tmp_path, monkeypatch, caplog):
    from aaron_ros.common.paths import KERNEL_BAG_DIR
    from aaron_ros.coordinator.types import Criticality, Overload

    c = ComponentParams(name="det", model="tiny_yolo", criticality="critical", overload="keep_latest")
    assert c.criticality is Criticality.CRITICAL and c.overload is Overload.KEEP_LATEST
    assert CoordinatorParams().kernel_bag_dir == KERNEL_BAG_DIR == "kernel_bags"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bags").mkdir()  # only the old folder: read, with a warning
    cfg = load_config(write(tmp_path, BASE))
    assert cfg.kernel_bag("detector") == Path("bags/tiny_yolo")
    assert "rename it to kernel_bags/" in caplog.text
