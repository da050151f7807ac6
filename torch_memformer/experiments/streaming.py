"""Streaming scaling: time and memory per generated token deep into a stream, Memformer against
a plain Transformer with a full (growing) KV cache.

Batch-1 sampling at stream positions 1k, 4k, 16k, 64k, 256k with untrained models at comparable
sizes (``common/models.py``: Memformer 4 + 4 layers, 32 slots, segments of 64; the Transformer 8
layers, ``context_len=None``). Each model lives in its own fresh process, so the memory each
reports is its own; the timed windows of the two alternate (interleaved), on ``--threads``
threads (1 by default: on a shared 2-core machine torch's spinning worker threads make batch-1
decoding several times slower and much noisier).

At each position:
- the stream is carried forward to it with ``model.advance`` over random tokens (the state
  generation would reach, without sampling every token one by one). For the Transformer,
  ``advance`` costs O(N^2) over the whole stream, so beyond ``--advance-limit`` tokens its KV
  cache is instead grown by repeating the cache it reached there: the same shapes (hence the same
  per-token cost and memory) as ``advance`` would give, not the same values;
- ``--repeats`` windows are timed from that state: Memformer generates ``--memformer-segments``
  whole segments (16 x 64 tokens, so each window includes exactly 16 encoder + memory-write
  steps, and lasts seconds), the Transformer ``--transformer-tokens`` tokens (8; its cost has no
  per-segment period, and at 256k one token takes seconds). The time of reading the one-token
  prompt is subtracted. Reported: the median time per generated token, in wall time and in the
  process's CPU time (which leaves out the time other jobs held the core);
- the process's RSS after the windows, its peak RSS during them, and the state's bytes.

A position where the Transformer's cache would not fit in ``--memory-limit-gib`` (default 70%
of the memory available at the start; it needs about 3.2 cache sizes, 13.7 GB at 256k) is
skipped for it, and so are the later ones; so is one where its process dies (out of memory).

    memformer bench streaming --update-results     # default positions: 10-12 min on 2 cores under load
    memformer bench streaming --quick              # tiny sizes, seconds
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import statistics
import time
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import torch

from .common import report
from .common.arguments import int_list, positive_float, positive_int
from .common.machine import available_memory_bytes, current_rss_bytes, environment, peak_rss_bytes, reset_peak_rss
from .common.models import LABELS, ModelSizes, build_model, parameter_count
from .common.processes import FreshProcess

NAME = "streaming"
TITLE = "Streaming scaling: time and memory per generated token against stream position"

logger = logging.getLogger(__name__)

MODELS = ("memformer", "transformer")
TARGET_SPREAD = 0.10  # Memformer's time per token: flat within 10% across positions (issue 5)
# Peak memory of timing the full-cache Transformer, in cache sizes: the stream's cache (kept for
# the next window), the one generation carries and the next one each step concatenates, and one
# layer's concatenation for attention (measured: 3.35 GB peak for a 1 GB cache at 64k).
CACHE_COPIES_PER_STEP = 3.2
# Share of the memory available at the start the Transformer may use by default.
MEMORY_SHARE = 0.7


@dataclasses.dataclass(frozen=True)
class Plan:
    """What one run measures; ``DEFAULT`` and ``QUICK`` below, flags override the rest."""

    sizes: ModelSizes
    positions: tuple[int, ...]
    repeats: int
    transformer_tokens: int
    # Memformer's timed window, in whole segments (each brings exactly one encoder + write step).
    memformer_segments: int
    advance_limit: int
    # Tokens per model.advance call while carrying a stream forward.
    advance_chunk: int


DEFAULT = Plan(sizes=ModelSizes(), positions=(1024, 4096, 16384, 65536, 262144), repeats=3, transformer_tokens=8,
               memformer_segments=16, advance_limit=16384, advance_chunk=4096)
QUICK = Plan(
    sizes=ModelSizes(d_model=32, num_heads=4, d_ff=64, num_encoder_layers=1, num_decoder_layers=1, num_slots=4,
                     segment_len=16, baseline_layers=2),
    positions=(32, 128),
    repeats=1,
    transformer_tokens=4,
    memformer_segments=1,
    advance_limit=64,  # so the quick run also grows a cache by repetition
    advance_chunk=64,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--positions", type=int_list, default=None,
                        help=f"stream positions, comma-separated (default {','.join(map(str, DEFAULT.positions))})")
    parser.add_argument("--repeats", type=positive_int, default=None,
                        help=f"timed windows per model and position; the median is reported (default {DEFAULT.repeats})")
    parser.add_argument("--transformer-tokens", type=positive_int, default=None,
                        help=f"tokens per timed Transformer window (default {DEFAULT.transformer_tokens})")
    parser.add_argument("--memformer-segments", type=positive_int, default=None,
                        help=f"segments per timed Memformer window (default {DEFAULT.memformer_segments})")
    parser.add_argument("--advance-limit", type=positive_int, default=None,
                        help="the Transformer's cache is computed by advance up to this many tokens and grown by "
                             f"repetition beyond (default {DEFAULT.advance_limit})")
    parser.add_argument("--memory-limit-gib", type=positive_float, default=None,
                        help="skip Transformer positions whose timing would need more memory (default: "
                             f"{MEMORY_SHARE * 100:.0f}%% of MemAvailable at the start)")
    parser.set_defaults(threads=1)


def plan_from_args(args: argparse.Namespace) -> Plan:
    base = QUICK if args.quick else DEFAULT
    return dataclasses.replace(
        base,
        positions=args.positions or base.positions,
        repeats=args.repeats or base.repeats,
        transformer_tokens=args.transformer_tokens or base.transformer_tokens,
        memformer_segments=args.memformer_segments or base.memformer_segments,
        advance_limit=args.advance_limit or base.advance_limit,
    )


def run(args: argparse.Namespace) -> dict:
    started = environment(command=args.command)
    plan = plan_from_args(args)
    available = available_memory_bytes()
    if args.memory_limit_gib is not None:
        memory_limit = int(args.memory_limit_gib * 2**30)
    else:
        memory_limit = int(MEMORY_SHARE * available) if available else 8 * 2**30
    measured = measure(plan, seed=args.seed, threads=args.threads, memory_limit=memory_limit)
    data = {
        "sizes": dataclasses.asdict(plan.sizes),
        "plan": {key: value for key, value in dataclasses.asdict(plan).items() if key != "sizes"},
        "memory_limit_bytes": memory_limit,
        "memory_available_bytes": available,
        "models": measured.models,
        "rows": measured.rows,
        "memformer_round_robin": measured.round_robin,
        "summary": summarize(measured),
    }
    return report.save(args, name=NAME, title=TITLE, environment=started, data=data, figure=plot(measured),
                       markdown=markdown(data))


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


# ---------------------------------------------------------------------------- inside a model's process
#
# The model and its stream live in the worker process (a growing KV cache of gigabytes cannot
# travel between processes), so these functions keep them in one module global of that process.


@dataclasses.dataclass
class _Stream:
    name: str
    model: torch.nn.Module
    state: Any
    position: int
    generator: torch.Generator
    vocab_size: int
    # Memformer's state at every position reached (96.5 KiB each), for the flatness round.
    kept: dict[int, Any] = dataclasses.field(default_factory=dict)


_stream: _Stream | None = None


def open_stream(*, name: str, sizes: ModelSizes, seed: int, threads: int | None, warmup_tokens: int) -> dict:
    """Build the model in this process and start an empty stream; warm the generation path up."""
    global _stream
    if threads is not None:
        torch.set_num_threads(threads)
    # The Transformer reads what advance gives it in chunks of 512: the values never depend on
    # the chunk (docs/baselines.md), and fewer, larger chunks copy the growing cache less often.
    overrides = {"segment_len": 512} if name == "transformer" else {}
    model = build_model(name, sizes, seed=seed, **overrides)
    generator = torch.Generator().manual_seed(seed)
    _stream = _Stream(name=name, model=model, state=model.init_state(1), position=0, generator=generator,
                      vocab_size=sizes.vocab_size)
    with torch.no_grad():
        model.generate(torch.zeros(1, 1, dtype=torch.long), warmup_tokens, state=model.init_state(1),
                       generator=generator)
    return {"parameters": parameter_count(model), "threads": torch.get_num_threads(), "overrides": overrides}


def advance_stream(*, to: int, advance_limit: int, chunk: int) -> dict:
    """Carry the stream to ``to`` tokens: ``advance`` over random tokens, or (the Transformer past
    ``advance_limit``) repeat its cache. Returns how, and how long it took."""
    stream = _require_stream()
    start = time.perf_counter()
    grown_by_repetition = 0
    with torch.no_grad():
        real_target = to if stream.name != "transformer" else min(to, max(advance_limit, stream.position))
        while stream.position < real_target:
            n = min(chunk, real_target - stream.position)
            ids = torch.randint(0, stream.vocab_size, (1, n), generator=stream.generator)
            stream.state = stream.model.advance(ids, state=stream.state)
            stream.position += n
        if stream.position < to:
            grown_by_repetition = to - stream.position
            stream.state = _repeat_cache(stream.state, to)
            stream.position = to
    if stream.name == "memformer":
        stream.kept[to] = stream.state
    return {"advance_seconds": time.perf_counter() - start, "cache_positions_repeated": grown_by_repetition}


def _repeat_cache(state: Any, length: int) -> Any:
    """A full-cache Transformer state of ``length`` positions: the cache repeated along positions.

    The step's cost and memory depend on the cache's shape only; its values (keys of real tokens,
    rotated at other positions) are as good as any for timing and no longer a faithful stream.
    """
    cached = state.keys.size(3)
    copies = -(-length // cached)
    keys = state.keys.repeat(1, 1, 1, copies, 1)[:, :, :, -length:].contiguous()
    values = state.values.repeat(1, 1, 1, copies, 1)[:, :, :, -length:].contiguous()
    return state.replace(keys=keys, values=values, position=torch.full_like(state.position, length))


def reset_peak() -> bool:
    return reset_peak_rss()


def time_window(*, tokens: int, at: int | None = None) -> dict:
    """Wall and CPU seconds to sample ``tokens`` tokens from the current state (or the kept state
    at position ``at``), which stays where it is (every window starts from the same position).

    ``generate`` first reads a one-token prompt, which costs the Transformer one more step over
    its cache (and Memformer next to nothing); the time of reading that prompt alone
    (``max_new_tokens=0``) is subtracted, so both models are charged for the tokens they generate.
    The process's CPU time leaves out the time other jobs held the core (on one torch thread it
    is the work itself); the wall time is what a user waits.
    """
    stream = _require_stream()
    state = stream.state if at is None else stream.kept[at]
    prompt = torch.randint(0, stream.vocab_size, (1, 1), generator=stream.generator)

    def timed(max_new_tokens: int) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        stream.model.generate(prompt, max_new_tokens, state=state, temperature=1.0, generator=stream.generator)
        return time.perf_counter() - wall, time.process_time() - cpu

    prompt_wall, prompt_cpu = timed(0)
    wall, cpu = timed(tokens)
    return {"wall_seconds": wall - prompt_wall, "cpu_seconds": cpu - prompt_cpu}


def memory_now() -> dict:
    stream = _require_stream()
    return {"rss_bytes": current_rss_bytes(), "peak_rss_bytes": peak_rss_bytes(),
            "state_bytes": stream.state.num_bytes()}


def _require_stream() -> _Stream:
    assert _stream is not None, "open_stream must run first in this process"
    return _stream


# ---------------------------------------------------------------------------- summary and report


def summarize(measured: Measured) -> dict:
    rows, round_robin = measured.rows, measured.round_robin
    times = [entry["ms_per_token"] for entry in round_robin]
    cpu_times = [entry["cpu_ms_per_token"] for entry in round_robin]
    peaks = [row["memformer"]["peak_rss_bytes"] for row in rows]
    summary = {
        "memformer_time_spread": max(times) / min(times) - 1,
        "memformer_cpu_time_spread": max(cpu_times) / min(cpu_times) - 1,
        "memformer_time_target": TARGET_SPREAD,
        "memformer_flat": max(times) / min(times) - 1 <= TARGET_SPREAD,
        "memformer_cpu_flat": max(cpu_times) / min(cpu_times) - 1 <= TARGET_SPREAD,
        "memformer_peak_rss_spread": max(peaks) / min(peaks) - 1,
        "memformer_state_bytes": sorted({row["memformer"]["state_bytes"] for row in rows}),
    }
    transformer = [row for row in rows if "ms_per_token" in row["transformer"]]
    if transformer:
        first, last = transformer[0], transformer[-1]
        summary.update(
            transformer_last_position=last["position"],
            transformer_time_growth=last["transformer"]["ms_per_token"] / first["transformer"]["ms_per_token"],
            transformer_peak_rss_growth=last["transformer"]["peak_rss_bytes"] / first["transformer"]["peak_rss_bytes"],
            speedup_at_last=last["transformer"]["ms_per_token"] / last["memformer"]["ms_per_token"],
            peak_rss_ratio_at_last=last["transformer"]["peak_rss_bytes"] / last["memformer"]["peak_rss_bytes"],
            state_ratio_at_last=last["transformer"]["state_bytes"] / last["memformer"]["state_bytes"],
        )
    summary["transformer_skipped"] = [{"position": row["position"], "reason": row["transformer"]["skipped"]}
                                      for row in rows if "skipped" in row["transformer"]]
    return summary


def markdown(data: dict) -> str:
    rows, round_robin, summary, plan = data["rows"], data["memformer_round_robin"], data["summary"], data["plan"]
    flat_table = report.markdown_table(
        ["position", "ms/token", "CPU ms/token", "RSS", "peak RSS", "state"],
        [[f"{entry['position']:,}", f"{entry['ms_per_token']:.2f}", f"{entry['cpu_ms_per_token']:.2f}",
          report.format_bytes(row["memformer"]["rss_bytes"]), report.format_bytes(row["memformer"]["peak_rss_bytes"]),
          report.format_bytes(row["memformer"]["state_bytes"])]
         for entry, row in zip(round_robin, rows)],
    )
    versus_rows = []
    for row in rows:
        memformer, transformer = row["memformer"], row["transformer"]
        if "skipped" in transformer:
            versus_rows.append([f"{row['position']:,}", f"{memformer['ms_per_token']:.2f}", "skipped"] + ["-"] * 6)
            continue
        repeated = transformer["cache_positions_repeated"]
        cache = f"advance to {row['position'] - repeated:,}, then repeated" if repeated else "advance"
        versus_rows.append([
            f"{row['position']:,}", f"{memformer['ms_per_token']:.2f}", f"{transformer['ms_per_token']:.2f}",
            report.format_ratio(transformer["ms_per_token"] / memformer["ms_per_token"]),
            f"{transformer['cpu_ms_per_token']:.2f}", report.format_bytes(transformer["rss_bytes"]),
            report.format_bytes(transformer["peak_rss_bytes"]), report.format_bytes(transformer["state_bytes"]), cache,
        ])
    versus_table = report.markdown_table(
        ["position", "Memformer ms/token", "Transformer ms/token", "Transformer / Memformer", "Transformer CPU ms/token",
         "Transformer RSS", "Transformer peak RSS", "Transformer state", "Transformer cache"],
        versus_rows,
    )
    memformer_tokens = plan["memformer_segments"] * data["sizes"]["segment_len"]
    lines = [
        f"Batch 1, sampling at temperature 1, one process per model. Memformer "
        f"{data['models']['memformer']['parameters'] / 1e6:.2f} M parameters, windows of "
        f"{plan['memformer_segments']} segments ({memformer_tokens} tokens); Transformer "
        f"{data['models']['transformer']['parameters'] / 1e6:.2f} M parameters, full KV cache, windows of "
        f"{plan['transformer_tokens']} tokens; medians of {plan['repeats']} windows. ms/token is wall time; CPU "
        "ms/token the process's CPU time, which leaves out the time other jobs held the core. RSS: the "
        "process's after the windows; peak RSS: its peak during them.",
        "",
        "**Memformer across positions** (its states at all positions timed round-robin at the end, so a "
        "drift of the machine's load hits every position alike):",
        "",
        flat_table,
        "",
        "**Against the Transformer with a full KV cache** (at each position the two models' windows "
        "alternate):",
        "",
        versus_table,
        "",
        f"- Memformer's time per token varies by {100 * summary['memformer_time_spread']:.1f}% across positions in "
        f"wall time and {100 * summary['memformer_cpu_time_spread']:.1f}% in CPU time (target: flat within "
        f"{100 * TARGET_SPREAD:.0f}%: {'met' if summary['memformer_flat'] else 'missed'} in wall time, "
        f"{'met' if summary['memformer_cpu_flat'] else 'missed'} in CPU time); its peak RSS by "
        f"{100 * summary['memformer_peak_rss_spread']:.1f}%, and its state is "
        + " / ".join(report.format_bytes(b) for b in summary["memformer_state_bytes"]) + " at every position.",
    ]
    if "transformer_time_growth" in summary:
        last = summary["transformer_last_position"]
        lines.append(
            f"- The Transformer's time per token grows {report.format_ratio(summary['transformer_time_growth'])} and "
            f"its peak RSS {report.format_ratio(summary['transformer_peak_rss_growth'])} up to position {last:,}; "
            f"there the Transformer / Memformer ratios are {report.format_ratio(summary['speedup_at_last'])} in time "
            f"per token, {report.format_ratio(summary['peak_rss_ratio_at_last'])} in peak RSS and "
            f"{report.format_ratio(summary['state_ratio_at_last'])} in state bytes."
        )
    for skipped in summary["transformer_skipped"]:
        lines.append(f"- The Transformer was not run at position {skipped['position']:,}: {skipped['reason']}.")
    return "\n".join(lines)


def plot(measured: Measured):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"memformer": "tab:green", "transformer": "tab:red"}
    fig, (time_ax, memory_ax, state_ax) = plt.subplots(1, 3, figsize=(13, 3.8))
    # Memformer's times: the round-robin ones; the Transformer's: the ones timed alongside Memformer.
    timings = {"memformer": measured.round_robin,
               "transformer": [row["transformer"] | {"position": row["position"]} for row in measured.rows
                               if "ms_per_token" in row["transformer"]]}
    for name in MODELS:
        xs = [entry["position"] for entry in timings[name]]
        time_ax.plot(xs, [entry["ms_per_token"] for entry in timings[name]], "o-", color=colors[name],
                     label=f"{LABELS[name]} wall")
        time_ax.plot(xs, [entry["cpu_ms_per_token"] for entry in timings[name]], "s--", color=colors[name],
                     alpha=0.6, label=f"{LABELS[name]} CPU")
        points = [row for row in measured.rows if "rss_bytes" in row[name]]
        xs = [row["position"] for row in points]
        memory_ax.plot(xs, [row[name]["peak_rss_bytes"] / 2**20 for row in points], "o-", color=colors[name],
                       label=f"{LABELS[name]} peak")
        memory_ax.plot(xs, [row[name]["rss_bytes"] / 2**20 for row in points], "s--", color=colors[name], alpha=0.6,
                       label=f"{LABELS[name]} RSS")
        state_ax.plot(xs, [row[name]["state_bytes"] / 2**20 for row in points], "o-", color=colors[name],
                      label=LABELS[name])
    time_ax.set(yscale="log", xlabel="stream position (tokens)", ylabel="ms per generated token",
                title="batch-1 sampling")
    memory_ax.set(yscale="log", xlabel="stream position (tokens)", ylabel="MiB", title="process memory")
    state_ax.set(yscale="log", xlabel="stream position (tokens)", ylabel="state MiB", title="stream state")
    positions = [row["position"] for row in measured.rows]
    for ax in (time_ax, memory_ax, state_ax):
        report.log2_axis(ax, positions)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return fig
