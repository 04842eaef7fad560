"""Where a model comes from: the zoo, a Python factory, a TorchScript or `torch.export` file, or an
ONNX file, declared by one string (a component's `model` parameter) and a few keys beside it.

    model: tiny_yolo                      # a zoo name
    model: my_pkg.models:build            # a function returning an nn.Module (input_size needed)
    model: models/my_cnn.pt               # TorchScript (torch.jit.save; input_size needed)
    model: models/my_cnn.pt2              # torch.export (torch.export.save; input_size needed)
    model: models/my_cnn.onnx             # ONNX (input size read from the file when it is static)

An `nn.Sequential` is cut into stages at its children, any other model where its graph allows
(`auto_stages.py`). An ONNX model
runs through ONNX Runtime: its "eager" version is the file itself on one thread, and the kernel bag
adds thread counts.
"""
from __future__ import annotations

import importlib
import logging
import os
import re
import sys
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .detection import Detections
from .postprocess import argmax_mask, single_image, top_k_classes

log = logging.getLogger(__name__)

# What torchvision's classification weights expect (and so the zoo's): pixels in [0, 1], then these.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class SourceKind(StrEnum):
    ZOO = "zoo"
    FACTORY = "factory"
    TORCHSCRIPT = "torchscript"
    EXPORT = "export"
    ONNX = "onnx"


SUFFIXES = {".pt": SourceKind.TORCHSCRIPT, ".ts": SourceKind.TORCHSCRIPT, ".pt2": SourceKind.EXPORT,
            ".onnx": SourceKind.ONNX}


class OutputKind(StrEnum):
    """What a model's raw output means, and so how it is decoded into a result."""

    CLASSES = "classes"  # (1, C) logits -> top-5 class ids and softmax scores
    DETECTIONS = "detections"  # (1, N, 6) rows x1, y1, x2, y2, score, class in input pixels
    MASK = "mask"  # (1, C, H, W) per-pixel logits -> a class-id mask
    RAW = "raw"  # any one tensor, passed through as it came out


def source_kind(model: str) -> SourceKind:
    """Which kind of declaration `model` is; ValueError when it is none (naming the forms)."""
    from .registry import ZOO

    if model in ZOO:
        return SourceKind.ZOO
    if _FACTORY.match(model):
        return SourceKind.FACTORY
    kind = SUFFIXES.get(Path(model).suffix)
    if kind is None:
        raise ValueError(f"unknown model {model!r}: not a zoo model ({', '.join(ZOO)}), a factory "
                         f"package.module:function, or a model file ({', '.join(SUFFIXES)})")
    return kind


def model_key(model: str) -> str:
    """The name a model goes by (its task's model, its kernel bag's folder): a zoo name, the
    factory's module.function, or a file's stem."""
    kind = source_kind(model)
    if kind is SourceKind.ZOO:
        return model
    if kind is SourceKind.FACTORY:
        return model.replace(":", ".")
    return Path(model).stem


class OnnxModule(nn.Module):
    """An ONNX file as a module: ONNX Runtime on the CPU, on one thread. The file's bytes are a
    buffer, so a kernel bag's weights check sees a changed file; the ONNX Runtime backend builds
    its versions from them (`onnx_bytes`), not by exporting."""

    def __init__(self, data: bytes):
        super().__init__()
        self.register_buffer("onnx", torch.frombuffer(bytearray(data), dtype=torch.uint8))
        self._session = None

    @property
    def onnx_bytes(self) -> bytes:
        return self.onnx.cpu().numpy().tobytes()

    def session(self):
        if self._session is None:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = opts.inter_op_num_threads = 1
            self._session = ort.InferenceSession(self.onnx_bytes, sess_options=opts,
                                                 providers=["CPUExecutionProvider"])
        return self._session

    @classmethod
    def chain(cls, parts: list[OnnxModule]) -> OnnxModule:
        """Parts run one after another, merged into one ONNX model (each part's names prefixed,
        so that parts cut from one model do not clash at their shared boundary)."""
        import onnx
        from onnx import compose

        merged = onnx.load_from_string(parts[0].onnx_bytes)
        for k, part in enumerate(parts[1:], 1):
            nxt = onnx.load_from_string(part.onnx_bytes)
            merged = compose.merge_models(merged, nxt, io_map=[(merged.graph.output[0].name, nxt.graph.input[0].name)],
                                          prefix2=f"part{k}/")
        return cls(merged.SerializeToString())

    def __getstate__(self):  # copies (deepcopy, pickling) open their own session
        return {**self.__dict__, "_session": None}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.session()
        out = s.run(None, {s.get_inputs()[0].name: x.detach().to("cpu", torch.float32).contiguous().numpy()})[0]
        return torch.from_numpy(out).to(x.device)


def onnx_file_bytes(path: str) -> bytes:
    """An ONNX file as one model's bytes with its weights in them. An exporter may write the
    weights to a file beside the model (`torch.onnx.export` does by default): ONNX Runtime, given
    bytes, would look for it in the working directory, and a kernel bag's copy would lack it."""
    import onnx
    from onnx.external_data_helper import load_external_data_for_model

    data = Path(path).read_bytes()
    model = onnx.load_from_string(data)
    if not any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
        return data  # as it is on disk, so that a kernel bag's weights check stays the file's
    try:
        load_external_data_for_model(model, str(Path(path).parent))
    except (OSError, onnx.checker.ValidationError) as exc:
        raise ValueError(f"{path}: its weights, kept in a file beside it, cannot be read: {exc}") from None
    try:
        return model.SerializeToString()
    except ValueError as exc:  # protobuf holds at most 2 GB
        raise ValueError(f"{path}: with its weights it is too large for one ONNX model ({exc})") from None


