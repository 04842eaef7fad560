"""Model zoo: stage graphs compute what the whole model computes, architectures are faithful
(parameter and FLOP counts match the published ones), weights are deterministic and load
strictly, and postprocessing decodes what it should."""
from __future__ import annotations

import math
import secrets

import numpy as np
import pytest
import torch
from torch import nn

from aaron_ros.models import (
    Branches,
    Classification,
    Detections,
    Stage,
    StageGraph,
    WeightsError,
    YoloDecoder,
    argmax_mask,
    batched_nms,
    build_model,
    count_flops,
    count_params,
    describe,
    fuse,
    group_stages,
    init_weights,
    load_weights,
    model_names,
    top_k_classes,
    wrap,
)

EXPECTED_OUTPUT = {
    "mobilenet_v3_small": (1, 1000),
    "shufflenet_v2": (1, 1000),
    "resnet18": (1, 1000),
    "inception_v3": (1, 1000),
    "tiny_yolo": (1, 5 * (5 + 20), 10, 10),
    "seg_net": (1, 19, 240, 320),
}


@pytest.fixture(scope="module")
def zoo():
    """Builds each zoo model once per module."""
    cache: dict[str, StageGraph] = {}

    def get(name: str) -> StageGraph:
        if name not in cache:
            cache[name] = build_model(name)
        return cache[name]

    return get


def fresh_input(graph: StageGraph) -> tuple[torch.Tensor, int]:
    """A new random input every run; the seed goes into failure messages to reproduce it."""
    seed = secrets.randbits(31)
    return graph.example_input(generator=torch.Generator().manual_seed(seed)), seed


def test_zoo_names():
    assert model_names() == list(EXPECTED_OUTPUT)


def test_unknown_model_lists_known_ones():
    with pytest.raises(KeyError, match="resnet18") as info:
        build_model("resnet19")
    assert "resnet19" in str(info.value) and "tiny_yolo" in str(info.value)


@pytest.mark.parametrize("name", list(EXPECTED_OUTPUT))
def test_stages_compute_the_whole_model(zoo, name):
    graph = zoo(name)
    assert 6 <= len(graph) <= 20
    assert not graph.model.training
    x, seed = fresh_input(graph)
    staged = graph.run_stages(x)
    whole = graph.run_whole(x)
    assert tuple(staged.shape) == EXPECTED_OUTPUT[name]
    assert torch.isfinite(staged).all(), f"non-finite output (input seed {seed})"
    torch.testing.assert_close(staged, whole, rtol=1e-5, atol=1e-6, msg=lambda m: f"input seed {seed}: {m}")


@pytest.mark.parametrize("name", list(EXPECTED_OUTPUT))
def test_postprocess_matches_output_kind(zoo, name):
    graph = zoo(name)
    result = graph.postprocess(graph.run_whole(graph.example_input()))
    match graph.output_kind:
        case "classes":
            assert isinstance(result, Classification) and result.class_ids.shape == (5,)
        case "detections":
            assert isinstance(result, Detections)
        case "mask":
            assert result.shape == graph.input_shape[1:] and result.dtype == torch.uint8
        case kind:
            pytest.fail(f"unexpected output kind {kind!r}")


def test_inception_mixed_blocks_are_branch_groups(zoo):
    graph = zoo("inception_v3")
    groups = [s for s in graph.stages if s.is_branch_group]
    assert [s.name.split("_", 1)[1] for s in groups] == [
        f"mixed_{b}" for b in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c")
    ]
    assert [len(s.branches) for s in groups] == [4, 4, 4, 3, 4, 4, 4, 4, 3, 4, 4]

    x, seed = fresh_input(graph)
    with torch.inference_mode():
        for stage in graph.stages:
            out = stage(x)
            if stage.is_branch_group:
                parts = [branch(x) for branch in stage.branches]
                assert sum(p.shape[1] for p in parts) == out.shape[1]
                torch.testing.assert_close(
                    Stage.join(parts), out, rtol=1e-5, atol=1e-6,
                    msg=lambda m, stage=stage: f"{stage.name}, seed {seed}: {m}",
                )
            x = out


def test_same_seed_same_weights_whatever_the_global_rng():
    first = build_model("mobilenet_v3_small", seed=7).model.state_dict()
    torch.manual_seed(12345)
    torch.rand(100)
    rng_before = torch.get_rng_state()
    second = build_model("mobilenet_v3_small", seed=7).model.state_dict()
    assert torch.equal(torch.get_rng_state(), rng_before), "building a model consumed the global RNG"
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)

    other = build_model("mobilenet_v3_small", seed=8).model.state_dict()
    differing = [k for k in first if not torch.equal(first[k], other[k])]
    assert any(k.endswith("weight") for k in differing)


