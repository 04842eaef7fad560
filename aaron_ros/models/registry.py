"""The built-in model zoo: names -> stage graphs with deterministic weights."""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache

import torch
from torch import nn

from . import inception_v3, mobilenet_v3, resnet, seg_net, shufflenet_v2, tiny_yolo
from .auto_stages import auto_stages
from .flops import count_flops, count_params
from .postprocess import argmax_mask, top_k_classes
from .source import POSTPROCESS, DeclarationError, ModelSpec, OutputKind, SourceKind, load_source
from .stage_graph import StageGraph, wrap
from .weights import init_weights, load_weights


@dataclass(frozen=True)
class ZooEntry:
    build: Callable[[], nn.Sequential]
    input_shape: tuple[int, int, int]
    output_kind: str
    postprocess: Callable[[torch.Tensor], object]


ZOO: dict[str, ZooEntry] = {
    "mobilenet_v3_small": ZooEntry(
        mobilenet_v3.mobilenet_v3_small, mobilenet_v3.INPUT_SHAPE, "classes", top_k_classes
    ),
    "shufflenet_v2": ZooEntry(
        shufflenet_v2.shufflenet_v2_x1_0, shufflenet_v2.INPUT_SHAPE, "classes", top_k_classes
    ),
    "resnet18": ZooEntry(resnet.resnet18, resnet.INPUT_SHAPE, "classes", top_k_classes),
    "inception_v3": ZooEntry(inception_v3.inception_v3, inception_v3.INPUT_SHAPE, "classes", top_k_classes),
    "tiny_yolo": ZooEntry(tiny_yolo.tiny_yolo, tiny_yolo.INPUT_SHAPE, "detections", tiny_yolo.decoder()),
    "seg_net": ZooEntry(seg_net.seg_net, seg_net.INPUT_SHAPE, "mask", argmax_mask),
}


def model_names() -> list[str]:
    return list(ZOO)


def build_model(
    name: str | ModelSpec, seed: int = 0, weights: str | os.PathLike | Mapping[str, torch.Tensor] | None = None
) -> StageGraph:
    """A model as a stage graph, in eval mode with gradients off: a zoo model by name, or any
    model a `ModelSpec` declares (`source.py`).

    A zoo model's weights come from `seed` (deterministic) or, when given, from `weights` (a
    state-dict file or mapping that must fit exactly; see `load_weights`).
    """
    if isinstance(name, ModelSpec):
        return _build_spec(name, seed)
    if name not in ZOO:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(ZOO)}")
    entry = ZOO[name]
    # Built on the meta device: no time spent on (and no global RNG consumed by) default init
    # that init_weights or load_weights replaces anyway.
    with torch.device("meta"):
        model = entry.build()
    model.to_empty(device="cpu")
    if weights is None:
        init_weights(model, seed)
    else:
        load_weights(model, weights, name)
    return wrap(model, name, entry.input_shape, output_kind=entry.output_kind, postprocess=entry.postprocess)


def _build_spec(spec: ModelSpec, seed: int) -> StageGraph:
    spec.check()
    if spec.kind is SourceKind.ZOO:
        return build_model(spec.model, seed, spec.weights or None)
    module, (h, w) = load_source(spec.model, spec.input_size)
    if spec.weights:  # else the factory's own weights
        load_weights(module, spec.weights, spec.key)
    if not isinstance(module, nn.Sequential):
        module = auto_stages(module, torch.zeros(1, 3, h, w), spec.key) or module
    kind = OutputKind(spec.output)
    graph = wrap(module, spec.key, (3, h, w), output_kind=str(kind), postprocess=POSTPROCESS[kind])
    if graph.postprocess is not None:  # refused at start, not on every frame
        with torch.inference_mode():
            out = graph.run_whole(torch.zeros(1, 3, h, w))
        try:
            graph.postprocess(out)
        except ValueError as exc:
            raise DeclarationError("output", f"{kind} does not fit {spec.model}'s output of shape "
                                             f"{list(out.shape)}: {exc}") from None
    return graph


@dataclass(frozen=True)
class ModelInfo:
    name: str
    input_shape: tuple[int, int, int]
    stages: int
    params: int
    gflops: float  # one batch-1 forward pass
    output_kind: str
    classes: int | None  # the class ids its results carry (a labels file needs as many lines); None: raw

    @classmethod
    def of(cls, graph: StageGraph) -> ModelInfo:
        example = torch.zeros(1, *graph.input_shape)  # values do not change the FLOP count
        with torch.inference_mode():
            out = graph.model(example)
        classes = {"classes": lambda: out.shape[-1], "mask": lambda: out.shape[1],
                   "detections": lambda: getattr(graph.postprocess, "num_classes", None)}
        return cls(
            name=graph.name,
            input_shape=graph.input_shape,
            stages=len(graph),
            params=count_params(graph.model),
            gflops=count_flops(graph.model, example) / 1e9,
            output_kind=graph.output_kind,
            classes=classes.get(graph.output_kind, lambda: None)(),
        )


@cache
def describe(name: str | ModelSpec) -> ModelInfo:
    """Summary of a model for listings (cached: building and measuring takes a moment)."""
    return ModelInfo.of(build_model(name))
