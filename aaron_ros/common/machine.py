"""What a result was measured on, recorded beside every benchmark result."""
from __future__ import annotations

import os
import platform
import re

import torch


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict:
    info = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": None,
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info["cuda"] = {"device": props.name, "sms": props.multi_processor_count,
                        "torch_cuda": torch.version.cuda}
    return info


def machine_tag() -> str:
    """Short name for result files: the GPU when there is one, else cores and CPU."""
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
    else:
        name = f"cpu{os.cpu_count()}-{cpu_model()}"
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")[:48]
