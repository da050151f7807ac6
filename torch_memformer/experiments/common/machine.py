"""What a measurement records about where it ran, and the process memory it reads.

``environment()`` is what every result carries next to its numbers: the date, the exact command,
the CPU, the core count, the load average (the machine may be shared), torch's thread count, the
versions. ``benchmarks/common.py`` re-exports it for the stand-alone benchmark scripts.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import resource
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (None where the platform has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def environment(*, command: str | None = None) -> dict:
    """The machine, versions, date, load and command of a measurement.

    ``command`` is the command line to record; by default the running script's (``sys.argv``).
    """
    import torch

    flags = ""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        pass
    if command is None:
        command = " ".join(shlex.quote(a) for a in [Path(sys.executable).name] + sys.argv)
    env = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "load_average": load_average(),
        "memory_total_bytes": _meminfo("MemTotal"),
        "torch_threads": torch.get_num_threads(),
        "cpu_has_bf16": "avx512_bf16" in flags or "amx_bf16" in flags,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
    }
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name()
    return env


def peak_rss_bytes() -> int:
    """The process's peak resident set size so far, or since ``reset_peak_rss``.

    Read from VmHWM in /proc/self/status where there is one: ``getrusage``'s ru_maxrss also
    counts the parent's RSS at the fork before this process's exec, so in a spawned worker it
    reports the parent's size.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def reset_peak_rss() -> bool:
    """Start the peak RSS again from the current RSS (Linux >= 4.0); False where that is impossible.

    The peak otherwise only goes up, so a workload smaller than the process's start-up transient
    (imports, the first kernels) would not show. Memory freed earlier may still be held by the
    allocator, so a measurement that must be its own also runs in a fresh process
    (``processes.FreshProcess``).
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def current_rss_bytes() -> int:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return peak_rss_bytes()


def available_memory_bytes() -> int | None:
    """What the kernel says a new allocation can still get (MemAvailable), or None if unknown."""
    return _meminfo("MemAvailable")


@contextlib.contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run the block with ``count`` intra-op threads (None: leave torch's setting), then restore.

    Batch-1 decoding is timed on one thread: on a shared 2-core machine torch's spinning worker
    threads make it several times slower and far noisier than one thread is.
    """
    import torch

    before = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _meminfo(field: str) -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None
