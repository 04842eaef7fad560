"""What a result was measured on, recorded beside every benchmark result."""
from __future__ import annotations

import os
import platform

import torch

# The vector units torch's and ONNX Runtime's CPU kernels choose between: two machines of one model
# name (virtual machines often show only "AMD EPYC") ran the same models up to three times apart.
SIMD = {"avx2": "AVX2", "fma": "FMA", "avx512f": "AVX-512", "avx512_vnni": "AVX-512 VNNI", "amx_tile": "AMX"}


def _cpuinfo(key: str) -> str | None:
    """The first `key : value` of /proc/cpuinfo (Linux), or None."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.split(":", 1)[0].strip() == key:
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    return _cpuinfo("model name") or platform.processor() or "unknown"


def cpu_simd() -> list[str]:
    """Which of SIMD the CPU has, by name (empty where unknown)."""
    flags = set((_cpuinfo("flags") or "").split())
    return [name for flag, name in SIMD.items() if flag in flags]


def cpu_text(machine: dict) -> str:
    """'AMD EPYC, 2 cores, AVX2 FMA (no AVX-512)', from machine_info()."""
    simd = machine.get("simd")  # none recorded: an older report, or a CPU not of this family
    units = ", " + " ".join(simd) + ("" if "AVX-512" in simd else " (no AVX-512)") if simd else ""
    return f"{machine.get('cpu')}, {machine.get('cores')} cores{units}"


def machine_info() -> dict:
    info = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "simd": cpu_simd(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": None,
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info["cuda"] = {"device": props.name, "sms": props.multi_processor_count,
                        "torch_cuda": torch.version.cuda}
    return info
