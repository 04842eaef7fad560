"""CPU per thread of another process, by the names its threads give the kernel."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from aaron_ros.common.cpu import HELPER, MAIN_THREAD, cpu_by_role, thread_cpu

# A process with a named thread that starts a helper and then spins: the helper inherits its name.
CHILD = """
import threading, time
from aaron_ros.common.cpu import name_os_thread
def helper():
    time.sleep(30)
def lane():
    name_os_thread("lane-cpu0_0")
    threading.Thread(target=helper, daemon=True).start()
    end = time.thread_time() + 0.3
    while time.thread_time() < end:
        pass
    print("spun", flush=True)
    time.sleep(30)
threading.Thread(target=lane, daemon=True).start()
time.sleep(30)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads Linux's /proc")
def test_threads_of_another_process_by_their_kernel_names():
    proc = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    try:
        before = thread_cpu(proc.pid)
        assert proc.stdout.readline().strip() == "spun"
        time.sleep(0.05)
        after = thread_cpu(proc.pid)
    finally:
        proc.kill()
        proc.wait()
    names = sorted(name for name, _ in after.values())
    assert names == sorted([MAIN_THREAD, "lane-cpu0_0", "lane-cpu0_0" + HELPER]), names
    assert after[proc.pid][0] == MAIN_THREAD
    spent = cpu_by_role(before, after, lambda n: "helper" if n.endswith(HELPER) else n)
    assert spent["lane-cpu0_0"] >= 0.2  # the thread that spun, not its sleeping helper
    assert spent.get("helper", 0.0) < 0.05
