"""The machine a run measured: CPU model, cores, memory, torch build and threads, load before and after."""
from __future__ import annotations

import os
import platform


def cpu_model() -> str:
    """The 'model name' of /proc/cpuinfo (Linux), else platform.processor()."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_gib() -> float:
    """Physical memory in GiB."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def parallel_backend(info: str) -> str:
    """'OpenMP backend' from torch.__config__.parallel_info()'s 'ATen parallel backend: OpenMP' line."""
    for line in info.splitlines():
        if line.startswith("ATen parallel backend:"):
            return f"{line.split(':', 1)[1].strip()} backend"
    return "parallel backend unknown"


def describe(threads: int, default_threads: int) -> dict:
    """Everything results.md states about the machine; load_end is filled in by finish()."""
    import torch

    return {"cpu": cpu_model(), "cores": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0)),
            "memory_gib": memory_gib(), "platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "torch_parallel": parallel_backend(torch.__config__.parallel_info()),
            "threads": threads, "default_threads": default_threads, "load_start": list(os.getloadavg()),
            "load_end": None, "shared": None}


def finish(machine: dict) -> dict:
    """Record the load at the end. shared: other jobs ran, i.e. the 1-minute load was above 0.5 at the start,
    or above this run's own threads + 0.5 at the end."""
    machine["load_end"] = list(os.getloadavg())
    machine["shared"] = machine["load_start"][0] > 0.5 or machine["load_end"][0] > machine["threads"] + 0.5
    return machine
