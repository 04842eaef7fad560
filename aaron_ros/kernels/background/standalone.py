"""One generator on its own for a while, with a progress bar (`aaron-ros contention`): to load
a machine by hand while watching something else, or to check what a level does."""
from __future__ import annotations

import time

import torch
from tqdm import tqdm

from .generators import Background
from .levels import check_kind, check_level

TICK_S = 0.1  # progress refresh


def run_standalone(kind: str, level: str, seconds: float, device: str | torch.device = "auto",
                   progress: bool = True) -> dict:
    """Run `kind` at `level` on `device` for `seconds`; return its BackgroundStats as a dict."""
    check_kind(kind)
    check_level(level)
    if seconds <= 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    with Background(kind, level, device) as bg, tqdm(
            total=seconds, desc=f"{kind}/{level} on {bg.device}", unit="s",
            bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} s{postfix}", disable=not progress) as bar:
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            time.sleep(min(TICK_S, seconds - elapsed))
            elapsed = min(time.perf_counter() - start, seconds)
            bar.update(elapsed - bar.n)
            bar.set_postfix(it_per_s=f"{bg.iterations / elapsed:.0f}")
    return bg.stats.as_dict()
