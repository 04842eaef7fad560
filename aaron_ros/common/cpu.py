"""CPU time per thread of a process, from Linux's /proc (empty elsewhere), so a benchmark can say
which of a running system's threads its CPU went to, by the kernel's thread names."""
from __future__ import annotations

import ctypes
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

MAIN_THREAD = "MainThread"
HELPER = " (helper)"  # marks a thread named after an older one: see thread_cpu
_PR_SET_NAME = 15
_COMM_LEN = 15  # a kernel thread name holds at most 15 bytes


def name_os_thread(name: str) -> None:
    """Give the calling thread `name` (its first 15 bytes) as the kernel's thread name too, so
    another process reading /proc can tell it apart. Call it before the thread starts helper
    threads: those inherit the name. Nothing happens off Linux."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None).prctl(_PR_SET_NAME, name.encode()[:_COMM_LEN], 0, 0, 0)
        except (OSError, AttributeError):
            pass


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """Thread id -> (name, CPU seconds so far) of process `pid`: the kernel's thread names
    (`comm`, e.g. Fast DDS's `dds.*`), the main thread as MAIN_THREAD, and a thread with the same
    name as an older one marked HELPER: Linux threads inherit their creator's name, so it is, say,
    a model's intra-op worker started by a lane thread (`name_os_thread`)."""
    read = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            ns = int((task / "schedstat").read_text().split()[0])
            comm = (task / "comm").read_text().strip()
        except (OSError, ValueError, IndexError):  # the thread ended meanwhile
            continue
        read.append((int(task.name), comm, ns / 1e9))
    out, seen = {}, set()
    for tid, comm, sec in sorted(read):
        name = MAIN_THREAD if tid == pid else comm + HELPER if comm in seen else comm
        seen.add(comm)
        out[tid] = (name, sec)
    return out


def cpu_by_role(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]],
                role: Callable[[str], str]) -> dict[str, float]:
    """CPU seconds spent between two `thread_cpu` readings, summed by `role(thread name)`."""
    spent: Counter = Counter()
    for tid, (name, cpu) in after.items():
        start = before.get(tid, (name, 0.0))[1]  # a thread born in between started at zero
        spent[role(name)] += max(0.0, cpu - start)
    return dict(spent)
