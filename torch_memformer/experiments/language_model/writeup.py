"""What a language-model result says: the comparison with the paper's Table 2, the markdown
table and the plot."""

from __future__ import annotations

import math

from ..common import report

LN2 = math.log(2)

# Paper Table 2 (WikiText-103 perplexity, spec section 3): what our bits per byte are read against.
PAPER_TXL = {1600: 23.95, 1024: 23.67, 512: 23.94, 256: 25.39, 128: 25.60, 32: 27.22}
PAPER_MEMFORMER, PAPER_NO_MEMORY = 22.74, 25.57


def compare_with_paper(rows: list[dict]) -> dict:
    by_key = {row["key"]: row for row in rows}
    memformer = by_key["memformer"]["valid_bits_per_byte"]
    txl = sorted((row for row in rows if row["model"] == "transformer-xl"), key=lambda row: row["memory"])
    best = min(txl, key=lambda row: row["valid_bits_per_byte"])
    comparison = {
        "memformer_bits_per_byte": memformer,
        "best_txl_key": best["key"],
        "best_txl_bits_per_byte": best["valid_bits_per_byte"],
        "memformer_minus_best_txl": memformer - best["valid_bits_per_byte"],
        "memformer_beats_every_txl": all(memformer < row["valid_bits_per_byte"] for row in txl),
        "txl_bits_per_byte_by_mem_len": {row["memory"]: row["valid_bits_per_byte"] for row in txl},
        "txl_trend_with_mem_len": _trend([row["valid_bits_per_byte"] for row in txl]),
        "parameter_spread": max(row["parameters"] for row in rows) / min(row["parameters"] for row in rows) - 1,
        "paper": {"memformer": PAPER_MEMFORMER, "no_memory": PAPER_NO_MEMORY, "txl": PAPER_TXL},
    }
    if "no-memory" in by_key:
        comparison["no_memory_minus_memformer"] = by_key["no-memory"]["valid_bits_per_byte"] - memformer
    reset = by_key["memformer"]["valid_reset_bits_per_byte"]
    if reset is not None:
        comparison["memory_reset_minus_carried"] = reset - memformer
    return comparison


def _trend(values: list[float]) -> str:
    """How bits per byte move along increasing memory lengths."""
    steps = [b - a for a, b in zip(values, values[1:])]
    if steps and all(step < 0 for step in steps):
        return "better at every step"
    if steps and all(step > 0 for step in steps):
        return "worse at every step"
    return "not monotonic"


def markdown(data: dict) -> str:
    rows, comparison, recipe = data["models"], data["comparison"], data["recipe"]
    header = ["model", "parameters", "memory", "steps", "training CPU / wall time", "train tokens/s",
              "inference MFLOP/token", "valid bits/byte", "memory reset every segment"]
    table = []
    for row in rows:
        memory = {"memformer": f"{row['memory']} slots", "transformer-xl": f"mem_len {row['memory']}"}[row["model"]]
        if row["ablation"] == "no-memory":
            memory = "none"
        reset = row["valid_reset_bits_per_byte"]
        table.append([row["label"], f"{row['parameters'] / 1e6:.3f} M", memory, f"{row['steps']:,}",
                      f"{_seconds(row['train_cpu_seconds'])} / {_seconds(row['train_wall_seconds'])} s",
                      f"{row['tokens'] / row['train_cpu_seconds']:,.0f}",
                      f"{row['inference_flops_per_token'] / 1e6:.2f}", f"**{row['valid_bits_per_byte']:.4f}**",
                      "-" if reset is None else f"{reset:.4f}"])
    budget = ("the same number of steps for every model" if recipe["steps"] is not None else
              f"an equal training budget of {recipe['seconds_per_model']:.0f} s of CPU time per model, turned into "
              "steps by an interleaved measurement of each model's CPU seconds per step")
    valid_tokens = rows[0]["valid_tokens"]
    lines = [
        f"Data `{data['data']}` (bytes), batch {recipe['batch_size']} x {recipe['window']} segments per step, "
        f"AdamW lr {recipe['lr']:g} with warm-up and cosine decay, {budget}; {data['threads']} torch thread(s). "
        f"Valid bits per byte on the same {valid_tokens:,} tokens for every model (the first "
        f"{recipe['eval_batches']} batches of the valid split laid out in {recipe['eval_batch_size']} rows, the "
        "memory carried). Training time: the process's CPU time (the work, on one thread) and the wall time "
        "(which the machine's other jobs stretch) of the trainer's whole run, start-up and saving included; "
        "tokens/s per CPU second. Inference FLOPs: a batch-1 forward with a full memory.",
        "",
        report.markdown_table(header, table),
        "",
        "**Against the paper** (Table 2, WikiText-103 perplexity; only the ordering and the relative gaps compare):",
        "",
    ]
    best, memformer = comparison["best_txl_key"], comparison["memformer_bits_per_byte"]
    diff = comparison["memformer_minus_best_txl"]
    relative = 100 * abs(diff) / comparison["best_txl_bits_per_byte"]
    lines.append(
        f"- Memformer {memformer:.4f} bits/byte against the best Transformer-XL "
        f"({best}) {comparison['best_txl_bits_per_byte']:.4f}: Memformer is "
        f"{'better' if diff < 0 else 'worse'} by {abs(diff):.4f} ({relative:.1f}%); "
        f"it {'beats' if comparison['memformer_beats_every_txl'] else 'does not beat'} every Transformer-XL. "
        f"Paper: Memformer {PAPER_MEMFORMER} beats every Transformer-XL (best 23.67 at memory 1024, "
        f"{100 * (23.67 - PAPER_MEMFORMER) / 23.67:.1f}% higher perplexity).")
    by_mem = comparison["txl_bits_per_byte_by_mem_len"]
    lines.append(
        "- Transformer-XL against its memory: " + ", ".join(f"{m}: {b:.4f}" for m, b in by_mem.items())
        + f" bits/byte ({comparison['txl_trend_with_mem_len']} as mem_len grows). Paper: better with a longer memory "
        "up to 1024: 27.22 at 32, 25.60 at 128, 25.39 at 256, 23.94 at 512, 23.67 at 1024.")
    if "no_memory_minus_memformer" in comparison:
        gap = comparison["no_memory_minus_memformer"]
        paper_gap = 100 * (PAPER_NO_MEMORY - PAPER_MEMFORMER) / PAPER_MEMFORMER
        lines.append(
            f"- Without memory: {gap:+.4f} bits/byte against Memformer ({100 * gap / memformer:+.1f}%). "
            f"Paper: {PAPER_NO_MEMORY} vs {PAPER_MEMFORMER} ({paper_gap:+.1f}% perplexity).")
    if "memory_reset_minus_carried" in comparison:
        lines.append(
            f"- The trained Memformer with its memory reset before every segment (evaluation only): "
            f"{comparison['memory_reset_minus_carried']:+.4f} bits/byte: what its memory carries from further back "
            "than one segment.")
    lines.append(f"- Parameter counts agree within {100 * comparison['parameter_spread']:.1f}%.")
    return "\n".join(lines)


