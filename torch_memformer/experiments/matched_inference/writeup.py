"""What a matched-inference result says: each model's row, the ratios against the abstract's
targets, the markdown tables and the plot."""

from __future__ import annotations

import numpy as np

from ..common import report

TARGET_MEMORY_RATIO = 8.1  # "8.1x less memory"
TARGET_SPEEDUP = 3.2  # "3.2x faster on inference"


def valid_bits_per_byte(record: dict) -> float:
    """A trained model's validation bits per byte, from its manifest record."""
    return record["valid"]["bits_per_byte"]


def result_row(record: dict, timing: dict, memory: dict, *, matched: bool) -> dict:
    return {
        "key": record["key"], "label": record["label"], "model": record["model"], "memory": record["memory"],
        "matched": matched, "parameters": record["parameters"], "valid_bits_per_byte": valid_bits_per_byte(record),
        "train_steps": record["steps"], "checkpoint": record["checkpoint"], **timing, **memory,
    }


def _ratios(memformer: dict, other: dict) -> dict:
    """Other / Memformer for sizes, Memformer / other for speeds: > 1 means Memformer is better."""
    return {
        "state": other["state_bytes_per_row"] / memformer["state_bytes_per_row"],
        "read_peak_growth": _safe_ratio(other["read_peak_growth_bytes"], memformer["read_peak_growth_bytes"]),
        "generate_peak_growth": _safe_ratio(other["generate_peak_growth_bytes"], memformer["generate_peak_growth_bytes"]),
        "process_peak": other["process_peak_rss_bytes"] / memformer["process_peak_rss_bytes"],
        # Speeds from CPU time (the work, on one thread); the wall-clock ones beside them.
        "read_speed": memformer["read_tokens_per_second_cpu"] / other["read_tokens_per_second_cpu"],
        "generate_speed": memformer["generate_tokens_per_second_cpu"] / other["generate_tokens_per_second_cpu"],
        "read_speed_wall": memformer["read_tokens_per_second"] / other["read_tokens_per_second"],
        "generate_speed_wall": memformer["generate_tokens_per_second"] / other["generate_tokens_per_second"],
        "bits_per_byte_difference": other["valid_bits_per_byte"] - memformer["valid_bits_per_byte"],
    }


def _safe_ratio(numerator: float, denominator: float) -> float | None:
    return None if denominator <= 0 else numerator / denominator


def compare(rows: list[dict]) -> dict:
    memformer = rows[0]
    matched = next(row for row in rows if row["matched"])
    ratios = _ratios(memformer, matched)
    memory_ratio = ratios["read_peak_growth"]
    return {
        "matched": matched["key"],
        "ratios_matched": ratios,
        "ratios_by_model": {row["key"]: _ratios(memformer, row) for row in rows[1:]},
        "memory_target": TARGET_MEMORY_RATIO,
        "speed_target": TARGET_SPEEDUP,
        "memory_target_met": memory_ratio is not None and memory_ratio >= TARGET_MEMORY_RATIO,
        "state_target_met": ratios["state"] >= TARGET_MEMORY_RATIO,
        "speed_target_met": ratios["read_speed"] >= TARGET_SPEEDUP,
        "generate_speed_target_met": ratios["generate_speed"] >= TARGET_SPEEDUP,
    }