def test_init_weights_refuses_modules_it_cannot_initialise():
    with pytest.raises(TypeError, match="LayerNorm"):
        init_weights(nn.Sequential(nn.Conv2d(3, 4, 1), nn.LayerNorm(4)), seed=0)


def test_wrap_sequential_gives_one_stage_per_child():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        Branches(nn.Conv2d(4, 2, 1), nn.Conv2d(4, 3, 1)),
        nn.Flatten(),
    )
    graph = wrap(model, "user", (3, 8, 8))
    assert [s.name for s in graph.stages] == ["00_0", "01_1", "02_2", "03_3"]
    assert [s.is_branch_group for s in graph.stages] == [False, False, True, False]
    assert len(graph.stages[2].branches) == 2
    assert not model.training
    x = torch.randn(2, 3, 8, 8)
    out = graph.run_stages(x)
    assert out.shape == (2, 5 * 8 * 8)
    torch.testing.assert_close(out, graph.run_whole(x))


def test_stages_are_grouped_until_each_is_worth_a_grant():
    costs = [0.3, 0.4, 0.5, 2.0, 0.2, 0.9, 0.1]
    assert group_stages(costs, [False] * 7, 1.0) == [[0, 1, 2], [3], [4, 5, 6]]
    # A branch group stays alone; what is short before it stays a group of its own.
    assert group_stages(costs, [False, False, True, False, False, False, False], 1.0) == [
        [0, 1], [2], [3], [4, 5, 6]]
    # A short end joins the group before it.
    assert group_stages([1.5, 0.2], [False, False], 1.0) == [[0, 1]]
    assert group_stages([0.2, 0.2], [False, True], 1.0) == [[0], [1]]
    assert group_stages(costs, [False] * 7, 0.0) == [[i] for i in range(7)]


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "inception_v3"])
def test_fused_stages_compute_the_whole_model(zoo, name):
    graph = zoo(name)
    n = len(graph.stages)
    branch = [s.is_branch_group for s in graph.stages]
    groups = group_stages([1.0] * n, branch, 3.0)
    fused = fuse(graph, groups)
    assert len(fused.stages) == len(groups) < n and [s.index for s in fused.stages] == list(range(len(groups)))
    assert [s.is_branch_group for s in fused.stages] == [any(branch[i] for i in g) for g in groups]
    assert all(not s.module.training for s in fused.stages)
    x, seed = fresh_input(graph)
    torch.testing.assert_close(fused.run_stages(x), graph.run_whole(x), rtol=1e-5, atol=1e-5,
                               msg=lambda m: f"seed {seed}: {m}")
    with pytest.raises(ValueError, match="once, in order"):
        fuse(graph, [list(range(1, n)), [0]])
    if any(branch):
        i = branch.index(True)
        with pytest.raises(ValueError, match="branch group"):
            fuse(graph, [list(range(i + 1)), *([j] for j in range(i + 1, n))])


def test_wrap_other_module_gives_one_stage():
    model = nn.Conv2d(3, 4, 3)
    graph = wrap(model, "conv", (3, 8, 8))
    assert len(graph) == 1 and graph.stages[0].module is model and graph.stages[0].name == "00_Conv2d"
    # A user's module comes with autograd on: wrapped, it is off (compiling a stage traced it otherwise).
    assert not any(p.requires_grad for p in model.parameters()) and not model.training


def test_load_weights_round_trip(tmp_path):
    source = build_model("shufflenet_v2", seed=0)
    path = tmp_path / "shufflenet.pt"
    torch.save(source.model.state_dict(), path)

    loaded = build_model("shufflenet_v2", seed=1, weights=path)
    x, seed = fresh_input(source)
    assert not torch.allclose(build_model("shufflenet_v2", seed=1).run_whole(x), source.run_whole(x))
    torch.testing.assert_close(loaded.run_whole(x), source.run_whole(x), msg=lambda m: f"seed {seed}: {m}")


def test_load_weights_names_every_mismatch(tmp_path):
    model = build_model("resnet18").model
    state = dict(model.state_dict())
    del state["layer2_0.shortcut.1.running_var"]
    state["fc.extra"] = torch.zeros(3)
    state["classifier.2.weight"] = torch.zeros(10, 512)
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    before = {k: v.clone() for k, v in model.state_dict().items()}

    with pytest.raises(WeightsError) as info:
        load_weights(model, path)
    message = str(info.value)
    assert "1 missing keys: layer2_0.shortcut.1.running_var" in message
    assert "1 unexpected keys: fc.extra" in message
    assert "1 shape mismatches: classifier.2.weight: expected (1000, 512), got (10, 512)" in message
    assert isinstance(info.value, ValueError)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "failed load changed the model"


