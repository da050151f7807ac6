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
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
import statistics

import torch

from .common import report
from .common.arguments import int_list, plan_from_flags, positive_int
from .common.flops import count_flops
from .common.machine import current_rss_bytes, environment, peak_rss_bytes, reset_peak_rss, torch_threads
from .common.models import LABELS, MODEL_NAMES, ModelSizes, build_model, parameter_count
from .common.processes import call_each_in_fresh_process
from .common.timing import Stopwatch

NAME = "efficiency"
TITLE = "Efficiency: FLOPs, time and memory against length and memory size (paper Fig. 5)"

logger = logging.getLogger(__name__)

# Read off the paper's Fig. 5 (spec section 3): FLOPs per sequence at N = 8192 in the figure's
# units, and GPU memory in GB at memory size 64 and 2048. Only ratios and growth are comparable.
PAPER_FLOPS_AT_8192 = {"transformer": 450.0, "transformer-xl": 11.0, "memformer": 6.8}
PAPER_MEMORY_GB = {"transformer-xl": (4.8, 20.9), "memformer": (2.3, 3.3)}
PAPER_MEMORY_SIZES = (64, 2048)
MEMORY_MODELS = ("transformer-xl", "memformer")


@dataclasses.dataclass(frozen=True)
class Plan:
    """What one run measures; ``DEFAULT`` and ``QUICK`` below, flags override the sweeps."""

    sizes: ModelSizes
    lengths: tuple[int, ...]
    memory_sizes: tuple[int, ...]
    batch: int
    repeats: int


DEFAULT = Plan(
    sizes=ModelSizes(),
    lengths=(128, 256, 512, 1024, 2048, 4096, 8192, 16384),
    memory_sizes=(64, 128, 256, 512, 1024, 2048),
    batch=8,
    repeats=3,
)
QUICK = Plan(
    sizes=ModelSizes(d_model=32, num_heads=4, d_ff=64, num_encoder_layers=1, num_decoder_layers=1, num_slots=4,
                     segment_len=16, baseline_layers=2, mem_len=16),
    lengths=(32, 64),
    memory_sizes=(16, 32),
    batch=2,
    repeats=1,
)


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


# ---------------------------------------------------------------------------- sweep 1: length


def length_sweep(plan: Plan, *, seed: int) -> list[dict]:
    """FLOPs and median wall and CPU time of one batch-1 forward over N tokens, per model and N."""
    models = {
        # One chunk of the longest length: the whole sequence under one causal attention.
        "transformer": build_model("transformer", plan.sizes, seed=seed, segment_len=max(plan.lengths)),
        "transformer-xl": build_model("transformer-xl", plan.sizes, seed=seed),
        "memformer": build_model("memformer", plan.sizes, seed=seed),
    }
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for length in plan.lengths:
        ids = torch.randint(0, plan.sizes.vocab_size, (1, length), generator=generator)
        # The counted run is also each model's warm-up at this length.
        flops = {name: count_flops(lambda: model(ids)) for name, model in models.items()}
        seconds: dict[str, list[float]] = {name: [] for name in models}
        cpu_seconds: dict[str, list[float]] = {name: [] for name in models}
        for _ in range(plan.repeats):
            for name, model in models.items():  # interleaved, so load changes hit every model alike
                with Stopwatch() as watch:
                    model(ids)
                seconds[name].append(watch.wall)
                cpu_seconds[name].append(watch.cpu)
        row = {"length": length}
        for name in models:
            median = statistics.median(seconds[name])
            row[name] = {
                "flops": flops[name],
                "flops_per_token": flops[name] / length,
                "seconds": median,
                "seconds_all": seconds[name],
                "us_per_token": 1e6 * median / length,
                # The process's CPU time: leaves out the time other jobs held the core.
                "cpu_seconds_all": cpu_seconds[name],
                "cpu_us_per_token": 1e6 * statistics.median(cpu_seconds[name]) / length,
            }
        rows.append(row)
        logger.info("length %d: %s", length, ", ".join(
            f"{name} {row[name]['flops_per_token'] / 1e6:.1f} MFLOP/token {row[name]['us_per_token']:.0f} us/token"
            for name in models))
    return rows


# ---------------------------------------------------------------------------- sweep 2: memory size


