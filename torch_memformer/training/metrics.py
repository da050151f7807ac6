"""Run metrics: one JSON object per line in ``metrics.jsonl``, mirrored to TensorBoard.

Every record has ``step`` and ``kind`` ("train", "valid" or "event") plus its values. On resume
the records after the checkpoint's step are dropped (the killed run may have written a few steps
past its last checkpoint), so the file holds each step once and a resumed run's file reads like
an uninterrupted one's; a run started again from step 0 replaces both the file and the
TensorBoard events. Only rank 0 writes.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


class MetricsWriter:
    """Appends records to ``<run>/metrics.jsonl`` and scalars to ``<run>/tensorboard``."""

    def __init__(self, path: Path, *, tensorboard_dir: Path | None, resume_step: int | None) -> None:
        self.path = Path(path)
        if resume_step is not None:
            truncate_after(self.path, resume_step)
        else:
            # A fresh start over a run killed before its first checkpoint: its records are replaced.
            self.path.unlink(missing_ok=True)
            if tensorboard_dir is not None and Path(tensorboard_dir).is_dir():
                for events in Path(tensorboard_dir).glob("events.out.tfevents.*"):
                    events.unlink()
        self._file = open(self.path, "a", encoding="utf-8")
        self._tensorboard = None
        if tensorboard_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is a dependency, but a broken install should not stop training
                logger.warning("tensorboard is not importable; writing metrics.jsonl only")
            else:
                # purge_step drops events a killed run wrote past the checkpoint, as for the JSONL.
                purge = None if resume_step is None else resume_step + 1
                self._tensorboard = SummaryWriter(str(tensorboard_dir), purge_step=purge)

    def write(self, kind: str, step: int, values: dict[str, Any]) -> None:
        record = {"kind": kind, "step": step, **values}
        self._file.write(json.dumps(record, sort_keys=True, allow_nan=True) + "\n")
        self._file.flush()
        if self._tensorboard is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                    self._tensorboard.add_scalar(f"{kind}/{key}", value, step)

    def close(self) -> None:
        self._file.close()
        if self._tensorboard is not None:
            self._tensorboard.close()


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """All records of a ``metrics.jsonl`` (a torn last line from a crash is skipped)."""
    records = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def truncate_after(path: Path, step: int) -> None:
    """Keep only the records with ``step <= step`` (atomically: a temporary file renamed over)."""
    path = Path(path)
    if not path.exists():
        return
    kept = [json.dumps(r, sort_keys=True, allow_nan=True) for r in read_metrics(path) if r.get("step", 0) <= step]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    os.replace(tmp, path)
