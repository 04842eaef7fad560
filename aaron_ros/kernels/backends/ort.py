"""ONNX Runtime: each unit exported to ONNX, run by a session with the version's thread budget."""
from __future__ import annotations

import logging
import warnings
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .base import Fn, UnitBackend, device_unavailable, on_device

log = logging.getLogger(__name__)

OPSET = 17
INPUT, OUTPUT = "input", "output"


def export_onnx(module: nn.Module, example: torch.Tensor, path: Path) -> None:
    """TorchScript exporter (0.3 s a stage); the dynamo one is ~10x slower, so only a fallback."""
    module, x = on_device(module, torch.device("cpu")), example.detach().cpu()
    names = dict(input_names=[INPUT], output_names=[OUTPUT], opset_version=OPSET)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # "legacy exporter": chosen on purpose
            # A slice it leaves unfolded runs as an op; the version's check holds it to eager anyway.
            warnings.filterwarnings("ignore", message="Constant folding")
            torch.onnx.export(module, (x,), path, dynamo=False, **names)
    except Exception as exc:
        log.warning("TorchScript ONNX export of %s failed (%s); trying the dynamo exporter", path.name, exc)
        # One self-contained file, as the TorchScript exporter writes.
        torch.onnx.export(module, (x,), path, dynamo=True, external_data=False, verbose=False, **names)


def make_session(path: Path, threads: int, device: torch.device):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Spinning workers burn the cores other lanes need: under contention that wrecks latency.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    providers: list = ["CPUExecutionProvider"]
    if device.type == "cuda":
        # TF32 off: versions must match the float32 reference within the check's tolerance.
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": device.index, "use_tf32": 0}))
    return ort.InferenceSession(str(path), sess_options=opts, providers=providers)


def io_names(session) -> tuple[str, str]:
    """The first input's and output's names: ours when we exported, the file's own for a user's."""
    return session.get_inputs()[0].name, session.get_outputs()[0].name


class OrtCpu:
    """Torch tensors in and out of a CPU session."""

    def __init__(self, session):
        self.session = session
        self.input, self.output = io_names(session)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        feed = {self.input: x.detach().to("cpu", torch.float32).contiguous().numpy()}
        return torch.from_numpy(self.session.run([self.output], feed)[0])


class OrtCuda:
    """A CUDA session bound to torch's memory: no host round trip."""

    def __init__(self, session, device: torch.device):
        self.session = session
        self.device = device
        self.input, self.output = io_names(session)
        # Exported without dynamic axes, so the output shape is static.
        self.out_shape = tuple(session.get_outputs()[0].shape)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.detach().to(self.device, torch.float32).contiguous()
        y = torch.empty(self.out_shape, dtype=torch.float32, device=self.device)
        binding = self.session.io_binding()
        binding.bind_input(self.input, "cuda", self.device.index, np.float32, tuple(x.shape), x.data_ptr())
        binding.bind_output(self.output, "cuda", self.device.index, np.float32, self.out_shape, y.data_ptr())
        # ORT works on its own stream: x must be written first. The run returns once ORT's stream
        # is done, so y is ready and x may be freed after it.
        torch.cuda.current_stream(self.device).synchronize()
        self.session.run_with_iobinding(binding)
        return y


class OnnxRuntimeBackend(UnitBackend):
    name = "onnxruntime"
    suffix = ".onnx"

    def unavailable(self, device: torch.device) -> str | None:
        reason = device_unavailable(device)
        if reason:
            return reason
        if find_spec("onnxruntime") is None:
            return "onnxruntime is not installed"
        if device.type == "cuda":
            import onnxruntime as ort

            if "CUDAExecutionProvider" not in ort.get_available_providers():
                return "this onnxruntime has no CUDAExecutionProvider (onnxruntime-gpu is needed)"
        return None

    def build_unit(self, module: nn.Module, example: torch.Tensor, threads: int, path: Path) -> Path:
        data = getattr(module, "onnx_bytes", None)  # a model that is an ONNX file already (OnnxModule)
        if data is not None:
            path.write_bytes(data)
        else:
            export_onnx(module, example, path)
        return path

    def load_unit(self, module: nn.Module, path: Path, threads: int, device: torch.device) -> Fn:
        session = make_session(path, threads, device)
        return OrtCuda(session, device) if device.type == "cuda" else OrtCpu(session)