def onnx_input_size(data: bytes, path: str) -> tuple[int, int]:
    """(H, W) of an ONNX model's first input, which must be a static (1, 3, H, W)."""
    import onnxruntime as ort

    shape = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).get_inputs()[0].shape
    if len(shape) != 4 or not all(isinstance(d, int) for d in shape[1:]) or shape[1] != 3:
        raise ValueError(f"{path}: input shape {shape} is not a static (1, 3, H, W); set input_size")
    return shape[2], shape[3]


def load_source(model: str, input_size: tuple[int, ...] = ()) -> tuple[nn.Module, tuple[int, int]]:
    """The module a checked declaration (`ModelSpec.check`) names, on the CPU, and its (H, W) input
    size. ValueError names what is wrong (a missing file, a factory that is not there or returns
    no module, an ONNX input size other than `input_size`)."""
    kind = source_kind(model)
    if kind in (SourceKind.TORCHSCRIPT, SourceKind.EXPORT, SourceKind.ONNX) and not Path(model).is_file():
        raise ValueError(f"model file {model} does not exist")
    size = tuple(input_size)
    if kind is SourceKind.ONNX:
        data = onnx_file_bytes(model)
        own = onnx_input_size(data, model)
        if size and size != own:
            raise ValueError(f"{model} takes {list(own)}, not input_size {list(size)}")
        return OnnxModule(data), own
    if kind is SourceKind.FACTORY:
        module_name, func = model.split(":")
        if os.getcwd() not in sys.path:  # as `python -m` would: a package beside the parameter file
            sys.path.append(os.getcwd())
        try:
            build = getattr(importlib.import_module(module_name), func)
        except ImportError as exc:
            raise ValueError(f"factory {model}: {exc} (install the package, or run from the folder that "
                             "holds it, or add it to PYTHONPATH)") from None
        except AttributeError as exc:
            raise ValueError(f"factory {model}: {exc}") from None
        module = build()
        if not isinstance(module, nn.Module):
            raise ValueError(f"factory {model} returned a {type(module).__name__}, not a torch nn.Module")
    elif kind is SourceKind.TORCHSCRIPT:
        module = torch.jit.load(model, map_location="cpu")
    else:
        module = torch.export.load(model).module()
    return module, size


def rows_to_detections(raw: torch.Tensor) -> Detections:
    """(1, N, 6) or (N, 6) rows x1, y1, x2, y2, score, class (after NMS) -> Detections, best first."""
    rows = single_image(raw, 2).detach().float().cpu().numpy()
    if rows.shape[1] != 6:
        raise ValueError(f"detections must be rows of x1, y1, x2, y2, score, class; got shape {rows.shape}")
    rows = rows[np.argsort(-rows[:, 4], kind="stable")]
    return Detections(rows[:, :4].copy(), rows[:, 4].copy(), rows[:, 5].astype(np.int64))


POSTPROCESS = {OutputKind.CLASSES: top_k_classes, OutputKind.DETECTIONS: rows_to_detections,
               OutputKind.MASK: argmax_mask, OutputKind.RAW: None}


class DeclarationError(ValueError):
    """A model declaration that cannot be served: `key` is the parameter, `problem` what is wrong."""

    def __init__(self, key: str, problem: str):
        self.key, self.problem = key, problem
        super().__init__(f"{key}: {problem}")


@dataclass(frozen=True)
class ModelSpec:
    """A model as a parameter file declares it: `model` (see the module's doc), its weights (a
    state-dict file; zoo and factory models), input size and output kind (zoo: its own)."""

    model: str
    weights: str = ""
    input_size: tuple[int, ...] = ()
    output: str = ""  # an OutputKind; "" = the zoo's own (required for other models)

    @property
    def kind(self) -> SourceKind:
        return source_kind(self.model)

    @property
    def key(self) -> str:
        return model_key(self.model)

    def check(self) -> None:
        """DeclarationError naming the key, for a declaration that cannot be served, without
        building it (what needs the model itself, a file's input size, is checked when built)."""
        kind = self.kind_or_error()
        if kind is SourceKind.ZOO:
            from .registry import ZOO

            entry = ZOO[self.model]
            own = list(entry.input_shape[1:])
            if self.input_size and list(self.input_size) != own:
                raise DeclarationError("input_size", (
                    f"{self.model} takes {own} and its kernel bags are built for that size (frames are "
                    f"resized to it): leave input_size as [] or set {own}, got {list(self.input_size)}"))
            if self.output and self.output != entry.output_kind:
                raise DeclarationError("output", f"{self.model}'s output is {entry.output_kind}: leave it '', "
                                                 f"got {self.output!r}")
            return
        if self.output not in tuple(OutputKind):
            what = "is required" if not self.output else f"must not be {self.output!r}"
            raise DeclarationError("output", f"{what} for {self.model}: one of {[str(k) for k in OutputKind]}")
        if kind is not SourceKind.ONNX and len(self.input_size) != 2:
            raise DeclarationError("input_size", f"[height, width] is required for {self.model} (a {kind} model)")
        if kind is not SourceKind.FACTORY and self.weights:
            raise DeclarationError("weights", f"{self.model} holds its own weights: leave weights ''")

    def kind_or_error(self) -> SourceKind:
        try:
            return self.kind
        except ValueError as exc:
            raise DeclarationError("model", str(exc)) from None
