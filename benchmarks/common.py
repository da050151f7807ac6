"""What every benchmark records next to its numbers: the machine, the versions, the date, and the
exact command; and where results go (``benchmarks/results/<name>.json`` + ``.png``)."""

from __future__ import annotations

import json
from pathlib import Path

# The machine description and process memory live in the library now (``memformer bench`` uses
# them too); re-exported here so the scripts keep importing them from ``common``.
from torch_memformer.experiments.common.machine import (
    cpu_name,
    current_rss_bytes,
    environment,
    peak_rss_bytes,
)

__all__ = ["RESULTS", "cpu_name", "current_rss_bytes", "environment", "peak_rss_bytes", "write_json"]

RESULTS = Path(__file__).resolve().parent / "results"


def write_json(name: str, data: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path
