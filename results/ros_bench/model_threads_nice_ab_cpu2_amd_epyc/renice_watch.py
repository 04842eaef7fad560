"""While a container (`aaron-ros run`) runs, put its model threads at a lower OS priority: the lane
threads (`lane-*`) and the unnamed ones (`python`: ONNX Runtime's intra-op pools, started when the
sessions were made), not the main thread (the executor), the results threads, the coordinator's
clock or Fast DDS's. Polls once a second and forks nothing.

    python3 renice_watch.py NICE
"""
import os
import sys
import time

NICE = int(sys.argv[1])


def container() -> int | None:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if b"aaron_ros.cli\x00run" in f.read():
                        return int(entry)
            except OSError:
                pass
    return None


done: set[int] = set()
while True:
    pid = container()
    if pid:
        try:
            for entry in os.listdir(f"/proc/{pid}/task"):
                tid = int(entry)
                if tid == pid or tid in done:
                    continue
                with open(f"/proc/{pid}/task/{entry}/comm") as f:
                    comm = f.read().strip()
                if comm.startswith("lane-") or comm == "python":
                    os.setpriority(os.PRIO_PROCESS, tid, NICE)
                    done.add(tid)
        except OSError:  # the container or a thread ended meanwhile
            pass
    time.sleep(1.0)
