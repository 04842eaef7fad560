"""Background contention: generators that load one channel of a device (compute, memory, or real
models) at a level, and probes that measure pressure on a channel."""
from .generators import Background, BackgroundStats
from .levels import KINDS, LEVELS, Load, load_for
from .probes import PROBE_KINDS, make_probe
from .standalone import run_standalone

__all__ = [
    "KINDS",
    "LEVELS",
    "PROBE_KINDS",
    "Background",
    "BackgroundStats",
    "Load",
    "load_for",
    "make_probe",
    "run_standalone",
]
