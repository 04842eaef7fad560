"""Your own model: a factory, a TorchScript file, a torch.export file and an ONNX file, declared in
a parameter file, compiled from it, and served by the container from a CompressedImage bag with
labels; bad declarations are refused naming the key."""
from __future__ import annotations

import logging
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from user_models import TwoPath, gated, small_cnn, two_path

from aaron_ros.models import ModelSpec, build_model, fuse, top_k_classes
from aaron_ros.models.source import DeclarationError, OnnxModule, rows_to_detections
from aaron_ros.ros.config import load_config
from aaron_ros.ros.image_conversions import array_to_tensor

X = torch.randn(1, 3, 64, 80, generator=torch.Generator().manual_seed(0))


def _onnx(tmp_path: Path, model: torch.nn.Module | None = None, size=(64, 80)) -> Path:
    path = tmp_path / "small_cnn.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter, as a user may use it
        torch.onnx.export(model or small_cnn(), (torch.zeros(1, 3, *size),), path, dynamo=False,
                          input_names=["images"], output_names=["logits"])
    return path


def test_a_factory_model_that_is_not_sequential_is_cut_where_one_tensor_flows(caplog):
    """TwoPath: stem | relu, two paths, add | mean, head. The cuts never split the two paths, and
    the stages in order give the module's own output, bit for bit."""
    caplog.set_level(logging.INFO, "aaron_ros.models.auto_stages")
    graph = build_model(ModelSpec("user_models:two_path", input_size=(64, 80), output="classes"))
    assert graph.name == "user_models.two_path" and len(graph) == 3
    assert graph.input_shape == (3, 64, 80) and graph.output_kind == "classes"
    assert "cut into 3 parts" in caplog.text
    with torch.inference_mode():
        want = two_path().eval()(X)
        assert torch.equal(graph.run_stages(X), want) and torch.equal(graph.run_whole(X), want)
        assert graph.postprocess(graph.run_stages(X)).class_ids.tolist() == top_k_classes(want).class_ids.tolist()
    # The stages share the factory's weights: one set, not a copy per stage.
    assert sum(p.numel() for p in graph.model.parameters()) == sum(p.numel() for p in TwoPath().parameters())


def test_a_model_torch_fx_cannot_trace_runs_as_one_stage_and_the_log_says_why(caplog):
    caplog.set_level(logging.INFO, "aaron_ros.models.auto_stages")
    graph = build_model(ModelSpec("user_models:gated", input_size=(16, 16), output="raw"))
    assert len(graph) == 1 and "torch.fx cannot trace it" in caplog.text
    x = torch.randn(1, 3, 16, 16)
    with torch.inference_mode():
        assert torch.equal(graph.run_stages(x), gated()(x))


def test_torchscript_and_torch_export_files_match_the_module(tmp_path):
    module = two_path().eval()
    torch.jit.save(torch.jit.trace(module, X), tmp_path / "two_path.pt")
    torch.export.save(torch.export.export(module, (X,)), tmp_path / "two_path.pt2")
    with torch.inference_mode():
        want = module(X)
        for name in ("two_path.pt", "two_path.pt2"):
            graph = build_model(ModelSpec(str(tmp_path / name), input_size=(64, 80), output="classes"))
            assert graph.name == "two_path" and (len(graph) == 1 or name.endswith(".pt2"))  # TorchScript: no fx
            torch.testing.assert_close(graph.run_stages(X), want, rtol=1e-5, atol=1e-6)


