"""Long-range recall: key-value pairs in the first segment, G segments of filler, then the keys as
queries; accuracy on the values against G for Memformer, Transformer-XL with the same state
bytes, and Memformer without memory. Trained with G <= 8, tested at G = 1 .. 32.

The task (``data/recall.py``), segments of L = 16 tokens: 4 key-value pairs (distinct keys out
of 16, values uniform over 16) then filler in segment 0; G segments of random filler (16 filler
tokens); the 4 keys in a random order (the queries) in segment G + 1; in segment G + 2 each key
again followed by its value. Accuracy is the share of those values that are the model's most
likely token at their position (over the whole vocabulary); chance is 1/16. Only the answered
values are targets (the rest of a document is random: its loss is irreducible noise), so the
trainer's loss is the recall loss.

- **Training.** A curriculum of gaps (``data.recall.curriculum_gaps``): the first 40% of the
  steps see G = 0 only (writing and reading the pairs), over the next 40% the largest gap grows
  to 8 (keeping them), each document's G uniform up to that cap; the same gap sequence on every
  row, documents not shuffled. Fresh random documents back to back, the state reset at each;
  windows of 16 segments (256 tokens), so a document of up to 11 segments (G = 8) usually lies
  inside one window and MRBP carries the gradient from the answers back to the segment that
  wrote the pairs (the baselines' truncated BPTT spans the same window). Same trainer, steps and tokens for every
  model (``common/training.py``), float32, AdamW at 2e-3.
- **Models.** d_model 64, 4 heads, FFN 128. Memformer 2 encoder + 2 decoder layers, 16 slots.
  Transformer-XL 4 layers with the largest mem_len whose cache holds no more bytes than
  Memformer's state (memory + one segment of context, ``common/matching.py``): its queries see
  mem_len positions back per layer. Memformer without memory (``registry.ABLATIONS``) sees only
  the previous segment.
- **Test.** 256 fresh documents per G in 1, 2, 4, 8, 16, 32, each read from a fresh state,
  segment by segment with the state carried (``evaluate.score_segment``).

    memformer bench recall --update-results     # 14 minutes on 2 shared cores (load ~3), 2026-12-01
    memformer bench recall --quick              # a smoke test of the files, seconds
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..data.recall import RecallDocuments, RecallTask, curriculum_gaps, recall_documents
from ..evaluate import score_segment
from ..train import InMemoryData, TrainConfig
from .common import report
from .common.arguments import int_list, positive_int
from .common.machine import environment
from .common.matching import matched_mem_len, state_bytes_per_row
from .common.models import parameter_count
from .common.training import run_each, train_in_memory

NAME = "recall"
TITLE = "Long-range recall: accuracy on key-value pairs after G segments of filler"

logger = logging.getLogger(__name__)

MODELS = ("memformer", "transformer-xl", "no-memory")
LABELS = {"memformer": "Memformer", "transformer-xl": "Transformer-XL (same state bytes)",
          "no-memory": "Memformer without memory"}
# Issue 5's targets for Memformer.
TARGET_SHORT, SHORT_GAPS = 0.95, (1, 2, 4)
TARGET_LONG, LONG_GAP = 0.90, 32


@dataclasses.dataclass(frozen=True)
class Plan:
    task: RecallTask
    d_model: int
    num_heads: int
    d_ff: int
    encoder_layers: int
    decoder_layers: int
    num_slots: int
    baseline_layers: int
    max_train_gap: int
    curriculum_hold: float  # share of training with G = 0 only (data.recall.curriculum_gaps)
    curriculum_ramp: float  # share over which the largest G grows to max_train_gap
    steps: int
    batch_size: int
    window: int  # segments per training window
    lr: float
    warmup_steps: int
    test_gaps: tuple[int, ...]
    test_documents: int
    seeds: tuple[int, ...]
    models: tuple[str, ...]
    jobs: int


DEFAULT = Plan(task=RecallTask(), d_model=64, num_heads=4, d_ff=128, encoder_layers=2, decoder_layers=2,
               num_slots=16, baseline_layers=4, max_train_gap=8, curriculum_hold=0.4, curriculum_ramp=0.4,
               steps=1000, batch_size=16, window=16, lr=2e-3, warmup_steps=50, test_gaps=(1, 2, 4, 8, 16, 32),
               test_documents=256, seeds=(0,), models=MODELS, jobs=2)
QUICK = Plan(task=RecallTask(num_pairs=2, num_keys=4, num_values=4, num_fillers=4, segment_len=8), d_model=16,
             num_heads=2, d_ff=32, encoder_layers=1, decoder_layers=1, num_slots=4, baseline_layers=2,
             max_train_gap=2, curriculum_hold=0.4, curriculum_ramp=0.4, steps=2, batch_size=4, window=4, lr=2e-3,
             warmup_steps=1, test_gaps=(1, 4), test_documents=8, seeds=(0,), models=MODELS, jobs=1)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", type=positive_int, default=None,
                        help=f"training steps of every model (default {DEFAULT.steps})")
    parser.add_argument("--seeds", type=positive_int, default=None,
                        help=f"seeds per model, 0 .. N-1 (default {len(DEFAULT.seeds)})")
    parser.add_argument("--test-gaps", type=int_list, default=None,
                        help=f"filler segments G to test (default {','.join(map(str, DEFAULT.test_gaps))})")
    parser.add_argument("--jobs", type=positive_int, default=None,
                        help="training runs at a time, each in its own process; 1 runs them in this process "
                             f"(default {DEFAULT.jobs}, with --quick {QUICK.jobs})")
    parser.set_defaults(threads=1)


def plan_from_args(args: argparse.Namespace) -> Plan:
    base = QUICK if args.quick else DEFAULT
    return dataclasses.replace(
        base,
        steps=args.steps or base.steps,
        seeds=tuple(range(args.seeds)) if args.seeds else base.seeds,
        test_gaps=args.test_gaps or base.test_gaps,
        jobs=args.jobs or base.jobs,
    )


# ---------------------------------------------------------------------------- models


def model_config(plan: Plan, name: str) -> dict[str, Any]:
    shared = dict(vocab_size=plan.task.vocab_size, d_model=plan.d_model, num_heads=plan.num_heads, d_ff=plan.d_ff,
                  segment_len=plan.task.segment_len)
    if name in ("memformer", "no-memory"):
        return dict(shared, num_encoder_layers=plan.encoder_layers, num_decoder_layers=plan.decoder_layers,
                    num_slots=plan.num_slots)
    values = dict(shared, num_layers=plan.baseline_layers)
    vocab = plan.task.vocab_size
    memformer = TrainConfig(model="memformer", model_config=model_config(plan, "memformer")).build_model_config(
        vocab_size=vocab)
    txl = TrainConfig(model="transformer-xl", model_config=values).build_model_config(vocab_size=vocab)
    return dict(values, mem_len=matched_mem_len(memformer, txl))


def train_config(plan: Plan, name: str, *, seed: int, threads: int) -> TrainConfig:
    return TrainConfig(
        model="transformer-xl" if name == "transformer-xl" else "memformer",
        ablation="no-memory" if name == "no-memory" else None,
        model_config=model_config(plan, name), data="in-memory: synthetic recall", steps=plan.steps,
        batch_size=plan.batch_size, window=plan.window, lr=plan.lr, warmup_steps=plan.warmup_steps, seed=seed,
        precision="fp32", device="cpu", threads=threads, log_every=max(1, plan.steps // 5), eval_every=0,
        checkpoint_every=0, keep_checkpoints=1, shuffle=False,
    )


# ---------------------------------------------------------------------------- scoring


@torch.no_grad()
def recall_accuracy(model: torch.nn.Module, documents: RecallDocuments, *, batch_size: int = 64) -> dict:
    """Accuracy (and mean loss in nats) on the queried values of ``documents`` (all of one length),
    each read from a fresh state, segment by segment with the state carried."""
    corpus, positions = documents.corpus, documents.value_positions
    lengths = corpus.doc_lengths
    if len(set(lengths.tolist())) != 1:
        raise ValueError("recall_accuracy needs documents of one length (one gap)")
    ids = torch.from_numpy(np.asarray(corpus.tokens, dtype=np.int64).reshape(corpus.num_documents, int(lengths[0])))
    L = documents.task.segment_len
    was_training = model.training
    model.eval()
    correct, loss_sum = 0, 0.0
    try:
        for start in range(0, len(ids), batch_size):
            rows = ids[start : start + batch_size]
            where = torch.from_numpy(positions[start : start + batch_size])
            state = model.init_state(len(rows))
            logits = []
            for s in range(0, rows.size(1), L):
                reset = torch.full((len(rows),), s == 0)
                logits_BLV, state = score_segment(model, rows[:, s : s + L], state=state, reset_B=reset)
                logits.append(logits_BLV)
            logits_BNV = torch.cat(logits, dim=1)
            picked_BPV = logits_BNV.gather(1, where.unsqueeze(-1).expand(-1, -1, logits_BNV.size(-1)))
            truth_BP = rows.gather(1, where)
            correct += int((picked_BPV.argmax(-1) == truth_BP).sum())
            loss_sum += float(F.cross_entropy(picked_BPV.flatten(0, 1), truth_BP.flatten(), reduction="sum"))
    finally:
        model.train(was_training)
    count = positions.size
    return {"accuracy": correct / count, "loss": loss_sum / count, "values": count}


def train_and_score(*, plan: Plan, name: str, seed: int, threads: int) -> dict:
    """Train model ``name`` on recall documents with G <= max_train_gap, then test every gap
    (module level: runs in a fresh process)."""
    task = plan.task
    # One curriculum row, repeated on every row; unshuffled, the trainer cuts the stream into
    # exactly these rows, so all rows meet the same gaps at the same step.
    row_gaps = curriculum_gaps(segments=plan.steps * plan.window, max_gap=plan.max_train_gap, seed=1000 + seed,
                               hold=plan.curriculum_hold, ramp=plan.curriculum_ramp)
    train_docs = recall_documents(task, gaps=np.tile(row_gaps, plan.batch_size), seed=2000 + seed,
                                  name="recall/train")
    config = train_config(plan, name, seed=seed, threads=threads)
    run = train_in_memory(config, InMemoryData(train=train_docs.corpus), curve_every=max(1, plan.steps // 100))
    by_gap = {}
    for gap in plan.test_gaps:
        # Test documents come from their own seeds: never the training stream's.
        test = recall_documents(task, gaps=[gap] * plan.test_documents, seed=10_000 * (gap + 1) + seed,
                                name=f"recall/test G={gap}")
        by_gap[str(gap)] = recall_accuracy(run.model, test)
    model = run.model
    return {
        "model": name, "seed": seed, "by_gap": by_gap, "train_loss": run.final_loss, "curve": run.curve,
        "train_seconds": run.seconds, "tokens_per_second": run.tokens_per_second,
        "parameters": parameter_count(model), "state_bytes_per_row": state_bytes_per_row(config.model, model.config),
        "model_config": model.config.to_dict(),
    }


# ---------------------------------------------------------------------------- the experiment


def run(args: argparse.Namespace) -> dict:
    started = environment(command=args.command)
    plan = plan_from_args(args)
    calls = [dict(plan=plan, name=name, seed=seed, threads=args.threads) for seed in plan.seeds for name in plan.models]
    logger.info("recall: %d runs of %d steps, %d at a time", len(calls), plan.steps, plan.jobs)
    runs = run_each(train_and_score, calls, jobs=plan.jobs)
    task = plan.task
    data = {
        "plan": dataclasses.asdict(plan),
        "task": {**dataclasses.asdict(task), "vocab_size": task.vocab_size, "chance": task.chance},
        "tokens_per_model": plan.steps * plan.batch_size * plan.window * task.segment_len,
        "runs": runs,
        "summary": summarize(plan, runs),
    }
    return report.save(args, name=NAME, title=TITLE, environment=started, data=data, figure=plot(plan, data),
                       markdown=markdown(plan, data))


def chance_band(task: RecallTask, values: int) -> float:
    """Three binomial standard errors of an accuracy at chance over ``values`` guesses."""
    return 3 * math.sqrt(task.chance * (1 - task.chance) / values)


def summarize(plan: Plan, runs: list[dict]) -> dict:
    task = plan.task
    models: dict[str, Any] = {}
    for name in plan.models:
        rows = [r for r in runs if r["model"] == name]
        accuracy = {str(g): float(np.mean([r["by_gap"][str(g)]["accuracy"] for r in rows])) for g in plan.test_gaps}
        config = rows[0]["model_config"]
        entry: dict[str, Any] = {"accuracy": accuracy, "state_bytes_per_row": rows[0]["state_bytes_per_row"],
                                 "parameters": rows[0]["parameters"]}
        if name == "transformer-xl":
            entry.update(mem_len=config["mem_len"], receptive_field=config["mem_len"] * config["num_layers"])
        models[name] = entry
    values = plan.test_documents * task.num_pairs * len(plan.seeds)
    band = chance_band(task, values)
    summary: dict[str, Any] = {"models": models, "chance": task.chance, "chance_band": band}
    if "memformer" in models:
        accuracy = models["memformer"]["accuracy"]
        short = [g for g in SHORT_GAPS if str(g) in accuracy]
        summary["memformer_short_target_met"] = bool(short) and all(accuracy[str(g)] >= TARGET_SHORT for g in short)
        if str(LONG_GAP) in accuracy:
            summary["memformer_long_target_met"] = accuracy[str(LONG_GAP)] >= TARGET_LONG
    if "transformer-xl" in models:
        accuracy = models["transformer-xl"]["accuracy"]
        summary["transformer_xl_at_chance_from_gap"] = next(
            (g for g in plan.test_gaps if all(abs(accuracy[str(h)] - task.chance) <= band
                                              for h in plan.test_gaps if h >= g)), None)
    return summary


def markdown(plan: Plan, data: dict) -> str:
    task, summary = plan.task, data["summary"]
    models = summary["models"]
    header = ["model", "state / row", "parameters"] + [f"G={g}" for g in plan.test_gaps]
    rows = []
    for name in plan.models:
        entry = models[name]
        label = LABELS[name]
        if name == "transformer-xl":
            label += f", mem_len {entry['mem_len']}"
        rows.append([label, report.format_bytes(entry["state_bytes_per_row"]), f"{entry['parameters'] / 1e3:.0f}k"]
                    + [f"{100 * entry['accuracy'][str(g)]:.1f}%" for g in plan.test_gaps])
    L = task.segment_len
    lines = [
        f"Accuracy on the {task.num_pairs} queried values of {plan.test_documents} test documents per G "
        f"(x {len(plan.seeds)} seed(s)); chance {100 * task.chance:.2f}% (1/{task.num_values}; "
        f"±{100 * summary['chance_band']:.1f} points is within 3 standard errors of it). Segments of {L} tokens: "
        f"the pairs in segment 0, the queries in segment G + 1, the answers in segment G + 2, so an answer is "
        f"(G + 2) x {L} tokens after its pair. Trained with 0 <= G <= {plan.max_train_gap} (curriculum: G = 0 for the "
        f"first {100 * plan.curriculum_hold:.0f}% of the steps, the cap rising to {plan.max_train_gap} over the next "
        f"{100 * plan.curriculum_ramp:.0f}%), {plan.steps} steps x "
        f"{plan.batch_size} rows x {plan.window * L} tokens ({data['tokens_per_model']:,} tokens) per model.",
        "",
        report.markdown_table(header, rows),
        "",
    ]
    if "memformer" in models:
        accuracy = models["memformer"]["accuracy"]
        short = ", ".join(f"{100 * accuracy[str(g)]:.1f}% at G={g}" for g in SHORT_GAPS if str(g) in accuracy)
        met = "met" if summary.get("memformer_short_target_met") else "**missed**"
        lines.append(f"- Target Memformer >= {100 * TARGET_SHORT:.0f}% at G <= 4: {met} ({short}).")
        if "memformer_long_target_met" in summary:
            met = "met" if summary["memformer_long_target_met"] else "**missed**"
            lines.append(f"- Target Memformer >= {100 * TARGET_LONG:.0f}% at G = {LONG_GAP}: {met} "
                         f"({100 * accuracy[str(LONG_GAP)]:.1f}%).")
    if "transformer-xl" in models:
        entry = models["transformer-xl"]
        start = summary["transformer_xl_at_chance_from_gap"]
        reach = (f"a query sees {entry['mem_len']} positions back per layer, {entry['receptive_field']} through its "
                 f"{entry['receptive_field'] // entry['mem_len']} layers")
        if start is None:
            lines.append(f"- Transformer-XL ({reach}) is not at chance at any tested G (from the largest on).")
        else:
            lines.append(f"- Transformer-XL ({reach}) is at chance (within 3 standard errors) from G = {start} on.")
    return "\n".join(lines)


def plot(plan: Plan, data: dict):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary, task = data["summary"], plan.task
    colors = {"memformer": "tab:green", "transformer-xl": "tab:red", "no-memory": "tab:gray"}
    fig, (acc_ax, loss_ax) = plt.subplots(1, 2, figsize=(12, 4))
    gaps = list(plan.test_gaps)
    for name in plan.models:
        accuracy = summary["models"][name]["accuracy"]
        acc_ax.plot(gaps, [100 * accuracy[str(g)] for g in gaps], "o-", color=colors[name], label=LABELS[name])
        for r in (r for r in data["runs"] if r["model"] == name):
            steps = [step for step, _ in r["curve"]]
            loss_ax.plot(steps, [loss for _, loss in r["curve"]], color=colors[name], alpha=0.8, linewidth=1,
                         label=LABELS[name] if r["seed"] == plan.seeds[0] else None)
    acc_ax.axhline(100 * task.chance, color="k", linestyle=":", label=f"chance ({100 * task.chance:.1f}%)")
    acc_ax.axvspan(min(gaps) * 0.8, plan.max_train_gap, color="tab:blue", alpha=0.08, label="trained G")
    acc_ax.plot([g for g in SHORT_GAPS if g in gaps], [100 * TARGET_SHORT] * len([g for g in SHORT_GAPS if g in gaps]),
                "g_", markersize=14, label="targets")
    if LONG_GAP in gaps:
        acc_ax.plot([LONG_GAP], [100 * TARGET_LONG], "g_", markersize=14)
    report.log2_axis(acc_ax, gaps)
    acc_ax.set(xlabel="filler segments G between the pairs and the queries", ylabel="accuracy on the values (%)",
               ylim=(0, 102), title="recall against distance")
    acc_ax.legend(fontsize=7)
    acc_ax.grid(alpha=0.3)
    loss_ax.axhline(math.log(task.num_values), color="k", linestyle=":", label="chance (log V)")
    loss_ax.set(xlabel="training step", ylabel="training loss on the values (nats)", title="training")
    loss_ax.legend(fontsize=7)
    loss_ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
