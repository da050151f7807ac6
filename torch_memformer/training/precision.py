"""Where and in what precision a run computes: ``--device`` and ``--precision`` resolved.

``auto`` precision is bfloat16 autocast where the hardware runs it natively (a CUDA device with
bf16, or a CPU with the ``avx512_bf16`` or ``amx_bf16`` instructions), float32 elsewhere. Weights,
optimizer state and the carried memory stay float32 in every mode; autocast only changes the
dtype of the matrix multiplies. float16 needs CUDA and a GradScaler (the trainer makes one).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
from pathlib import Path

import torch

_CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclasses.dataclass(frozen=True)
class Precision:
    """name: "fp32", "bf16" or "fp16"; dtype: the autocast dtype, or None for plain float32."""

    name: str
    dtype: torch.dtype | None

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.dtype)


def resolve_device(request: str, *, local_rank: int = 0) -> torch.device:
    """``auto`` -> the local CUDA device when there is one, else the CPU; otherwise the device
    named, checked to exist. Under torchrun, ``cuda`` means this process's ``cuda:LOCAL_RANK``."""
    if request == "auto":
        request = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(request)
    except RuntimeError:
        raise ValueError(f"--device {request!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"--device {request} asks for CUDA, but this PyTorch sees no CUDA device; use --device cpu"
            )
        if device.index is None:
            device = torch.device("cuda", local_rank)
        if device.index >= torch.cuda.device_count():
            raise ValueError(f"--device {device} does not exist: {torch.cuda.device_count()} CUDA device(s)")
    elif device.type != "cpu":
        raise ValueError(f"--device {request!r} is not supported; use auto, cpu, cuda or cuda:N")
    return device


def resolve_precision(request: str, device: torch.device) -> Precision:
    """``auto``/``fp32``/``bf16``/``fp16`` -> a ``Precision`` the device can run."""
    if request == "auto":
        request = "bf16" if has_native_bf16(device) else "fp32"
    if request == "fp32":
        return Precision("fp32", None)
    if request == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ValueError(f"--precision bf16: {device} does not support bfloat16; use fp16 or fp32")
        return Precision("bf16", torch.bfloat16)
    if request == "fp16":
        if device.type != "cuda":
            raise ValueError("--precision fp16 needs a CUDA device (CPU float16 autocast is slow and unscaled); "
                             "use bf16 or fp32 on the CPU")
        return Precision("fp16", torch.float16)
    raise ValueError(f"--precision must be auto, fp32, bf16 or fp16, got {request!r}")


def has_native_bf16(device: torch.device) -> bool:
    """Whether bfloat16 matrix multiplies run in hardware on ``device``."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(_cpu_flags() & set(_CPU_BF16_FLAGS))


@functools.lru_cache(maxsize=1)
def _cpu_flags() -> frozenset[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


@dataclasses.dataclass(frozen=True)
class ThreadChoice:
    """The CPU threads ``idle_cpu_choice`` picked, and why: the cores this process may run on
    and the 1-minute load average of the machine when it looked."""

    threads: int
    cores: int
    load: float

    def reason(self) -> str:
        if self.threads >= self.cores:
            return f"{self.threads} CPU thread(s): all {self.cores} core(s) idle (1-minute load average {self.load:.2f})"
        return (f"{self.threads} CPU thread(s) for {self.cores} core(s): the 1-minute load average is {self.load:.2f}, "
                f"so other jobs keep {self.cores - self.threads} core(s) busy (even at low priority); "
                "--threads N overrides")


def check_threads(threads: int) -> None:
    """``--threads N`` may be at most the machine's cores: more threads than cores only wait on
    each other, and a count in the millions crashed PyTorch with a segmentation fault (found by
    fuzzing the command line, tests/fuzz/test_fuzz_regressions.py)."""
    cores = os.cpu_count() or 1
    if threads > cores:
        raise ValueError(f"--threads must be at most {cores}, the CPU cores of this machine, got {threads}")


def idle_cpu_choice() -> ThreadChoice:
    """CPU threads worth using now: the cores this process may run on, less those other jobs keep
    busy (the 1-minute load average), at least 1.

    PyTorch starts one thread per core; on a machine shared with other jobs its threads then wait
    on each other while descheduled, which measured 2-5x slower than one thread here
    (``docs/results.md``). On an idle machine this is every core. A niced background job counts
    too: it still takes its core whenever the scheduler gives it one.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except (OSError, AttributeError):  # no load average (Windows)
        busy = 0.0
    return ThreadChoice(threads=max(1, min(cores, cores - math.floor(busy))), cores=cores, load=busy)


def idle_cpu_threads() -> int:
    """``idle_cpu_choice().threads``."""
    return idle_cpu_choice().threads
