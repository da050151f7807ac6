"""What an efficiency result says: the comparison with the paper's Fig. 5, the markdown tables and
the plot."""

from __future__ import annotations

from ..common import report
from ..common.models import LABELS, MODEL_NAMES
from .plan import MEMORY_MODELS

# Read off the paper's Fig. 5 (spec section 3): FLOPs per sequence at N = 8192 in the figure's
# units, and GPU memory in GB at memory size 64 and 2048. Only ratios and growth are comparable.
PAPER_FLOPS_AT_8192 = {"transformer": 450.0, "transformer-xl": 11.0, "memformer": 6.8}
PAPER_MEMORY_GB = {"transformer-xl": (4.8, 20.9), "memformer": (2.3, 3.3)}
PAPER_MEMORY_SIZES = (64, 2048)


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