def memory_sweep(plan: Plan, *, seed: int, threads: int | None) -> list[dict]:
    """State bytes, peak memory growth and FLOPs per token against memory size, each point in a
    fresh process (two at a time: nothing here is timed, and each process's peak is its own)."""
    points = [(memory_size, name) for memory_size in plan.memory_sizes for name in MEMORY_MODELS]
    results = call_each_in_fresh_process(
        measure_memory_point,
        [dict(name=name, sizes=plan.sizes, memory_size=memory_size, batch=plan.batch, seed=seed, threads=threads)
         for memory_size, name in points],
        parallel=min(2, os.cpu_count() or 1),
    )
    rows = []
    for memory_size in plan.memory_sizes:
        row = {"memory_size": memory_size}
        row.update({name: result for (size, name), result in zip(points, results) if size == memory_size})
        rows.append(row)
        logger.info("memory size %d: %s", memory_size, ", ".join(
            f"{name} state {report.format_bytes(row[name]['state_bytes_per_row'])}/row, training peak "
            f"+{report.format_bytes(row[name]['training_peak_growth_bytes'])}" for name in MEMORY_MODELS))
    return rows


def measure_memory_point(*, name: str, sizes: ModelSizes, memory_size: int, batch: int, seed: int,
                         threads: int | None) -> dict:
    """One model at one memory size; runs in a fresh process, so the peak RSS is this workload's."""
    if threads is not None:
        torch.set_num_threads(threads)
    field = "mem_len" if name == "transformer-xl" else "num_slots"
    model = build_model(name, sizes, seed=seed, **{field: memory_size})
    length = sizes.segment_len
    fill = math.ceil(memory_size / length) * length  # enough whole segments to fill a mem_len cache
    window = 2 * length
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, sizes.vocab_size, (batch, fill + window), generator=generator)
    fill_BN, window_BN = ids[:, :fill], ids[:, fill:]
    # Warm up on one segment of one row first, so the baseline already holds what the first
    # forward and backward allocate once per process (thread pools, kernel workspaces).
    model(ids[:1, :length], labels=ids[:1, :length]).loss.backward()
    model.zero_grad(set_to_none=True)
    peak_before = peak_rss_bytes()
    peak_reset = reset_peak_rss()
    baseline = current_rss_bytes()
    with torch.no_grad():
        state = model.advance(fill_BN, state=model.init_state(batch))
        model(window_BN, state=state)
    inference_peak = peak_rss_bytes()
    model(window_BN, state=state, labels=window_BN).loss.backward()
    training_peak = peak_rss_bytes()
    model.zero_grad(set_to_none=True)
    with torch.no_grad():
        flops = count_flops(lambda: model(window_BN, state=state))
    return {
        "state_bytes_per_row": state.num_bytes() // batch,
        "baseline_rss_bytes": baseline,
        # The process peak before the workload (imports, model, warm-up); unless it could be
        # reset, a workload peak below it does not show.
        "peak_rss_before_bytes": peak_before,
        "peak_rss_reset": peak_reset,
        "inference_peak_rss_bytes": inference_peak,
        "training_peak_rss_bytes": training_peak,
        "inference_peak_growth_bytes": max(inference_peak - baseline, 0),
        "training_peak_growth_bytes": max(training_peak - baseline, 0),
        "flops_per_token": flops / window_BN.numel(),
        "batch": batch,
        "fill_tokens": fill,
        "window_tokens": window,
    }


# ---------------------------------------------------------------------------- comparison and report


