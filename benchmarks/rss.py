"""Resident memory of a child process (and its descendants), polled from /proc/<pid>/status (Linux).

Not os.wait4's ru_maxrss: Linux carries a process's peak across fork and exec into the child's, so every
child of the benchmarks' own process (several GiB after the paper-scale model) would report at least that.
VmHWM, the peak of the process's own memory since its exec, is read instead, with VmRSS for the time course.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field


def status_kib(pid: int) -> tuple[int, int] | None:
    """(VmRSS, VmHWM) of pid in KiB; None once it has exited (or for a kernel thread)."""
    values = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    values[line[:5]] = int(line.split()[1])
    except OSError:
        return None
    return (values["VmRSS"], values["VmHWM"]) if len(values) == 2 else None


def descendants(root: int) -> list[int]:
    """root and every process below it, from the parent pid in /proc/<pid>/stat."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


@dataclass
class RssPoll:
    """Polls pid (with its descendants when tree) every `every` seconds in a thread, from start() to stop().

    samples: (time, summed VmRSS KiB); hwm_kib: the largest VmHWM of any one of the processes seen."""

    pid: int
    every: float = 0.02
    tree: bool = False
    samples: list[tuple[float, int]] = field(default_factory=list)
    hwm_kib: int = 0

    def __post_init__(self):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = descendants(self.pid) if self.tree else [self.pid]
            found = [s for s in (status_kib(p) for p in pids) if s is not None]
            if found:
                self.samples.append((time.perf_counter(), sum(rss for rss, _ in found)))
                self.hwm_kib = max(self.hwm_kib, *(hwm for _, hwm in found))
            self._stop.wait(self.every)

    def start(self) -> RssPoll:
        self._thread.start()
        return self

    def stop(self) -> RssPoll:
        self._stop.set()
        self._thread.join()
        return self