def test_an_onnx_file_is_cut_into_onnx_parts_and_runs_with_its_own_input_size(tmp_path):
    path = _onnx(tmp_path)
    graph = build_model(ModelSpec(str(path), output="classes"))
    assert graph.input_shape == (3, 64, 80)
    # Cut after the convolution (the one tensor flowing on), each part an ONNX model of its own.
    assert len(graph) == 2 and all(isinstance(s.module, OnnxModule) for s in graph.stages)
    whole = OnnxModule(path.read_bytes())
    with torch.inference_mode():
        torch.testing.assert_close(graph.run_stages(X), whole(X), rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(graph.run_stages(X), small_cnn()(X), rtol=1e-4, atol=1e-5)
        # Parts a kernel bag fuses into one stage merge into one ONNX model, so that ONNX Runtime
        # versions of the fused stage exist.
        fused = fuse(graph, [[0, 1]])
        assert len(fused) == 1 and isinstance(fused.stages[0].module, OnnxModule)
        assert torch.equal(fused.run_stages(X), whole(X))
    with pytest.raises(ValueError, match=r"takes \[64, 80\], not input_size \[32, 32\]"):
        build_model(ModelSpec(str(path), input_size=(32, 32), output="classes"))


def test_an_onnx_file_with_its_weights_beside_it_serves_from_any_folder(tmp_path, monkeypatch):
    """`torch.onnx.export` writes the weights to `<file>.data` by default. The model is read with
    them: it serves from any working directory, and its parts (which a kernel bag's ONNX Runtime
    versions are built from) carry them."""
    import onnx

    folder = tmp_path / "models"
    folder.mkdir()
    path = folder / "small_cnn.onnx"
    onnx.save_model(onnx.load(_onnx(tmp_path)), path, save_as_external_data=True, location="small_cnn.onnx.data",
                    size_threshold=0)
    assert (folder / "small_cnn.onnx.data").is_file()
    monkeypatch.chdir(tmp_path)
    graph = build_model(ModelSpec(str(path), output="classes"))
    assert graph.input_shape == (3, 64, 80)
    for stage in graph.stages:
        part = onnx.load_from_string(stage.module.onnx_bytes)
        assert part.graph.initializer and all(t.data_location == onnx.TensorProto.DEFAULT
                                              for t in part.graph.initializer)
    with torch.inference_mode():
        torch.testing.assert_close(graph.run_stages(X), small_cnn()(X), rtol=1e-4, atol=1e-5)
    (folder / "small_cnn.onnx.data").unlink()
    with pytest.raises(ValueError, match="small_cnn.onnx: its weights, kept in a file beside it, cannot be read"):
        build_model(ModelSpec(str(path), output="classes"))


@pytest.mark.parametrize("output, words", [
    ("detections", r"detections does not fit user_models:small_cnn's output of shape \[1, 5\]: detections must"),
    ("mask", r"mask does not fit user_models:small_cnn's output of shape \[1, 5\]: expected a 3-d output"),
])
def test_an_output_kind_the_model_does_not_give_is_refused_when_it_loads(output, words):
    """Not a failure on every frame later: the model runs once at load and its output must fit."""
    with pytest.raises(DeclarationError, match=rf"^output: {words}") as info:
        build_model(ModelSpec("user_models:small_cnn", input_size=(16, 16), output=output))
    assert info.value.key == "output"
    fits = build_model(ModelSpec("user_models:small_cnn", input_size=(16, 16), output="classes"))
    assert fits.output_kind == "classes"


def test_detection_rows_become_boxes_best_first():
    rows = torch.tensor([[[1, 2, 3, 4, 0.5, 2], [5, 6, 7, 8, 0.9, 0]]], dtype=torch.float32)
    d = rows_to_detections(rows)
    assert d.scores.tolist() == pytest.approx([0.9, 0.5]) and d.classes.tolist() == [0, 2]
    assert d.boxes.tolist() == [[5, 6, 7, 8], [1, 2, 3, 4]]
    with pytest.raises(ValueError, match="rows of x1, y1, x2, y2, score, class"):
        rows_to_detections(torch.zeros(1, 3, 4))


def test_channel_order_and_normalisation_follow_the_declaration():
    arr = np.zeros((4, 4, 3), np.uint8)
    arr[..., 0], arr[..., 2] = 255, 51  # red full, blue a fifth
    rgb = array_to_tensor(arr, (4, 4), mean=(0, 0, 0), std=(1, 1, 1))
    bgr = array_to_tensor(arr, (4, 4), mean=(0, 0, 0), std=(1, 1, 1), bgr=True)
    assert rgb[0, :, 0, 0].tolist() == pytest.approx([1.0, 0.0, 0.2])
    assert bgr[0, :, 0, 0].tolist() == pytest.approx([0.2, 0.0, 1.0])


def _file(tmp_path: Path, section: str) -> Path:
    path = tmp_path / "mine.yaml"
    path.write_text("aaron_container:\n  ros__parameters:\n    components: [mine]\nmine:\n  ros__parameters:\n"
                    + textwrap.indent(textwrap.dedent(section), "    "))
    return path


@pytest.mark.parametrize("section, key, words", [
    ("model: my_cnn\n", "model", "unknown model 'my_cnn': not a zoo model"),
    ("model: user_models:two_path\n", "output", "is required"),
    ("model: user_models:two_path\noutput: classes\n", "input_size", "is required"),
    ("model: nowhere/my.onnx\noutput: classes\nweights: w.pt\n", "weights", "holds its own weights"),
    ("model: tiny_yolo\noutput: classes\n", "output", "tiny_yolo's output is detections"),
    ("model: user_models:two_path\noutput: boxes\ninput_size: [64, 80]\n", "output", "must be one of"),
    ("model: user_models:two_path\noutput: classes\ninput_size: [64, 80]\nstd: [1.0, 0.0, 1.0]\n", "std",
     "must not hold 0"),
])
def test_a_bad_declaration_is_refused_naming_its_key(tmp_path, section, key, words):
    with pytest.raises(ValueError, match=rf"mine\.ros__parameters\.{key}: .*{words}"):
        load_config(_file(tmp_path, section))


@pytest.mark.parametrize("model, words", [
    ("user_models:nowhere", "has no attribute 'nowhere'"),
    ("user_models:not_a_module", "returned a str, not a torch nn.Module"),
    ("missing/my.onnx", "model file missing/my.onnx does not exist"),
])
def test_a_declaration_that_cannot_be_built_says_why(model, words):
    with pytest.raises(ValueError, match=words):
        build_model(ModelSpec(model, input_size=(64, 80), output="classes"))


def test_compile_from_a_file_names_the_component_whose_model_cannot_be_built(tmp_path, capsys, monkeypatch):
    """A file of several models says which component's is wrong, before any bag is built."""
    from aaron_ros.cli import main

    monkeypatch.chdir(tmp_path)  # the file's kernel_bag_dir, kernel_bags/, is relative to it
    cfg = _file(tmp_path, "model: missing/my.onnx\noutput: classes\n")
    cfg.write_text(cfg.read_text().replace("components: [mine]", "components: [good, mine]")
                   + "good:\n  ros__parameters:\n    model: user_models:small_cnn\n    input_size: [64, 80]\n"
                   "    output: classes\n")
    assert main(["compile", "--config", str(cfg), "--no-progress"]) == 2
    assert f"{cfg}: mine.ros__parameters.model: model file missing/my.onnx does not exist" in capsys.readouterr().err
    assert not (tmp_path / "kernel_bags").exists()


def test_factory_and_onnx_models_compile_from_the_file_and_serve_a_compressed_bag_with_labels(tmp_path, ros_domain):
    """The README's path: a parameter file declares the models, `compile --config` builds their
    kernel bags from it, and the container serves them from a jpeg bag with class names."""
    pytest.importorskip("rclpy")
    from rclpy.time import Time

    from aaron_ros.cli import main
    from aaron_ros.msg import InferenceResult
    from aaron_ros.ros.container import Container, ContainerOptions
    from aaron_ros.ros.record import sample_frames, write_image_bag

    onnx = _onnx(tmp_path)
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"kind {i}\n" for i in range(7)))
    bag = tmp_path / "jpeg_bag"
    write_image_bag(bag, sample_frames(width=160, height=120, fps=10.0, seconds=1.0), topic="/cam/image/compressed",
                    encoding="jpeg", progress=False)
    cfg = tmp_path / "mine.yaml"
    cfg.write_text(textwrap.dedent(f"""\
        /**:
          ros__parameters:
            input_topic: /cam/image
            image_transport: compressed
            kernel_bag_dir: {tmp_path / "bags"}
            labels: {labels}
            output: classes
        aaron_container:
          ros__parameters:
            components: [branchy, exported, passthrough]
        bag_player:
          ros__parameters:
            restamp: false  # results keep the bag's stamps: each is matched with its own frame
        branchy:
          ros__parameters:
            model: user_models:two_path
            input_size: [64, 80]
            criticality: critical
            deadline_ms: 500.0
        exported:
          ros__parameters:
            model: {onnx}
            deadline_ms: 500.0
            resize: letterbox
        passthrough:
          ros__parameters:
            model: user_models:small_cnn
            input_size: [64, 80]
            output: raw
            deadline_ms: 500.0
        """))
    assert main(["compile", "--config", str(cfg), "--backends", "eager,onnxruntime", "--kinds", "compute",
                 "--reps", "2", "--budget-s", "60", "--min-stage-ms", "0", "--no-progress"]) == 0
    assert {p.name for p in (tmp_path / "bags").iterdir()} == {"user_models.two_path", "small_cnn",
                                                              "user_models.small_cnn"}
    container = Container(ContainerOptions(cfg, bag=str(bag), domain_id=ros_domain))
    from aaron_ros.ros import vision

    heard = {name: [] for name in ("branchy", "exported", "passthrough")}
    for name, got in heard.items():
        container.node.create_subscription(InferenceResult, f"/aaron/{name}/result", got.append, 50)
    vision_heard = []
    if vision.vm is not None:  # a ROS 2 install with vision_msgs: results come as Classification too
        container.node.create_subscription(vision.vm.Classification, "/aaron/branchy/result/classification",
                                           vision_heard.append, 50)
    try:
        bags = container.coordinator.service.bags
        assert bags["user_models.two_path"].fallback_reason is None and bags["small_cnn"].fallback_reason is None
        assert any(v.backend == "onnxruntime" for vs in bags["small_cnn"].versions.values() for v in vs)
        container.spin(duration_s=60)  # the 1 s bag, to its end
    finally:
        container.shutdown()
    if vision.vm is None:  # no vision_msgs here: that output is skipped, nothing else changes
        assert container.components["branchy"].vision_topic == ""
    else:
        assert [h.class_id for h in vision_heard[0].results] == list(heard["branchy"][0].class_names)
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import CompressedImage

    from aaron_ros.ros.image_conversions import decode_compressed
    from aaron_ros.ros.record import open_reader

    reader = open_reader(bag)
    try:  # each frame as the container decoded it
        frames = {stamp: decode_compressed(deserialize_message(data, CompressedImage))
                  for _, stamp, data in reader.messages()}
    finally:
        reader.close()
    for r in heard["passthrough"]:  # the raw output as it came out of the model, with its shape
        assert r.kind == InferenceResult.KIND_RAW and list(r.raw_shape) == [1, 5] and not r.class_ids
        with torch.inference_mode():
            want = small_cnn()(array_to_tensor(frames[Time.from_msg(r.header.stamp).nanoseconds], (64, 80)))
        assert list(r.raw) == pytest.approx(want.flatten().tolist(), abs=1e-5)
    assert len(heard["passthrough"]) >= 5
    for name, model, letterbox in (("branchy", two_path().eval(), False), ("exported", small_cnn(), True)):
        results = heard[name]
        assert len(results) >= 5, name
        for r in results:
            assert r.model == ("user_models.two_path" if name == "branchy" else "small_cnn")
            assert r.class_names == [f"kind {i}" for i in r.class_ids]
            with torch.inference_mode():
                frame = frames[Time.from_msg(r.header.stamp).nanoseconds]
                want = top_k_classes(model(array_to_tensor(frame, (64, 80), letterbox=letterbox)))
            assert list(r.class_ids) == want.class_ids.tolist(), name
            assert list(r.scores) == pytest.approx(want.scores.tolist(), abs=1e-5), name


