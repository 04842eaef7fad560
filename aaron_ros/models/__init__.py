"""DNN models as stage graphs: the built-in zoo, weights, cost estimates and postprocessing."""
from .detection import Detections, YoloDecoder, batched_nms
from .flops import count_flops, count_params
from .postprocess import Classification, argmax_mask, top_k_classes
from .registry import ZOO, ModelInfo, build_model, describe, model_names
from .source import ModelSpec, OutputKind, SourceKind, model_key, source_kind
from .stage_graph import Branches, Stage, StageGraph, fuse, group_stages, wrap
from .weights import WeightsError, init_weights, load_weights

__all__ = [
    "ZOO",
    "Branches",
    "Classification",
    "Detections",
    "ModelInfo",
    "ModelSpec",
    "OutputKind",
    "SourceKind",
    "Stage",
    "StageGraph",
    "WeightsError",
    "YoloDecoder",
    "argmax_mask",
    "batched_nms",
    "build_model",
    "count_flops",
    "count_params",
    "describe",
    "fuse",
    "group_stages",
    "init_weights",
    "load_weights",
    "model_key",
    "model_names",
    "source_kind",
    "top_k_classes",
    "wrap",
]