def test_weights_under_other_names_load_by_position_and_a_misfit_is_told_short(tmp_path, caplog):
    """A torchvision-style resnet18 state dict: the same 122 tensors in the same order, other names."""
    source = build_model("resnet18", seed=3)
    renamed = {f"tv.{i}.{k.rsplit('.', 1)[-1]}": v for i, (k, v) in enumerate(source.model.state_dict().items())}
    path = tmp_path / "tv.pt"
    torch.save(renamed, path)
    with caplog.at_level("INFO"):
        loaded = build_model("resnet18", seed=4, weights=path)
    assert "resnet18: the weights' 122 tensors have other names" in caplog.text
    x, _ = fresh_input(source)
    torch.testing.assert_close(loaded.run_whole(x), source.run_whole(x))
    # One shape off: not by position; the error names the model and shows a few of 122 keys.
    renamed[next(iter(renamed))] = torch.zeros(1)
    torch.save(renamed, path)
    with pytest.raises(WeightsError) as info:
        build_model("resnet18", weights=path)
    message = str(info.value)
    assert message.startswith("weights do not fit resnet18 (122 tensors; the weights have 122)")
    assert "122 missing keys: stem.0.0.weight" in message and "... 117 more" in message and len(message) < 1200


def test_load_weights_bad_files(tmp_path):
    model = nn.Linear(2, 2)
    with pytest.raises(WeightsError, match="not found.*nope.pt"):
        load_weights(model, tmp_path / "nope.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read"):
        load_weights(model, garbage)
    not_a_state_dict = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], not_a_state_dict)
    with pytest.raises(WeightsError, match="does not hold a state dict"):
        load_weights(model, not_a_state_dict)


def yolo_cell(raw: torch.Tensor, anchor: int, row: int, col: int, *, obj: float, cls: int, tw: float = 0.0) -> None:
    """Write one confident prediction into a (125, 10, 10) tiny-YOLO output (tx = ty = th = 0)."""
    base = anchor * 25
    raw[base + 2, row, col] = tw
    raw[base + 4, row, col] = obj
    raw[base + 5 + cls, row, col] = 20.0


def test_yolo_decode_known_cells(zoo):
    decode = zoo("tiny_yolo").postprocess
    raw = torch.zeros(125, 10, 10)
    raw[4::25] = -20.0  # objectness of every anchor everywhere: nothing there
    yolo_cell(raw, anchor=0, row=3, col=4, obj=20.0, cls=7)
    yolo_cell(raw, anchor=2, row=7, col=1, obj=3.0, cls=3, tw=math.log(0.5))
    yolo_cell(raw, anchor=4, row=0, col=0, obj=1.0, cls=0)  # huge anchor, clipped to the image

    dets = decode(raw[None])
    assert len(dets) == 3
    assert dets.classes.tolist() == [7, 3, 0]
    sigmoid = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    np.testing.assert_allclose(dets.scores, [sigmoid(20), sigmoid(3), sigmoid(1)], rtol=1e-4)
    cell = 32.0  # 320 px / 10 cells; the box centre is mid-cell since sigmoid(0) = 0.5
    w0, h0 = 1.08 * cell, 1.19 * cell
    w2, h2 = 6.63 * cell * 0.5, 11.38 * cell
    w4, h4 = 16.62 * cell, 10.52 * cell
    expected = torch.tensor(
        [
            [4.5 * cell - w0 / 2, 3.5 * cell - h0 / 2, 4.5 * cell + w0 / 2, 3.5 * cell + h0 / 2],
            [1.5 * cell - w2 / 2, 7.5 * cell - h2 / 2, 1.5 * cell + w2 / 2, 7.5 * cell + h2 / 2],
            [0.5 * cell - w4 / 2, 0.5 * cell - h4 / 2, 0.5 * cell + w4 / 2, 0.5 * cell + h4 / 2],
        ]
    ).clamp(0, 320)
    np.testing.assert_allclose(dets.boxes, expected.numpy(), rtol=1e-5, atol=1e-4)

    with pytest.raises(ValueError, match="one image"):
        decode(torch.zeros(2, 125, 10, 10))


