"""Calibration: what share of the device each kind takes at each level, measured on this machine
(a kernel bag records it beside the latencies it profiled under those levels)."""
from __future__ import annotations

import time

import torch
from tqdm import tqdm

from .generators import Background
from .levels import KINDS, LEVELS, cores, resolve_device


def calibrate(device: str | torch.device = "cpu", seconds: float = 1.0,
              progress: bool = False) -> dict:
    """Run every kind at every level for `seconds` and return what each measured:
    {"device", "cores", "seconds", "levels": {kind: {level: BackgroundStats.as_dict()}}}."""
    if seconds <= 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    dev = resolve_device(device)
    levels: dict[str, dict[str, dict]] = {kind: {} for kind in KINDS}
    with tqdm(total=len(KINDS) * len(LEVELS), desc="calibrating contention", unit="level",
              disable=not progress) as bar:
        for kind in KINDS:
            for level in LEVELS:
                with Background(kind, level, dev) as bg:
                    # Isolation runs nothing: there is nothing to wait for.
                    time.sleep(seconds if level != "isolation" else 0.0)
                levels[kind][level] = bg.stats.as_dict()
                bar.update()
    return {"device": str(dev), "cores": cores(), "seconds": seconds, "levels": levels}