def compare_with_paper(lengths: list[dict], memory: list[dict]) -> dict:
    """Our ratios next to the paper's: the comparable part of Fig. 5 (not absolute values)."""
    at = next((row for row in lengths if row["length"] == 8192), lengths[-1])
    first, last = lengths[0], lengths[-1]
    comparison = {
        "flops_length": at["length"],
        "flops_ratio_vs_memformer": {
            name: {"ours": at[name]["flops"] / at["memformer"]["flops"],
                   "paper_at_8192": PAPER_FLOPS_AT_8192[name] / PAPER_FLOPS_AT_8192["memformer"]}
            for name in ("transformer", "transformer-xl")
        },
        "flops_per_token_growth": {  # last length over first: 1 = linear cost, growing = superlinear
            name: last[name]["flops_per_token"] / first[name]["flops_per_token"] for name in MODEL_NAMES
        },
        "time_per_token_growth": {name: last[name]["us_per_token"] / first[name]["us_per_token"] for name in MODEL_NAMES},
        "cpu_time_per_token_growth": {
            name: last[name]["cpu_us_per_token"] / first[name]["cpu_us_per_token"] for name in MODEL_NAMES
        },
        "lengths": [first["length"], last["length"]],
    }
    low, high = memory[0], memory[-1]
    comparison["memory_sizes"] = [low["memory_size"], high["memory_size"]]
    comparison["training_peak_growth"] = {
        name: {"ours": _ratio(high[name]["training_peak_growth_bytes"], low[name]["training_peak_growth_bytes"]),
               "paper_64_to_2048": PAPER_MEMORY_GB[name][1] / PAPER_MEMORY_GB[name][0]}
        for name in MEMORY_MODELS
    }
    comparison["training_peak_ratio_txl_vs_memformer"] = {
        "ours_low": _ratio(low["transformer-xl"]["training_peak_growth_bytes"], low["memformer"]["training_peak_growth_bytes"]),
        "ours_high": _ratio(high["transformer-xl"]["training_peak_growth_bytes"], high["memformer"]["training_peak_growth_bytes"]),
        "paper_at_64": PAPER_MEMORY_GB["transformer-xl"][0] / PAPER_MEMORY_GB["memformer"][0],
        "paper_at_2048": PAPER_MEMORY_GB["transformer-xl"][1] / PAPER_MEMORY_GB["memformer"][1],
    }
    comparison["state_ratio_txl_vs_memformer"] = {
        "low": low["transformer-xl"]["state_bytes_per_row"] / low["memformer"]["state_bytes_per_row"],
        "high": high["transformer-xl"]["state_bytes_per_row"] / high["memformer"]["state_bytes_per_row"],
    }
    return comparison


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def markdown(data: dict) -> str:
    lengths, memory, comparison = data["length_sweep"], data["memory_sweep"], data["comparison"]
    params = data["parameters"]
    header = (["N"] + [f"{LABELS[n]} MFLOP/token" for n in MODEL_NAMES] + [f"{LABELS[n]} us/token" for n in MODEL_NAMES]
              + [f"{LABELS[n]} CPU us/token" for n in MODEL_NAMES])
    rows = [
        [f"{row['length']:,}"]
        + [f"{row[n]['flops_per_token'] / 1e6:.1f}" for n in MODEL_NAMES]
        + [f"{row[n]['us_per_token']:.0f}" for n in MODEL_NAMES]
        + [f"{row[n]['cpu_us_per_token']:.0f}" for n in MODEL_NAMES]
        for row in lengths
    ]
    length_table = report.markdown_table(header, rows)
    header = ["memory size"] + [
        f"{LABELS[n]} {what}" for what in ("state/row", "inference peak +", "training peak +", "MFLOP/token")
        for n in MEMORY_MODELS
    ]
    rows = [
        [f"{row['memory_size']:,}"]
        + [report.format_bytes(row[n]["state_bytes_per_row"]) for n in MEMORY_MODELS]
        + [report.format_bytes(row[n]["inference_peak_growth_bytes"]) for n in MEMORY_MODELS]
        + [report.format_bytes(row[n]["training_peak_growth_bytes"]) for n in MEMORY_MODELS]
        + [f"{row[n]['flops_per_token'] / 1e6:.1f}" for n in MEMORY_MODELS]
        for row in memory
    ]
    memory_table = report.markdown_table(header, rows)
    c = comparison
    ratio = c["flops_ratio_vs_memformer"]
    growth = c["training_peak_growth"]
    peak_ratio = c["training_peak_ratio_txl_vs_memformer"]
    n0, n1 = c["lengths"]
    m0, m1 = c["memory_sizes"]
    batch = data["plan"]["batch"]
    return "\n".join([
        f"Parameters: Transformer {params['transformer'] / 1e6:.2f} M, Transformer-XL "
        f"{params['transformer-xl'] / 1e6:.2f} M, Memformer {params['memformer'] / 1e6:.2f} M. FLOPs count "
        "matrix products (attention included; masked scores are computed, so counted). Time: median of "
        f"{data['plan']['repeats']} batch-1 forwards, models interleaved; us/token is wall time, CPU us/token the "
        "process's CPU time (which leaves out the time other jobs held the core).",
        "",
        "**Sequence length** (one forward over N tokens, batch 1):",
        "",
        length_table,
        "",
        f"**Memory size** (Transformer-XL mem_len = Memformer slots; batch {batch}; peak + = growth of the "
        "process's peak RSS over the loaded model, in a fresh process per point; inference streams two "
        "segments without gradients after filling the state, training runs forward + backward on them):",
        "",
        memory_table,
        "",
        "**Against the paper** (Fig. 5, read off the plots; only ratios and shapes compare):",
        "",
        f"- FLOPs per sequence at N = {c['flops_length']:,}: Transformer / Memformer "
        f"{report.format_ratio(ratio['transformer']['ours'])} (paper ~{ratio['transformer']['paper_at_8192']:.0f}x), "
        f"Transformer-XL / Memformer {report.format_ratio(ratio['transformer-xl']['ours'])} "
        f"(paper ~{ratio['transformer-xl']['paper_at_8192']:.1f}x).",
        f"- FLOPs per token from N = {n0:,} to {n1:,} grow "
        + ", ".join(f"{report.format_ratio(c['flops_per_token_growth'][n])} ({LABELS[n]})" for n in MODEL_NAMES)
        + ": 1x is a cost linear in N, a growing one is quadratic. Time per token grows "
        + ", ".join(f"{report.format_ratio(c['time_per_token_growth'][n])} ({LABELS[n]})" for n in MODEL_NAMES)
        + " in wall time, "
        + ", ".join(f"{report.format_ratio(c['cpu_time_per_token_growth'][n])} ({LABELS[n]})" for n in MODEL_NAMES)
        + " in CPU time.",
        f"- Training peak memory from memory size {m0:,} to {m1:,} grows "
        f"{report.format_ratio(growth['transformer-xl']['ours'])} for Transformer-XL (paper "
        f"{growth['transformer-xl']['paper_64_to_2048']:.2f}x, 4.8 -> 20.9 GB) and "
        f"{report.format_ratio(growth['memformer']['ours'])} for Memformer (paper "
        f"{growth['memformer']['paper_64_to_2048']:.2f}x, 2.3 -> 3.3 GB); Transformer-XL / Memformer "
        f"{report.format_ratio(peak_ratio['ours_low'])} at {m0:,} and {report.format_ratio(peak_ratio['ours_high'])} "
        f"at {m1:,} (paper {peak_ratio['paper_at_64']:.1f}x and {peak_ratio['paper_at_2048']:.1f}x).",
        f"- State per row: Transformer-XL / Memformer {report.format_ratio(c['state_ratio_txl_vs_memformer']['low'])} "
        f"at {m0:,} and {report.format_ratio(c['state_ratio_txl_vs_memformer']['high'])} at {m1:,} (Transformer-XL "
        "caches mem_len positions in every layer, Memformer keeps one set of slots plus one segment).",
    ])


