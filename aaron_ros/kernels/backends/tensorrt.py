"""TensorRT through torch-tensorrt (dynamo IR), saved as an ExportedProgram. CUDA only."""
from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

import torch
from torch import nn

from .base import Fn, ThreadBudget, UnitBackend, device_unavailable, on_device, resolve_device


class TensorRTBackend(UnitBackend):
    name = "tensorrt"
    suffix = ".ep"

    def unavailable(self, device: torch.device) -> str | None:
        if find_spec("torch_tensorrt") is None:
            return "torch_tensorrt is not installed (it needs a CUDA build of torch)"
        if device.type != "cuda":
            return f"TensorRT runs on CUDA devices only, not on {device}"
        return device_unavailable(device)

    def build_unit(self, module: nn.Module, example: torch.Tensor, threads: int, path: Path) -> Path:
        import torch_tensorrt

        device = resolve_device(example.device if example.is_cuda else "cuda")
        x = example.detach().to(device)
        compiled = torch_tensorrt.compile(
            on_device(module, device), ir="dynamo", inputs=[x],
            enabled_precisions={torch.float32},
            # TF32 off: versions must match the float32 reference within the check's tolerance.
            disable_tf32=True,
        )
        torch_tensorrt.save(compiled, str(path), output_format="exported_program", inputs=[x])
        return path

    def load_unit(self, module: nn.Module, path: Path, threads: int, device: torch.device) -> Fn:
        import torch_tensorrt  # noqa: F401  registers the engine op the saved program calls

        return ThreadBudget(torch.export.load(str(path)).module(), threads)
