"""Efficiency (paper Fig. 5): FLOPs and time per token against sequence length; state size,
peak memory and FLOPs against memory size, for a plain Transformer, Transformer-XL and Memformer.

Untrained models at comparable sizes (``common/models.py``: d_model 256, 8 heads; Memformer 4 + 4
layers, 32 slots, segments of 64; Transformer-XL 8 layers, mem_len 64; plain Transformer 8
layers, full context). Two sweeps:

1. Sequence length N (128 ... 16384): one batch-1 forward over N random tokens, logits for every
   token. FLOPs counted with ``torch.utils.flop_counter`` (matrix products, the CPU attention
   kernel included, ``common/flops.py``); wall time the median of ``--repeats`` runs with the
   models interleaved. The plain Transformer reads the sequence as one chunk with causal
   attention over all of it (N x N scores: quadratic); Transformer-XL and Memformer stream it
   segment by segment (linear). The process's CPU time is recorded beside the wall time.
2. Memory size m (64 ... 2048): Transformer-XL with mem_len m against Memformer with m slots. Each
   point runs in a fresh process (``common/processes.py``): fill the state by streaming
   ceil(m / 64) segments of a batch of ``--batch`` rows, then stream two more segments without
   gradients (inference), then train on those two segments (forward + backward). Recorded: the
   state's bytes per row, the peak RSS growth over the loaded model during inference and during
   training, and the forward FLOPs per token.

    memformer bench efficiency --update-results      # default sizes: 16 min on 2 cores at load 3, 25 at load 7
    memformer bench efficiency --quick               # tiny sizes, seconds

The pieces: ``plan.py`` (sizes and sweeps), ``length_sweep.py``, ``memory_sweep.py`` (with the
function each fresh process runs), ``writeup.py`` (comparison with the paper, tables, plot).
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from ..common import report
from ..common.arguments import int_list, plan_from_flags, positive_int
from ..common.machine import environment, torch_threads
from ..common.models import MODEL_NAMES, build_model, parameter_count
from .length_sweep import length_sweep
from .memory_sweep import memory_sweep
from .plan import DEFAULT, QUICK, Plan
from .writeup import compare_with_paper, markdown, plot

NAME = "efficiency"
TITLE = "Efficiency: FLOPs, time and memory against length and memory size (paper Fig. 5)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lengths", type=int_list, default=None,
                        help=f"sequence lengths, comma-separated (default {','.join(map(str, DEFAULT.lengths))})")
    parser.add_argument("--memory-sizes", type=int_list, default=None,
                        help="Transformer-XL mem_len and Memformer slots, comma-separated "
                             f"(default {','.join(map(str, DEFAULT.memory_sizes))})")
    parser.add_argument("--batch", type=positive_int, default=None,
                        help=f"rows in the memory sweep (default {DEFAULT.batch}; the length sweep is batch 1)")
    parser.add_argument("--repeats", type=positive_int, default=None,
                        help=f"timed runs per model and length; the median is reported (default {DEFAULT.repeats})")
    parser.set_defaults(threads=1)


def plan_from_args(args: argparse.Namespace) -> Plan:
    return plan_from_flags(args, default=DEFAULT, quick=QUICK, flags=("lengths", "memory_sizes", "batch", "repeats"))


def run(args: argparse.Namespace) -> dict:
    started = environment(command=args.command)
    plan = plan_from_args(args)
    with torch_threads(args.threads), torch.no_grad():
        lengths = length_sweep(plan, seed=args.seed)
    memory = memory_sweep(plan, seed=args.seed, threads=args.threads)
    data = {
        "sizes": dataclasses.asdict(plan.sizes),
        "plan": {"lengths": plan.lengths, "memory_sizes": plan.memory_sizes, "batch": plan.batch,
                 "repeats": plan.repeats},
        "parameters": {name: parameter_count(build_model(name, plan.sizes, seed=args.seed)) for name in MODEL_NAMES},
        "length_sweep": lengths,
        "memory_sweep": memory,
        "comparison": compare_with_paper(lengths, memory),
    }
    return report.save(args, name=NAME, title=TITLE, environment=started, data=data,
                       figure=plot(lengths, memory), markdown=markdown(data))