def _seconds(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def plot(rows: list[dict]):
    plt = report.pyplot()

    fig, (curve_ax, bpb_ax, flops_ax) = plt.subplots(1, 3, figsize=(15, 4.2))
    colors = {"memformer": "tab:green", "no-memory": "tab:olive"}
    txl_rows = [row for row in rows if row["model"] == "transformer-xl"]
    cmap = plt.get_cmap("Reds")
    for index, row in enumerate(txl_rows):
        colors[row["key"]] = cmap(0.4 + 0.6 * index / max(len(txl_rows) - 1, 1))
    equal_time = all(row["step_seconds"] for row in rows)
    for row in rows:
        if not row["train_curve"]:
            continue
        steps, losses = zip(*row["train_curve"])
        # The CPU time of step s: s times the model's calibrated CPU seconds per step.
        xs = [s * row["step_seconds"] for s in steps] if equal_time else steps
        bits = [loss / LN2 for loss in losses]
        window = max(1, len(bits) // 20)
        smooth = [sum(bits[max(0, i - window + 1): i + 1]) / len(bits[max(0, i - window + 1): i + 1])
                  for i in range(len(bits))]
        curve_ax.plot(xs, smooth, color=colors[row["key"]], label=row["label"])
    curve_ax.set(xlabel="training CPU seconds (steps x calibrated step time)" if equal_time else "step",
                 ylabel="training loss, bits/byte (smoothed)",
                 title="training at equal CPU time" if equal_time else "training at equal steps")
    curve_ax.legend(fontsize=7)
    curve_ax.grid(alpha=0.3)

    memory_lengths = [row["memory"] for row in txl_rows]
    bpb_ax.plot(memory_lengths, [row["valid_bits_per_byte"] for row in txl_rows], "o-", color="tab:red",
                label="Transformer-XL")
    for row in rows:
        if row["model"] == "memformer":
            bpb_ax.axhline(row["valid_bits_per_byte"], color=colors[row["key"]], ls="-" if row["key"] == "memformer"
                           else "--", label=row["label"])
            if row["valid_reset_bits_per_byte"] is not None:
                bpb_ax.axhline(row["valid_reset_bits_per_byte"], color=colors[row["key"]], ls=":",
                               label="Memformer, memory reset every segment")
    report.log2_axis(bpb_ax, memory_lengths)
    bpb_ax.set(xlabel="Transformer-XL mem_len", ylabel="valid bits per byte", title="validation (lower is better)")
    bpb_ax.legend(fontsize=7)
    bpb_ax.grid(alpha=0.3)

    for row in rows:
        flops_ax.scatter(row["inference_flops_per_token"] / 1e6, row["valid_bits_per_byte"], color=colors[row["key"]],
                         label=row["label"], s=40)
    flops_ax.set(xlabel="inference MFLOP per token", ylabel="valid bits per byte", title="quality against cost (Table 2)")
    flops_ax.legend(fontsize=7)
    flops_ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
