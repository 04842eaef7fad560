"""CPU time per thread of a process, from Linux's /proc (empty elsewhere), so a run can say which
threads its CPU went to: Python threads by their names, the others by the kernel's thread name."""
from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path


def thread_cpu(pid: int | str = "self") -> dict[int, tuple[str, float]]:
    """Thread id -> (name, CPU seconds so far). Python threads of this process carry their
    `threading` names; others the kernel's (`comm`), e.g. Fast DDS's `dds.*`."""
    py = {t.native_id: t.name for t in threading.enumerate()} if pid == "self" else {}
    out = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            ns = int((task / "schedstat").read_text().split()[0])
            comm = (task / "comm").read_text().strip()
        except (OSError, ValueError, IndexError):  # the thread ended meanwhile
            continue
        tid = int(task.name)
        out[tid] = (py.get(tid, comm), ns / 1e9)
    return out


def cpu_by_role(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]],
                role: Callable[[str], str]) -> dict[str, float]:
    """CPU seconds spent between two `thread_cpu` readings, summed by `role(thread name)`."""
    spent: Counter = Counter()
    for tid, (name, cpu) in after.items():
        start = before.get(tid, (name, 0.0))[1]  # a thread born in between started at zero
        spent[role(name)] += max(0.0, cpu - start)
    return dict(spent)
