"""What a digits result says: per variant the held-out perplexity over seeds and its cost, the
paper's orderings checked, the markdown table and the plot."""

from __future__ import annotations

import statistics

from ...data.digits import PIXELS_PER_IMAGE
from ..common import report
from .plan import SLOT_SWEEP, VARIANTS, WORSE_THAN_FULL, Plan


def summarize(plan: Plan, runs: list[dict]) -> dict:
    """Per variant: mean and spread of the held-out perplexity over seeds, its cost; the paper's
    orderings checked on the means (and whether each gap exceeds the seeds' spread)."""
    per_variant: dict[str, dict] = {}
    for name in plan.variants:
        rows = [r for r in runs if r["variant"] == name]
        values = [r["perplexity"] for r in rows]
        cost = next(r for r in rows if "flops_per_image" in r)
        per_variant[name] = {
            "perplexity_mean": statistics.fmean(values),
            "perplexity_std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "perplexity_seeds": values,
            "train_loss_mean": statistics.fmean(r["train_loss"] for r in rows),
            "train_seconds_mean": statistics.fmean(r["train_seconds"] for r in rows),
            **{key: cost[key] for key in ("parameters", "flops_per_image", "state_bytes_per_row")},
            "num_slots": cost["model_config"].get("num_slots") if VARIANTS[name].model == "memformer" else None,
            "mem_len": cost["model_config"].get("mem_len"),
        }
    return {"variants": per_variant, "checks": paper_checks(per_variant)}


def paper_checks(per_variant: dict[str, dict]) -> list[dict]:
    """The paper's orderings (spec section 3), each checked only when its models were run.

    Each check compares pairs (worse, better) as the paper orders them: ``holds`` when every
    pair is in the paper's order; ``beyond_noise`` when, in addition, every gap exceeds the two
    models' seed standard deviations added; ``reversed_beyond_noise`` when some pair is in the
    opposite order by more than that (a clear contradiction, not noise).
    """

    def mean(name: str) -> float:
        return per_variant[name]["perplexity_mean"]

    def spread(a: str, b: str) -> float:
        return per_variant[a]["perplexity_std"] + per_variant[b]["perplexity_std"]

    def check(claim: str, pairs: list[tuple[str, str]], **extra) -> dict:
        gaps = [(mean(worse) - mean(better), spread(worse, better)) for worse, better in pairs]
        return {"claim": claim, "holds": all(gap > 0 for gap, _ in gaps),
                "beyond_noise": all(gap > noise for gap, noise in gaps),
                "reversed_beyond_noise": any(-gap > noise for gap, noise in gaps), **extra}

    checks = []
    if "no-memory" in per_variant and len(per_variant) > 1:
        checks.append(check("without memory is the worst model",
                            [("no-memory", n) for n in per_variant if n != "no-memory"]))
    sweep = [n for n in SLOT_SWEEP if n in per_variant]
    if len(sweep) > 1:
        checks.append(check("more slots is better (1 > 16 > 32 > 64 slots in perplexity)",
                            list(zip(sweep, sweep[1:])), means={n: mean(n) for n in sweep}))
    if "memformer" in per_variant:
        for name in WORSE_THAN_FULL:
            if name in per_variant:
                checks.append(check(f"{VARIANTS[name].label} is worse than the full model", [(name, "memformer")]))
        for name in ("transformer-xl", "transformer"):
            if name in per_variant:
                checks.append(check(f"Memformer beats {VARIANTS[name].label}", [(name, "memformer")]))
    return checks


