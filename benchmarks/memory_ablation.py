"""Issue 10's ablation tables: each memory decision on and off, three seeds, from the runs' own JSON.

The runs are `memformer bench <task>` commands (Memformer only, 600 steps, curriculum up to G = 4,
3 seeds), one per setting; each wrote `<dir>/<setting>/<task>.json`. This script reads them back
and writes one markdown table (mean ± standard deviation over seeds, and the training time of
each run) plus a plot of accuracy against G, so the numbers in docs/results.md are the files'.

    for each setting: memformer bench recall --models memformer --steps 600 --max-train-gap 4 \\
        --curriculum 0.4,0.4 --seeds 3 --test-gaps 1,4,8,16,32 --jobs 2 --out runs/ablation/<setting> \\
        [--model-config JSON]
    python benchmarks/memory_ablation.py --runs runs/ablation --out benchmarks/results/memory_ablation

    the same with value-tracking (its plan's 600 steps and curriculum are the defaults):
    memformer bench value-tracking --models memformer --seeds 3 --test-gaps 1,4,8,16,32 --jobs 1 \\
        --threads 1 --out runs/ablation-tracking/<setting> [--model-config JSON] [--warmup-steps N]
    python benchmarks/memory_ablation.py --task value-tracking --runs runs/ablation-tracking \\
        --out benchmarks/results/memory_ablation_tracking
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from common import pyplot

# (directory, what it changes from today's defaults), in the table's order, per task.
RECALL_SETTINGS = [
    ("polar-002-dir01", "today's defaults: forgetting bias as direction (started at length 0.1) + log-norm "
                        "from 0.02 (decision 15), rotary decoder context, no keep bias, no null slot"),
    ("warm200", "today's defaults with 200 warm-up steps (`--warmup-steps 200`; the protocol's 50): decision 19, "
                "now the memory tasks' plan"),
    ("lr1e-3", "today's defaults trained at half the learning rate (`--lr 1e-3`; the protocol's is 2e-3)"),
    ("null-slot", "the row above + a learned null slot for the memory read (decision 17; off)"),
    ("null-bias4", "the null slot with a learned per-head offset on its logit, started at -4 (decision 18)"),
    ("polar-002", "direction started at length 1: forgetting bias as direction + log-norm from norm 0.02 (decision 15), "
                  "rotary decoder context, no keep bias"),
    ("polar-01", "the same from norm 0.1"),
    ("defaults", "forgetting bias as one vector from norm 0.1 (issue 10's first fix)"),
    ("value-unit", "as the row above, token values at unit norm (tried, removed)"),
    ("norm1", "one vector from norm 1 (the first version)"),
    ("context-none", "one vector from 0.1, position-free decoder context"),
    ("keep09", "one vector from 0.1, keep bias 0.9 on the writer's self logit"),
    ("no-forgetting", "without forgetting (the paper's ablation)"),
    ("null-fixed", "a fixed null instead of the learned one: zero key and value after the projections "
                   "(softmax plus one; tried, not adopted)"),
    ("token-shift", "each encoder input also gets a learned projection of the previous token's (pilot code, "
                    "not on main: tried for the binding, not adopted)"),
    ("first-version", "the first version's defaults (norm 1, context none)"),
]

# Value tracking, measured with decision 21's defaults (2026-12-08): each row turns one decision off.
TRACKING_SETTINGS = [
    ("defaults", "today's defaults (decisions 1, 5, 15, 19, 20, 21)"),
    ("scope-all", "all three writer projections start at 0.02 (decision 21 off: decision 20 as first adopted)"),
    ("writer-large", "the writer starts at d_model^-0.5 like the rest (decisions 20 and 21 off for the writer)"),
    ("init-002", "every weight starts at GPT-2's 0.02 (decision 20 off)"),
    ("warm50", "50 warm-up steps instead of 200 (decision 19 off)"),
    ("vector", "forgetting bias learned as one vector, not direction + log-norm (decision 15 off)"),
    ("norm1", "forgetting bias started at norm 1 (decision 5 off: the first version's start)"),
    ("context-none", "position-free decoder context (decision 1 off)"),
    ("no-forgetting", "without forgetting (the paper's ablation)"),
    ("temperature-1", "write temperature 1 (the paper's ablation; ours 0.5)"),
    ("null-slot", "a learned null slot for the memory read (decision 17, off by default)"),
]

SETTINGS = {"recall": RECALL_SETTINGS, "value-tracking": TRACKING_SETTINGS}
TITLES = {"recall": "Recall", "value-tracking": "Value tracking"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=sorted(SETTINGS), default="recall", help="which task's runs (default recall)")
    parser.add_argument("--runs", type=Path, required=True, help="the folder holding one run folder per setting")
    parser.add_argument("--out", type=Path, required=True, help="where to write <out>.md, <out>.png and the JSONs")
    args = parser.parse_args()
    rows, curves, chance = [], {}, None
    args.out.mkdir(parents=True, exist_ok=True)
    for name, label in SETTINGS[args.task]:
        path = args.runs / name / f"{args.task}.json"
        if not path.is_file():
            continue
        shutil.copyfile(path, args.out / f"{name}.json")
        result = json.loads(path.read_text())
        chance = result["task"].get("chance", 1 / 16)
        memformer = result["summary"]["models"]["memformer"]
        gaps = [str(g) for g in result["plan"]["test_gaps"]]
        cells = [f"{100 * memformer['accuracy'][g]:.1f} ± {100 * memformer['accuracy_std'][g]:.1f}" for g in gaps]
        seconds = ", ".join(f"{s:.0f}" for s in memformer["train_seconds"])
        load = result["environment"].get("load_average")
        rows.append(f"| {label} | " + " | ".join(cells) + f" | {seconds} | {load} |")
        curves[label] = ([int(g) for g in gaps], [100 * memformer["accuracy"][g] for g in gaps],
                         [100 * memformer["accuracy_std"][g] for g in gaps])
    header = "| setting | " + " | ".join(f"G={g}" for g in gaps) + " | training s per seed | load at start |"
    rule = "|" + "---|" * (len(gaps) + 3)
    table = "\n".join([header, rule, *rows]) + "\n"
    (args.out.with_suffix(".md")).write_text(table)
    print(table)

    plt = pyplot()

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, (x, mean, std) in curves.items():
        ax.errorbar(x, mean, yerr=std, marker="o", capsize=3, label=label)
    ax.axhline(100 * (chance or 1 / 16), color="k", linestyle=":", label="chance")
    ax.axvspan(0.8, 4, color="tab:blue", alpha=0.08, label="trained G")
    ax.set_xscale("log", base=2)
    ax.set(xlabel="filler segments G", ylabel="accuracy (%), mean ± std over 3 seeds", ylim=(0, 100),
           title=f"{TITLES[args.task]}: each memory decision on and off")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.out.with_suffix(".png"), dpi=110)


if __name__ == "__main__":
    main()
