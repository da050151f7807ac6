"""What a streaming result says: the summary against the flatness target, the markdown tables
and the plot."""

from __future__ import annotations

from ..common import report
from ..common.models import LABELS
from .measurement import Measured
from .plan import MODELS

TARGET_SPREAD = 0.10  # Memformer's time per token: flat within 10% across positions (issue 5)


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
    plt = report.pyplot()

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