def markdown(data: dict) -> str:
    rows, comparison, plan = data["rows"], data["comparison"], data["plan"]
    rows_text = f"{plan['memory_batch']} streams"
    header = ["model", "valid bits/byte", "stream bits/byte", "state per stream", f"read peak +, {rows_text}",
              f"generate peak +, {rows_text}", "process peak RSS", "read tokens/s (CPU / wall)",
              "generate tokens/s (CPU / wall)"]
    table = []
    for row in rows:
        label = f"**{row['label']}** (matched)" if row["matched"] else row["label"]
        table.append([label, f"{row['valid_bits_per_byte']:.4f}", f"{row['stream_bits_per_byte']:.4f}",
                      report.format_bytes(row["state_bytes_per_row"]), report.format_bytes(row["read_peak_growth_bytes"]),
                      report.format_bytes(row["generate_peak_growth_bytes"]),
                      report.format_bytes(row["process_peak_rss_bytes"]),
                      f"{row['read_tokens_per_second_cpu']:,.0f} / {row['read_tokens_per_second']:,.0f}",
                      f"{row['generate_tokens_per_second_cpu']:,.0f} / {row['generate_tokens_per_second']:,.0f}"])
    ratio_header = ["Transformer-XL", "bits/byte vs Memformer", "state", "read peak +", "generate peak +",
                    "process peak", "read speed (CPU / wall)", "generate speed (CPU / wall)"]
    ratio_rows = []
    for row in rows[1:]:
        r = comparison["ratios_by_model"][row["key"]]
        name = f"**{row['label']}** (matched)" if row["matched"] else row["label"]
        ratio_rows.append([name, f"{r['bits_per_byte_difference']:+.4f}", report.format_ratio(r["state"]),
                           report.format_ratio(r["read_peak_growth"]), report.format_ratio(r["generate_peak_growth"]),
                           report.format_ratio(r["process_peak"]),
                           f"{report.format_ratio(r['read_speed'])} / {report.format_ratio(r['read_speed_wall'])}",
                           f"{report.format_ratio(r['generate_speed'])} / "
                           f"{report.format_ratio(r['generate_speed_wall'])}"])
    m = comparison["ratios_matched"]
    matched = next(row for row in rows if row["matched"])

    def verdict(met: bool) -> str:
        return "met" if met else "missed"

    source = "trained by this run" if data["trained_here"] else "its checkpoints"
    lines = [
        f"Models of `memformer bench language-model` ({source}, `{data['checkpoints']}`): equal parameter count, "
        f"equal training time, data `{data['data']}`. Streamed: the first {plan['tokens']:,} tokens (bytes) of the "
        f"longest valid document, batch {plan['batch']}, one torch thread, chunks of one segment with logits for "
        f"every token (**read**), then {plan['generate_tokens']} tokens sampled (**generate**); medians of "
        f"{plan['repeats']} interleaved runs. Memory: the same, {plan['memory_batch']} streams at once, in a fresh "
        "process per model (MALLOC_MMAP_THRESHOLD_=65536); peak + = peak RSS above the loaded, warmed-up model; "
        "process peak RSS includes Python, torch and the weights. Tokens/s from the process's CPU time (the work, "
        "on one thread) and from wall time (which other jobs on the shared machine stretch). Stream bits/byte: "
        "the models' loss on the streamed text.",
        "",
        report.markdown_table(header, table),
        "",
        "Ratios, Transformer-XL over Memformer (memory) and Memformer over Transformer-XL (speed): above 1x Memformer "
        "is cheaper / faster.",
        "",
        report.markdown_table(ratio_header, ratio_rows),
        "",
        f"**Against the abstract** (8.1x less memory, 3.2x faster inference) at matched quality: the Transformer-XL "
        f"closest to Memformer's {rows[0]['valid_bits_per_byte']:.4f} bits/byte is {matched['label']} "
        f"({matched['valid_bits_per_byte']:.4f}, {m['bits_per_byte_difference']:+.4f}).",
        f"- Memory: its state is {report.format_ratio(m['state'])} Memformer's ({verdict(comparison['state_target_met'])} "
        f"against 8.1x); its inference working memory (read peak +) {report.format_ratio(m['read_peak_growth'])} "
        f"({verdict(comparison['memory_target_met'])}); the whole process peak {report.format_ratio(m['process_peak'])}.",
        f"- Speed (CPU time): Memformer reads {report.format_ratio(m['read_speed'])} and generates "
        f"{report.format_ratio(m['generate_speed'])} as fast ({verdict(comparison['speed_target_met'])} / "
        f"{verdict(comparison['generate_speed_target_met'])} against 3.2x); in wall time "
        f"{report.format_ratio(m['read_speed_wall'])} and {report.format_ratio(m['generate_speed_wall'])}.",
    ]
    return "\n".join(lines)


def plot(rows: list[dict], data: dict):
    plt = report.pyplot()

    fig, (bpb_ax, speed_ax, memory_ax) = plt.subplots(1, 3, figsize=(15, 4.2))
    txl = [row for row in rows if row["model"] == "transformer-xl"]
    memformer = rows[0]
    bpb_ax.plot([r["memory"] for r in txl], [r["valid_bits_per_byte"] for r in txl], "o-", color="tab:red",
                label="Transformer-XL")
    bpb_ax.axhline(memformer["valid_bits_per_byte"], color="tab:green", label=memformer["label"])
    for row in txl:
        if row["matched"]:
            bpb_ax.scatter([row["memory"]], [row["valid_bits_per_byte"]], s=160, facecolors="none",
                           edgecolors="black", label="matched")
    if len(txl) > 1:
        report.log2_axis(bpb_ax, [r["memory"] for r in txl])
    bpb_ax.set(xlabel="Transformer-XL mem_len", ylabel="valid bits per byte", title="quality (lower is better)")
    bpb_ax.legend(fontsize=7)
    bpb_ax.grid(alpha=0.3)

    labels = [("Memformer" if row["model"] == "memformer" else f"TXL {row['memory']}") + (" *" if row["matched"] else "")
              for row in rows]
    x = np.arange(len(rows))
    speed_ax.bar(x - 0.2, [row["read_tokens_per_second_cpu"] for row in rows], 0.4, label="read (scoring)",
                 color="tab:blue")
    speed_ax.bar(x + 0.2, [row["generate_tokens_per_second_cpu"] for row in rows], 0.4, label="generate (sampling)",
                 color="tab:orange")
    speed_ax.set_xticks(x, labels, fontsize=8)
    speed_ax.set(yscale="log", ylabel="tokens per CPU second (batch 1, 1 thread)", title="speed (* = matched)")
    speed_ax.legend(fontsize=7)
    speed_ax.grid(alpha=0.3, axis="y")

    series = {"state per stream": "state_bytes_per_row", "read peak +": "read_peak_growth_bytes",
              "generate peak +": "generate_peak_growth_bytes"}
    positive = [row[key] for row in rows for key in series.values() if row[key] > 0]
    floor = min(positive) / 4 / 2**10 if positive else 1.0
    for offset, (label, key) in zip((-0.27, 0.0, 0.27), series.items()):
        kib = [row[key] / 2**10 for row in rows]
        memory_ax.bar(x + offset, [value if value > 0 else float("nan") for value in kib], 0.27, label=label)
        for position, value in zip(x + offset, kib):
            if value <= 0:  # below what RSS resolves (no page grew): say so instead of drawing a bar
                memory_ax.text(position, floor * 1.3, "0", ha="center", fontsize=7)
    memory_ax.set_xticks(x, labels, fontsize=8)
    memory_ax.set(yscale="log", ylim=(floor, None), ylabel="KiB", title="memory beyond the weights")
    memory_ax.legend(fontsize=7)
    memory_ax.grid(alpha=0.3, axis="y", which="both")
    fig.tight_layout()
    return fig
