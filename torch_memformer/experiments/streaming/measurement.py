"""Measuring the two models side by side: each in its own process, advanced to every position,
their timed windows alternating; at the end Memformer's kept states timed round-robin."""

from __future__ import annotations

import dataclasses
import logging
import statistics
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from ..common import report
from ..common.models import ModelSizes
from ..common.processes import FreshProcess
from .plan import MODELS, Plan
from .worker import advance_stream, memory_now, open_stream, reset_peak, time_window

logger = logging.getLogger(__name__)

# Peak memory of timing the full-cache Transformer, in cache sizes: the stream's cache (kept for
# the next window), the one generation carries and the next one each step concatenates, and one
# layer's concatenation for attention (measured: 3.35 GB peak for a 1 GB cache at 64k).
CACHE_COPIES_PER_STEP = 3.2


@dataclasses.dataclass(frozen=True)
class Measured:
    """What ``measure`` returns.

    rows: per position, each model's numbers (timed alongside each other), or why one was skipped.
    round_robin: Memformer's kept states at every position timed round-robin, per position.
    models: what each model's process reported when it opened (parameters, threads).
    """

    rows: list[dict]
    round_robin: list[dict]
    models: dict


def measure(plan: Plan, *, seed: int, threads: int | None, memory_limit: int) -> Measured:
    """Each model in its own process; at each position advance both, then alternate their windows.
    At the end, Memformer's states at all positions are timed once more, round-robin."""
    window_tokens = {"memformer": plan.memformer_segments * plan.sizes.segment_len,
                     "transformer": plan.transformer_tokens}
    with FreshProcess() as memformer_process, FreshProcess() as transformer_process:
        processes = _Processes({"memformer": memformer_process, "transformer": transformer_process})
        opened = {name: processes.call(name, open_stream, name=name, sizes=plan.sizes, seed=seed, threads=threads,
                                       warmup_tokens=window_tokens[name])
                  for name in MODELS}
        rows, active = [], list(MODELS)
        for position in plan.positions:
            row: dict[str, Any] = {"position": position}
            need = transformer_step_bytes(plan.sizes, position)
            if "transformer" not in active:
                row["transformer"] = {"skipped": "skipped at an earlier position"}
            elif need > memory_limit:
                active.remove("transformer")
                row["transformer"] = {"skipped": f"timing it would need about {report.format_bytes(need)}, "
                                                 f"over the {report.format_bytes(memory_limit)} memory limit"}
            while True:
                try:
                    row.update(_measure_position(processes, active, position, plan, window_tokens))
                    break
                except _ProcessDied as died:
                    # Most likely the kernel's out-of-memory killer; only the growing cache can cause it.
                    if died.name != "transformer":
                        raise RuntimeError(f"the {died.name} process died at position {position}") from None
                    active.remove("transformer")
                    row["transformer"] = {"skipped": "its process died at this position (out of memory?)"}
            if "skipped" in row["transformer"]:
                logger.warning("position %d: the Transformer is skipped from here on: %s", position,
                               row["transformer"]["skipped"])
            rows.append(row)
            logger.info("position %d: %s", position, ", ".join(
                f"{name} {row[name]['ms_per_token']:.2f} ms/token, RSS {report.format_bytes(row[name]['rss_bytes'])}"
                for name in active))
        round_robin = _round_robin(processes, plan.positions, plan.repeats, window_tokens["memformer"])
    return Measured(rows=rows, round_robin=round_robin, models=opened)


def _round_robin(processes: "_Processes", positions: tuple[int, ...], repeats: int, tokens: int) -> list[dict]:
    """Memformer's kept states timed position after position, ``repeats`` rounds: a drift of the
    machine's load over the run then hits every position alike (positions measured one after
    the other, minutes apart, can differ by the load alone). Its state is 96.5 KiB, so keeping
    one per position costs nothing; the Transformer's caches could not be kept."""
    windows: dict[int, list[dict]] = {position: [] for position in positions}
    for _ in range(repeats):
        for position in positions:
            windows[position].append(processes.call("memformer", time_window, tokens=tokens, at=position))
    return [{"position": position, **_per_token(windows[position], tokens)} for position in positions]


def _per_token(windows: list[dict], tokens: int) -> dict:
    """Medians (and every window) of the wall and CPU milliseconds per generated token."""
    wall = [1e3 * w["wall_seconds"] / tokens for w in windows]
    cpu = [1e3 * w["cpu_seconds"] / tokens for w in windows]
    return {"ms_per_token": statistics.median(wall), "ms_per_token_windows": wall,
            "cpu_ms_per_token": statistics.median(cpu), "cpu_ms_per_token_windows": cpu, "window_tokens": tokens}


def _measure_position(processes: "_Processes", active: list[str], position: int, plan: Plan,
                      window_tokens: dict[str, int]) -> dict[str, dict]:
    entries = {}
    for name in active:
        entries[name] = processes.call(name, advance_stream, to=position, advance_limit=plan.advance_limit,
                                       chunk=plan.advance_chunk)
        processes.call(name, reset_peak)
    windows: dict[str, list[dict]] = {name: [] for name in active}
    for _ in range(plan.repeats):
        for name in active:  # interleaved, so load changes hit both models alike
            windows[name].append(processes.call(name, time_window, tokens=window_tokens[name]))
    for name in active:
        entries[name].update(**_per_token(windows[name], window_tokens[name]), **processes.call(name, memory_now))
    return entries


class _ProcessDied(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


@dataclasses.dataclass(frozen=True)
class _Processes:
    """The models' processes by name; a call into a dead one raises ``_ProcessDied(name)``."""

    by_name: dict[str, FreshProcess]

    def call(self, name: str, fn, /, **kwargs: Any) -> Any:
        try:
            return self.by_name[name].call(fn, **kwargs)
        except BrokenProcessPool:
            raise _ProcessDied(name) from None


def transformer_step_bytes(sizes: ModelSizes, position: int) -> int:
    """About the peak memory of timing the full-cache Transformer at ``position`` (float32)."""
    cache = 2 * sizes.baseline_layers * position * sizes.d_model * 4
    return int(CACHE_COPIES_PER_STEP * cache)
