"""A noisy neighbour, injected on purpose (a fault no part of the system produces on demand): one
process at the default priority, busy for BUSY_MS, then idle for IDLE_MS, until killed.

    python3 results/ros_bench/noisy_neighbour_cpu2_amd_epyc/neighbour.py BUSY_MS IDLE_MS &
"""
import sys
import time

busy_s, idle_s = float(sys.argv[1]) / 1e3, float(sys.argv[2]) / 1e3
while True:
    end = time.perf_counter() + busy_s
    while time.perf_counter() < end:
        pass
    time.sleep(idle_s)