def test_yolo_decode_suppresses_and_caps():
    decode = YoloDecoder(anchors=((2.0, 2.0), (2.0, 2.0)), num_classes=2, input_size=(64, 64), max_detections=2)
    raw = torch.zeros(2 * 7, 4, 4)
    raw[4::7] = -20.0  # no objects but the four below
    objects = ((0, 5.0, (1, 1), 0), (1, 2.0, (1, 1), 0), (1, 1.0, (3, 3), 1), (0, 0.5, (3, 0), 1))
    for anchor, obj, (row, col), cls in objects:
        raw[anchor * 7 + 4, row, col] = obj
        raw[anchor * 7 + 5 + cls, row, col] = 20.0
    dets = decode(raw)
    # The same box twice in class 0: the weaker is suppressed; of the three left the top 2 remain.
    assert dets.classes.tolist() == [0, 1]
    assert dets.boxes.tolist() == [[8.0, 8.0, 40.0, 40.0], [40.0, 40.0, 64.0, 64.0]]


def test_yolo_decode_matches_the_definition_on_random_heads():
    """The compiled decoding against the definition in numpy, on heads with many candidates."""
    anchors = ((1.0, 1.5), (3.0, 2.0), (6.0, 7.0))
    decode = YoloDecoder(anchors=anchors, num_classes=4, input_size=(96, 128), score_threshold=0.2,
                         iou_threshold=1.0, max_detections=1000)  # nothing suppressed: every candidate
    sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    rng = np.random.default_rng(5)
    for _ in range(5):
        raw = rng.normal(0.0, 2.0, (3 * 9, 6, 8)).astype(np.float32)
        pred = raw.reshape(3, 9, 6, 8).astype(np.float64)
        probs = np.exp(pred[:, 5:]) / np.exp(pred[:, 5:]).sum(axis=1, keepdims=True)
        scores = sigmoid(pred[:, 4]) * probs.max(axis=1)  # (anchor, row, column)
        anchor, row, col = np.nonzero(scores > 0.2)
        cx, cy = (sigmoid(pred[anchor, 0, row, col]) + col) * 16, (sigmoid(pred[anchor, 1, row, col]) + row) * 16
        half = np.exp(pred[anchor, 2:4, row, col]) * np.asarray(anchors)[anchor] * 16 / 2
        boxes = np.stack((cx - half[:, 0], cy - half[:, 1], cx + half[:, 0], cy + half[:, 1]), axis=1)
        boxes = boxes.clip(0, [128, 96, 128, 96])
        by_score = np.argsort(-scores[anchor, row, col], kind="stable")

        dets = decode(torch.from_numpy(raw))
        assert len(dets) == len(anchor) > 20
        np.testing.assert_allclose(dets.scores, scores[anchor, row, col][by_score], rtol=1e-5)
        np.testing.assert_allclose(dets.boxes, boxes[by_score], rtol=1e-5, atol=1e-3)
        assert dets.classes.tolist() == probs.argmax(axis=1)[anchor, row, col][by_score].tolist()


def test_nms_is_class_aware():
    boxes = np.array([[0.0, 0, 10, 10], [1, 1, 11, 11], [1, 1, 11, 11], [50, 50, 60, 60]])
    scores = np.array([0.8, 0.9, 0.7, 0.6])
    classes = np.array([1, 1, 2, 1])
    # Box 0 overlaps the better box 1 of its class (IoU 81/119): suppressed. Box 2 overlaps it
    # as much but is another class: kept.
    assert batched_nms(boxes, scores, classes, iou_threshold=0.45).tolist() == [1, 2, 3]
    assert batched_nms(boxes, scores, classes, iou_threshold=0.7).tolist() == [1, 0, 2, 3]
    assert batched_nms(boxes, scores, classes, iou_threshold=0.7, max_kept=2).tolist() == [1, 0]


def test_nms_keeps_equal_scores_in_order_and_drops_boxes_without_area():
    boxes = np.array([[0.0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 20, 30], [40, 40, 50, 50]])
    scores = np.full(4, 0.5)
    # The first of two equal boxes with equal scores stays; the flat box is no detection.
    assert batched_nms(boxes, scores, np.zeros(4, int), iou_threshold=0.45).tolist() == [0, 3]
    assert batched_nms(boxes[::-1].copy(), scores, np.zeros(4, int), iou_threshold=0.45).tolist() == [0, 2]


def test_nms_matches_a_greedy_reference():
    """OpenCV's NMS against the definition, on random boxes with many overlaps and ties."""
    def iou(a, b):
        w, h = np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2])
        inter = max(w, 0) * max(h, 0)
        return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)

    rng = np.random.default_rng(3)
    for _ in range(20):
        n = int(rng.integers(1, 120))
        boxes = rng.random((n, 4)) * 100
        boxes[:, 2:] = boxes[:, :2] + 1 + rng.random((n, 2)) * 40
        scores = np.round(rng.random(n) * 4) / 4  # many ties
        classes = rng.integers(0, 3, n)
        kept: list[int] = []
        for i in sorted(range(n), key=lambda i: -scores[i]):  # sorted() is stable
            if all(classes[k] != classes[i] or iou(boxes[k], boxes[i]) <= 0.45 for k in kept):
                kept.append(i)
        assert batched_nms(boxes, scores, classes, iou_threshold=0.45).tolist() == kept


