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

The pieces: ``plan.py`` (the sizes and positions), ``measurement.py`` (the two processes, side by
side), ``worker.py`` (what runs inside a model's process), ``writeup.py`` (summary, tables, plot).
"""

from __future__ import annotations

import argparse
import dataclasses

from ..common import report
from ..common.arguments import int_list, plan_from_flags, positive_float, positive_int
from ..common.machine import available_memory_bytes, environment
from .measurement import measure
from .plan import DEFAULT, QUICK, Plan
from .writeup import markdown, plot, summarize

NAME = "streaming"
TITLE = "Streaming scaling: time and memory per generated token against stream position"

# Share of the memory available at the start the Transformer may use by default.
MEMORY_SHARE = 0.7


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
    return plan_from_flags(args, default=DEFAULT, quick=QUICK, flags=(
        "positions", "repeats", "transformer_tokens", "memformer_segments", "advance_limit"))


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