def markdown(plan: Plan, data: dict) -> str:
    summary = data["summary"]["variants"]
    header = ["model", "layers", "memory", "state / row", "parameters", "FLOPs / image",
              "held-out perplexity (mean ± std)", "seeds", "train loss", "paper (MNIST)"]
    rows = []
    for name in plan.variants:
        entry, variant = summary[name], VARIANTS[name]
        if variant.model == "memformer":
            layers = f"{plan.encoder_layers}+{plan.decoder_layers}"
            memory = "none" if name == "no-memory" else f"{entry['num_slots']} slots"
        else:
            layers = str(plan.baseline_layers)
            memory = f"mem_len {entry['mem_len']}" if entry["mem_len"] else f"window {PIXELS_PER_IMAGE}"
        rows.append([
            variant.label, layers, memory, report.format_bytes(entry["state_bytes_per_row"]),
            f"{entry['parameters'] / 1e3:.0f}k", f"{entry['flops_per_image'] / 1e6:.2f} M",
            f"**{entry['perplexity_mean']:.4f}** ± {entry['perplexity_std']:.4f}",
            " / ".join(f"{v:.4f}" for v in entry["perplexity_seeds"]),
            f"{entry['train_loss_mean']:.3f}", variant.paper,
        ])
    info = data["data"]
    lines = [
        f"{info['train_images']:,} training images, {info['held_out_images']:,} held out (fixed split, seed 0); "
        f"per-pixel perplexity over the {info['scored_pixels']:,} held-out pixels each model predicts "
        f"({PIXELS_PER_IMAGE - 1} per image), memory carried within each image. Every model trained "
        f"{plan.steps} steps x {plan.batch_size} rows x {plan.window * plan.segment_len} pixels "
        f"({info['tokens_per_model']:,} pixels), seeds {', '.join(map(str, plan.seeds))}. FLOPs: one batch-1 "
        "forward over an image (matrix products). Paper: 28x28 MNIST, larger models (spec section 3).",
        "",
        report.markdown_table(header, rows),
        "",
        "The paper's orderings on these means (\"beyond noise\": every gap exceeds the two models' seed "
        "standard deviations added; \"the opposite, beyond noise\": some pair is reversed by more than that):",
        "",
    ]
    for check in data["summary"]["checks"]:
        if check["holds"]:
            verdict, noise = "holds", "beyond noise" if check["beyond_noise"] else "within seed noise"
        else:
            verdict = "**does not hold**"
            noise = "the opposite, beyond noise" if check["reversed_beyond_noise"] else "within seed noise"
        lines.append(f"- {check['claim']}: {verdict} ({noise})")
    return "\n".join(lines)


def plot(plan: Plan, data: dict):
    plt = report.pyplot()

    summary = data["summary"]["variants"]
    names = sorted(plan.variants, key=lambda n: summary[n]["perplexity_mean"], reverse=True)
    fig, (bars, curves) = plt.subplots(1, 2, figsize=(13, 0.45 * len(names) + 2.5))
    colors = {name: ("tab:green" if name == "memformer" else "tab:red" if VARIANTS[name].model != "memformer"
                     else "tab:gray") for name in names}
    for y, name in enumerate(names):
        entry = summary[name]
        bars.barh(y, entry["perplexity_mean"], xerr=entry["perplexity_std"], color=colors[name], alpha=0.7)
        bars.plot(entry["perplexity_seeds"], [y] * len(entry["perplexity_seeds"]), "k.", markersize=4)
    bars.set_yticks(range(len(names)), [VARIANTS[n].label for n in names], fontsize=8)
    low = min(min(summary[n]["perplexity_seeds"]) for n in names)
    high = max(max(summary[n]["perplexity_seeds"]) for n in names)
    pad = 0.15 * (high - low) + 1e-3
    bars.set_xlim(low - pad, high + pad)
    bars.set(xlabel="held-out per-pixel perplexity (lower is better)", title="digits 8x8, mean ± std over seeds")
    bars.grid(alpha=0.3, axis="x")
    for name in names:
        runs = [r for r in data["runs"] if r["variant"] == name]
        steps = [step for step, _ in runs[0]["curve"]]
        losses = [statistics.fmean(r["curve"][i][1] for r in runs) for i in range(len(steps))]
        style = "-" if VARIANTS[name].model == "memformer" else "--"
        curves.plot(steps, losses, style, label=VARIANTS[name].label, linewidth=1.2)
    curves.set(xlabel="training step", ylabel="training loss (nats per pixel)", title="training loss, mean over seeds")
    if len(steps) > 1:
        tail = [statistics.fmean(r["curve"][-1][1] for r in data["runs"] if r["variant"] == n) for n in names]
        curves.set_ylim(min(tail) * 0.95, max(tail) * 1.4)
    curves.legend(fontsize=7)
    curves.grid(alpha=0.3)
    fig.tight_layout()
    return fig
