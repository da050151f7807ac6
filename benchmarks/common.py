"""What every benchmark records next to its numbers: the machine, the versions, the date, and the
exact command; where results go (``benchmarks/results/<name>.json`` + ``.png``); how plots are
drawn; and how a benchmark runs a ``memformer`` user command.

The benchmarks are scripts (``python benchmarks/NAME.py``); what they share with the experiments
(``memformer bench``) is written once in ``torch_memformer/experiments/common/`` and re-exported
here (the rule of what lives where: ``docs/architecture.md``, package map)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

# The machine description, process memory and off-screen plotting live in the library (``memformer
# bench`` uses them too); re-exported here so the scripts import them from ``common``.
from torch_memformer.experiments.common.machine import (
    cpu_name,
    current_rss_bytes,
    environment,
    peak_rss_bytes,
)
from torch_memformer.experiments.common.report import pyplot

__all__ = ["RESULTS", "cpu_name", "current_rss_bytes", "environment", "peak_rss_bytes", "pyplot", "run_memformer",
           "synchronize",
           "write_json"]

RESULTS = Path(__file__).resolve().parent / "results"
REPO = RESULTS.parent.parent


def write_json(name: str, data: dict, folder: Path = RESULTS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued kernels: CUDA runs them asynchronously, so a host clock read
    without this times the launches, not the work. A no-op on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_memformer(command: list[str], *, capture: bool = False) -> str:
    """Run a ``memformer ...`` user command (as ``python -m torch_memformer`` of this interpreter,
    from the repository root), echoing it; its stdout when ``capture``. Exits on failure."""
    exe = [sys.executable, "-m", "torch_memformer", *command[1:]]
    print("$", " ".join(command), flush=True)
    completed = subprocess.run(exe, cwd=REPO, text=True, stdout=subprocess.PIPE if capture else None)
    if completed.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed with exit code {completed.returncode}")
    return completed.stdout or ""