def test_seg_postprocess_gives_input_sized_mask(zoo):
    graph = zoo("seg_net")
    logits = graph.run_whole(graph.example_input())
    mask = graph.postprocess(logits)
    assert mask.shape == (240, 320) and mask.dtype == torch.uint8
    assert torch.equal(mask, logits[0].argmax(0).to(torch.uint8))

    hand = torch.zeros(1, 19, 4, 6)
    hand[0, 18, 1:3, 2:5] = 1.0
    expected = torch.zeros(4, 6, dtype=torch.uint8)
    expected[1:3, 2:5] = 18
    assert torch.equal(argmax_mask(hand), expected)
    hand[0, 7, 1, 2] = 1.0  # a tie goes to the lower class, as torch's argmax
    expected[1, 2] = 7
    assert torch.equal(argmax_mask(hand), expected)


@pytest.mark.parametrize("classes, height, width", [(19, 240, 320), (1, 3, 5), (2, 1, 512), (3, 1, 513),
                                                   (256, 7, 9)])
def test_argmax_mask_is_torchs_argmax_across_block_edges_and_ties(classes, height, width):
    # The compiled kernel runs blocks of 512 pixels: sizes on either side of a block's edge.
    logits = torch.randn(classes, height, width, generator=torch.Generator().manual_seed(classes))
    logits[:, 0, : width // 2] = 0.25  # every class ties here: class 0 wins
    logits[classes // 2:, -1, -1] = 9.0  # a tie among the upper half: its lowest wins
    assert torch.equal(argmax_mask(logits).long(), logits.argmax(0))
    # A view with strides of its own (the channels-last layout a backend may hand back).
    channels_last = logits.permute(1, 2, 0).contiguous().permute(2, 0, 1)
    assert torch.equal(argmax_mask(channels_last[None]), argmax_mask(logits))


def test_argmax_mask_refuses_more_classes_than_a_uint8_holds():
    with pytest.raises(ValueError, match="256 classes"):
        argmax_mask(torch.zeros(257, 2, 2))


def test_top_k_classes():
    result = top_k_classes(torch.tensor([[0.0, 3.0, 1.0, 5.0, 2.0, -1.0, 4.0]]))
    assert result.class_ids.tolist() == [3, 6, 1, 4, 2]
    torch.testing.assert_close(result.scores, torch.softmax(torch.tensor([5.0, 4, 3, 2, 1, 0, -1]), 0)[:5])


def test_count_flops_and_params_on_a_known_model():
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),  # 5*5*8 outputs x 27 MACs = 5400
        nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False),  # 200 outputs x 9 MACs = 1800
        nn.Flatten(),
        nn.Linear(200, 4),  # 800 MACs
    )
    assert count_flops(model, torch.zeros(1, 3, 5, 5)) == 2 * (5400 + 1800 + 800)
    assert count_params(model) == (8 * 27 + 8) + 8 * 9 + (200 * 4 + 4)


@pytest.mark.parametrize(
    ("name", "params", "tolerance"),
    [
        ("resnet18", 11.7e6, 0.02),
        ("mobilenet_v3_small", 2.5e6, 0.05),
        ("shufflenet_v2", 2.3e6, 0.05),
        ("inception_v3", 23.8e6, 0.05),
    ],
)
def test_parameter_counts_match_the_papers(name, params, tolerance):
    assert describe(name).params == pytest.approx(params, rel=tolerance)


@pytest.mark.parametrize(
    ("name", "gflops", "tolerance"), [("resnet18", 3.6, 0.10), ("mobilenet_v3_small", 0.12, 0.25)]
)
def test_flops_match_the_papers(name, gflops, tolerance):
    info = describe(name)
    assert info.gflops == pytest.approx(gflops, rel=tolerance)
    assert (info.name, info.input_shape, info.output_kind) == (name, (3, 224, 224), "classes")
    assert info.stages == len(build_model(name))


def test_a_model_says_how_many_classes_its_results_carry():
    """What a `labels` file must cover: ImageNet's 1000, VOC's 20 boxes' classes, 19 mask classes."""
    assert [describe(n).classes for n in ("mobilenet_v3_small", "tiny_yolo", "seg_net")] == [1000, 20, 19]