def plot(lengths: list[dict], memory: list[dict]):
    plt = report.pyplot()

    colors = {"transformer": "tab:red", "transformer-xl": "tab:blue", "memformer": "tab:green"}
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    (flops_ax, time_ax), (state_ax, peak_ax) = axes
    ns = [row["length"] for row in lengths]
    for name in MODEL_NAMES:
        flops_ax.plot(ns, [row[name]["flops"] / 1e9 for row in lengths], "o-", color=colors[name], label=LABELS[name])
        time_ax.plot(ns, [row[name]["us_per_token"] for row in lengths], "o-", color=colors[name],
                     label=f"{LABELS[name]} wall")
        time_ax.plot(ns, [row[name]["cpu_us_per_token"] for row in lengths], "s--", color=colors[name], alpha=0.6,
                     label=f"{LABELS[name]} CPU")
    flops_ax.set(yscale="log", xlabel="sequence length N", ylabel="GFLOPs per sequence",
                 title="forward FLOPs (counted)")
    time_ax.set(xlabel="sequence length N", ylabel="us per token (batch 1)", title="forward wall time")
    time_ax.set_ylim(bottom=0)
    report.log2_axis(flops_ax, ns)
    report.log2_axis(time_ax, ns)
    ms = [row["memory_size"] for row in memory]
    for name in MEMORY_MODELS:
        label = f"{LABELS[name]} ({'mem_len' if name == 'transformer-xl' else 'slots'})"
        state_ax.plot(ms, [row[name]["state_bytes_per_row"] / 2**20 for row in memory], "o-", color=colors[name],
                      label=label)
        peak_ax.plot(ms, [row[name]["training_peak_growth_bytes"] / 2**20 for row in memory], "o-",
                     color=colors[name], label=f"{LABELS[name]} training")
        peak_ax.plot(ms, [row[name]["inference_peak_growth_bytes"] / 2**20 for row in memory], "s--",
                     color=colors[name], alpha=0.6, label=f"{LABELS[name]} inference")
    state_ax.set(yscale="log", xlabel="memory size", ylabel="state MiB per row", title="stream state")
    peak_ax.set(xlabel="memory size", ylabel="peak RSS growth (MiB)", title="peak process memory")
    peak_ax.set_ylim(bottom=0)
    report.log2_axis(state_ax, ms)
    report.log2_axis(peak_ax, ms)
    for ax in axes.flat:
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