def test_results_as_vision_msgs_where_that_package_is_installed():
    """Only on a ROS 2 install with vision_msgs (the PyPI wheels have none: skipped here)."""
    pytest.importorskip("vision_msgs")
    from std_msgs.msg import Header

    from aaron_ros.ros import vision

    boxes = np.array([[10, 20, 30, 60]], np.float32)
    det = vision.to_vision(Header(frame_id="cam"), "detections", [2], [0.75], boxes, ["a", "b", ""])
    d = det.detections[0]
    point = getattr(d.bbox.center, "position", d.bbox.center)
    assert (point.x, point.y, d.bbox.size_x, d.bbox.size_y) == (20, 40, 20, 40)
    assert d.results[0].hypothesis.class_id == "2" and d.results[0].hypothesis.score == pytest.approx(0.75)
    cls = vision.to_vision(Header(), "classes", [1, 0], [0.6, 0.3], np.zeros((0, 4)), ["a", "b"])
    assert [h.class_id for h in cls.results] == ["b", "a"]


def test_letterbox_keeps_the_aspect_and_boxes_and_masks_map_back_to_the_image():
    from aaron_ros.ros.image_conversions import LETTERBOX_FILL, fit

    arr = np.full((100, 200, 3), 200, np.uint8)  # wide: padded above and below
    x = array_to_tensor(arr, (100, 100), mean=(0, 0, 0), std=(1, 1, 1), letterbox=True)
    f = fit((100, 200), (100, 100), letterbox=True)
    assert (f.pad_x, f.pad_y, f.width, f.height) == (0, 25, 100, 50)
    assert x[0, 0, 10, 50].item() == pytest.approx(LETTERBOX_FILL / 255) and x[0, 0, 50, 50].item() == \
        pytest.approx(200 / 255)
    # A box over the whole image in input pixels is the whole image again.
    assert f.to_image(np.array([[0, 25, 100, 75]], np.float32)).tolist() == [[0, 0, 200, 100]]
    mask = np.zeros((50, 50), np.uint8)  # a mask at half the input's resolution
    mask[12:38] = 1  # where the image lies
    assert (f.crop(mask, (100, 100)) == 1).all() and f.crop(mask, (100, 100)).shape == (26, 50)
    stretched = fit((100, 200), (100, 100))
    assert stretched.to_image(np.array([[0, 0, 100, 100]], np.float32)).tolist() == [[0, 0, 200, 100]]


def test_paths_joined_by_one_concatenation_become_a_branch_group():
    """Mixed: stem | three paths, torch.cat | head. The middle stage is a branch group the
    coordinator may run side by side; its branches, joined, give the model's own output."""
    from user_models import mixed

    graph = build_model(ModelSpec("user_models:mixed", input_size=(32, 32), output="mask"))
    assert [s.is_branch_group for s in graph.stages] == [False, True, False]
    assert len(graph.stages[1].branches) == 3
    x = torch.randn(1, 3, 32, 32)
    with torch.inference_mode():
        want = mixed()(x)
        assert torch.equal(graph.run_stages(x), want)
        h = graph.stages[0](x)
        joined = graph.stages[1].join([b(h) for b in graph.stages[1].branches])
        assert torch.equal(graph.stages[2](joined), want)
