"""The synthetic memory tasks' shared experiment: train each model on a task, score recall against G.

Shape legend: B batch, N tokens, P scored positions per document, V vocabulary.

Three experiments (``recall.py``, ``copy_after_gap.py``, ``value_tracking.py``) differ only in the
task (``data/recall.py``, ``data/copy_after_gap.py``, ``data/value_tracking.py``), their default
plan and their targets. Everything else is here, written once:

- **Training.** ``training.train`` (what ``memformer train`` runs) on fresh task documents back to
  back, the state reset at each, with the training gaps drawn by ``data.recall.curriculum_gaps``
  (``--curriculum HOLD,RAMP``; ``0,0`` mixes every gap 0..max_train_gap from the first step).
  The same gap sequence is laid on every row and the documents are not shuffled, so the rows are
  cut exactly into documents. The same steps and tokens for every model, float32.
- **Models.** Memformer with the library's defaults; Transformer-XL with the largest mem_len whose
  cache holds no more bytes than Memformer's state (``common/matching.py``); Memformer without
  memory (``registry.ABLATIONS``).
- **Test.** Fresh documents per G, each read from a fresh state segment by segment with the state
  carried (``evaluate.score_segment``); accuracy is the share of scored tokens that are the
  model's most likely token at their position.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ...data.recall import curriculum_gaps
from ...data.scored_documents import ScoredDocuments
from ...evaluate import score_segment
from ...training import InMemoryData, TrainConfig
from . import report
from .arguments import add_jobs_argument, add_steps_and_seeds_arguments, int_list, non_negative_int, positive_float
from .comparison_plan import ComparisonPlan
from .machine import environment
from .matching import matched_transformer_xl, state_bytes_per_row
from .models import parameter_count
from .training import experiment_train_config, run_each, train_in_memory

logger = logging.getLogger(__name__)

MODELS = ("memformer", "transformer-xl", "no-memory")
LABELS = {"memformer": "Memformer", "transformer-xl": "Transformer-XL (same state bytes)",
          "no-memory": "Memformer without memory"}


@dataclasses.dataclass(frozen=True)
class Target:
    """Memformer's accuracy must reach ``accuracy`` at every G in ``gaps``."""

    gaps: tuple[int, ...]
    accuracy: float


@dataclasses.dataclass(frozen=True)
class Experiment:
    """What one memory-task experiment states: its name, the layout it describes, its plans."""

    name: str
    title: str
    layout: str  # one sentence: where the stored content, the cue and the scored tokens are
    scored_per_document: int
    default: "Plan"
    quick: "Plan"
    targets: tuple[Target, ...]


@dataclasses.dataclass(frozen=True)
class Plan(ComparisonPlan):
    """One memory-task run: the task, the training gaps and the test, over ``ComparisonPlan``'s
    sizes and training recipe."""

    task: Any  # RecallTask, CopyTask or TrackingTask: ``documents`` and ``training_documents``
    max_train_gap: int
    curriculum_hold: float  # share of training with G = 0 only (data.recall.curriculum_gaps)
    curriculum_ramp: float  # share over which the largest G grows to max_train_gap
    test_gaps: tuple[int, ...]
    test_documents: int
    models: tuple[str, ...]
    # MemformerConfig fields changed from the library's defaults (ablations), as (name, value) pairs.
    memformer_changes: tuple[tuple[str, Any], ...] = ()


def add_arguments(experiment: Experiment, parser: argparse.ArgumentParser) -> None:
    default, quick = experiment.default, experiment.quick
    add_steps_and_seeds_arguments(parser, default=default)
    parser.add_argument("--test-gaps", type=int_list, default=None,
                        help=f"filler segments G to test (default {','.join(map(str, default.test_gaps))})")
    parser.add_argument("--max-train-gap", type=int, default=None,
                        help=f"largest G in training (default {default.max_train_gap})")
    parser.add_argument("--curriculum", type=_curriculum, default=None, metavar="HOLD,RAMP",
                        help="shares of the training steps with G = 0 only, then with the largest G rising to "
                             f"--max-train-gap; 0,0 mixes every gap from the first step (default "
                             f"{default.curriculum_hold:g},{default.curriculum_ramp:g})")
    parser.add_argument("--lr", type=positive_float, default=None,
                        help=f"AdamW's peak learning rate for every model (default {default.lr:g})")
    parser.add_argument("--warmup-steps", type=non_negative_int, default=None,
                        help=f"steps of linear warm-up to the peak rate, 0 for none (default {default.warmup_steps})")
    parser.add_argument("--models", type=_model_list, default=None,
                        help=f"models to train, comma-separated among {','.join(MODELS)} (default all)")
    parser.add_argument("--model-config", type=_json_object, default=None,
                        help="JSON object of MemformerConfig fields to change in the Memformer models (ablations)")
    add_jobs_argument(parser, default=default, quick=quick)
    parser.set_defaults(threads=1)


def _curriculum(text: str) -> tuple[float, float]:
    try:
        hold, ramp = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"give HOLD,RAMP as two shares, e.g. 0.4,0.4; got {text!r}") from None
    if not (0.0 <= hold < 1.0 and 0.0 <= ramp <= 1.0 - hold):
        raise argparse.ArgumentTypeError(f"need 0 <= HOLD < 1 and 0 <= RAMP <= 1 - HOLD, got {text!r}")
    return hold, ramp


def _model_list(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in MODELS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"choose models among {', '.join(MODELS)}, got {text!r}")
    return names


def _json_object(text: str) -> dict:
    try:
        values = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not valid JSON ({error.msg})") from None
    if not isinstance(values, dict):
        raise argparse.ArgumentTypeError("must be a JSON object of MemformerConfig fields")
    return values


def plan_from_args(experiment: Experiment, args: argparse.Namespace) -> Plan:
    base = experiment.quick if args.quick else experiment.default
    return dataclasses.replace(
        base,
        steps=args.steps or base.steps,
        lr=args.lr or base.lr,
        warmup_steps=base.warmup_steps if args.warmup_steps is None else args.warmup_steps,
        seeds=args.seeds or base.seeds,
        test_gaps=args.test_gaps or base.test_gaps,
        jobs=args.jobs or base.jobs,
        models=args.models or base.models,
        max_train_gap=base.max_train_gap if args.max_train_gap is None else args.max_train_gap,
        curriculum_hold=base.curriculum_hold if args.curriculum is None else args.curriculum[0],
        curriculum_ramp=base.curriculum_ramp if args.curriculum is None else args.curriculum[1],
        memformer_changes=tuple(sorted((args.model_config or {}).items())) or base.memformer_changes,
    )


# ---------------------------------------------------------------------------- models


def model_config(plan: Plan, name: str) -> dict[str, Any]:
    sizes = dict(vocab_size=plan.task.vocab_size, segment_len=plan.task.segment_len)
    if name in ("memformer", "no-memory"):
        return dict(plan.memformer_fields(**sizes), **dict(plan.memformer_changes))
    return matched_transformer_xl(model_config(plan, "memformer"), plan.baseline_fields(**sizes),
                                  vocab_size=plan.task.vocab_size)


def train_config(plan: Plan, name: str, *, seed: int, threads: int) -> TrainConfig:
    return experiment_train_config(
        model="transformer-xl" if name == "transformer-xl" else "memformer",
        ablation="no-memory" if name == "no-memory" else None,
        model_config=model_config(plan, name), data="in-memory: synthetic recall", **plan.recipe(), seed=seed,
        threads=threads, log_every=max(1, plan.steps // 5), shuffle=False,
    )


# ---------------------------------------------------------------------------- scoring


@torch.no_grad()
def recall_accuracy(model: torch.nn.Module, documents: ScoredDocuments, *, batch_size: int = 64) -> dict:
    """Accuracy (and mean loss in nats) on the queried values of ``documents`` (all of one length),
    each read from a fresh state, segment by segment with the state carried."""
    corpus, positions = documents.corpus, documents.value_positions
    lengths = corpus.doc_lengths
    if len(set(lengths.tolist())) != 1:
        raise ValueError("recall_accuracy needs documents of one length (one gap, one layout)")
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
    """Train model ``name`` on task documents with G <= max_train_gap, then test every gap
    (module level: runs in a fresh process)."""
    task = plan.task
    # One row of gaps, repeated on every row; unshuffled, the trainer cuts the stream into
    # exactly these rows, so all rows meet the same gaps at the same step.
    row_gaps = curriculum_gaps(segments=plan.steps * plan.window, max_gap=plan.max_train_gap, seed=1000 + seed,
                               hold=plan.curriculum_hold, ramp=plan.curriculum_ramp)
    train_docs = task.training_documents(gaps=np.tile(row_gaps, plan.batch_size), seed=2000 + seed,
                                         name="train")
    config = train_config(plan, name, seed=seed, threads=threads)
    run = train_in_memory(config, InMemoryData(train=train_docs.corpus), curve_every=max(1, plan.steps // 100))
    by_gap = {}
    for gap in plan.test_gaps:
        # Test documents come from their own seeds: never the training stream's.
        test = task.documents(gaps=[gap] * plan.test_documents, seed=10_000 * (gap + 1) + seed,
                              name=f"test G={gap}")
        by_gap[str(gap)] = recall_accuracy(run.model, test)
    model = run.model
    return {
        "model": name, "seed": seed, "by_gap": by_gap, "train_loss": run.final_loss, "curve": run.curve,
        "train_seconds": run.seconds, "tokens_per_second": run.tokens_per_second,
        "parameters": parameter_count(model), "state_bytes_per_row": state_bytes_per_row(config.model, model.config),
        "model_config": model.config.to_dict(),
    }


# ---------------------------------------------------------------------------- the experiment


def run(experiment: Experiment, args: argparse.Namespace) -> dict:
    started = environment(command=args.command)
    plan = plan_from_args(experiment, args)
    calls = [dict(plan=plan, name=name, seed=seed, threads=args.threads) for seed in plan.seeds for name in plan.models]
    logger.info("%s: %d runs of %d steps, %d at a time", experiment.name, len(calls), plan.steps, plan.jobs)
    runs = run_each(train_and_score, calls, jobs=plan.jobs)
    task = plan.task
    data = {
        "plan": dataclasses.asdict(plan),
        "task": {**dataclasses.asdict(task), "vocab_size": task.vocab_size, "chance": task.chance},
        "tokens_per_model": plan.steps * plan.batch_size * plan.window * task.segment_len,
        "runs": runs,
        "summary": summarize(experiment, plan, runs),
    }
    return report.save(args, name=experiment.name, title=experiment.title, environment=started, data=data,
                       figure=plot(experiment, plan, data), markdown=markdown(experiment, plan, data))


def chance_band(task: Any, values: int) -> float:
    """Three binomial standard errors of an accuracy at chance over ``values`` guesses."""
    return 3 * math.sqrt(task.chance * (1 - task.chance) / values)


def summarize(experiment: Experiment, plan: Plan, runs: list[dict]) -> dict:
    task = plan.task
    models: dict[str, Any] = {}
    for name in plan.models:
        rows = [r for r in runs if r["model"] == name]
        accuracy = {str(g): float(np.mean([r["by_gap"][str(g)]["accuracy"] for r in rows])) for g in plan.test_gaps}
        config = rows[0]["model_config"]
        spread = {str(g): float(np.std([r["by_gap"][str(g)]["accuracy"] for r in rows])) for g in plan.test_gaps}
        entry: dict[str, Any] = {"accuracy": accuracy, "accuracy_std": spread,
                                 "state_bytes_per_row": rows[0]["state_bytes_per_row"],
                                 "parameters": rows[0]["parameters"],
                                 "train_seconds": [r["train_seconds"] for r in rows]}
        if name == "transformer-xl":
            entry.update(mem_len=config["mem_len"], receptive_field=config["mem_len"] * config["num_layers"])
        models[name] = entry
    values = plan.test_documents * experiment.scored_per_document * len(plan.seeds)
    band = chance_band(task, values)
    summary: dict[str, Any] = {"models": models, "chance": task.chance, "chance_band": band}
    if "memformer" in models:
        accuracy = models["memformer"]["accuracy"]
        summary["targets"] = []
        for target in experiment.targets:
            tested = [g for g in target.gaps if str(g) in accuracy]
            summary["targets"].append({
                "gaps": list(target.gaps), "accuracy": target.accuracy,
                "met": bool(tested) and all(accuracy[str(g)] >= target.accuracy for g in tested),
                "observed": {str(g): accuracy[str(g)] for g in tested},
            })
    if "transformer-xl" in models:
        accuracy = models["transformer-xl"]["accuracy"]
        summary["transformer_xl_at_chance_from_gap"] = next(
            (g for g in plan.test_gaps if all(abs(accuracy[str(h)] - task.chance) <= band
                                              for h in plan.test_gaps if h >= g)), None)
    return summary


def markdown(experiment: Experiment, plan: Plan, data: dict) -> str:
    task, summary = plan.task, data["summary"]
    models = summary["models"]
    header = ["model", "state / row", "parameters"] + [f"G={g}" for g in plan.test_gaps]
    rows = []
    for name in plan.models:
        entry = models[name]
        label = LABELS[name]
        if name == "transformer-xl":
            label += f", mem_len {entry['mem_len']}"
        spread = entry["accuracy_std"]
        rows.append([label, report.format_bytes(entry["state_bytes_per_row"]), f"{entry['parameters'] / 1e3:.0f}k"]
                    + [f"{100 * entry['accuracy'][str(g)]:.1f}%" + (f" ±{100 * spread[str(g)]:.1f}" if len(plan.seeds) > 1
                                                                     else "") for g in plan.test_gaps])
    L = task.segment_len
    curriculum = ("every gap mixed from the first step, no curriculum" if plan.curriculum_hold == plan.curriculum_ramp == 0
                  else f"curriculum: G = 0 for the first {100 * plan.curriculum_hold:.0f}% of the steps, the cap rising "
                       f"to {plan.max_train_gap} over the next {100 * plan.curriculum_ramp:.0f}%")
    changes = "; ".join(f"{k} = {v!r}" for k, v in plan.memformer_changes)
    lines = [
        f"Accuracy on the {experiment.scored_per_document} scored token(s) of {plan.test_documents} test documents "
        f"per G (mean over {len(plan.seeds)} seed(s)" + (", ± the standard deviation over seeds" if len(plan.seeds) > 1
                                                         else "") + f"); chance {100 * task.chance:.2f}% "
        f"(±{100 * summary['chance_band']:.1f} points is within 3 standard errors of it). Segments of {L} tokens; "
        f"{experiment.layout} Trained with 0 <= G <= {plan.max_train_gap} ({curriculum}), {plan.steps} steps x "
        f"{plan.batch_size} rows x {plan.window * L} tokens ({data['tokens_per_model']:,} tokens) per model"
        + (f"; Memformer config changed from the defaults: {changes}." if changes else "; Memformer with the "
           "library's defaults."),
        "",
        report.markdown_table(header, rows),
        "",
    ]
    for target in summary.get("targets", []):
        met = "met" if target["met"] else "**missed**"
        observed = ", ".join(f"{100 * v:.1f}% at G={g}" for g, v in target["observed"].items())
        gaps = ", ".join(map(str, target["gaps"]))
        lines.append(f"- Target Memformer >= {100 * target['accuracy']:.0f}% at G = {gaps}: {met} ({observed}).")
    seconds = [s for name in plan.models for s in models[name]["train_seconds"]]
    lines.append(f"- Training time per run: {min(seconds):.0f}-{max(seconds):.0f} s (one thread each, "
                 f"{plan.jobs} run(s) at a time).")
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


def plot(experiment: Experiment, plan: Plan, data: dict):
    plt = report.pyplot()

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
    for number, target in enumerate(experiment.targets):
        shown = [g for g in target.gaps if g in gaps]
        acc_ax.plot(shown, [100 * target.accuracy] * len(shown), "g_", markersize=14,
                    label="targets" if number == 0 else None)
    report.log2_axis(acc_ax, gaps)
    acc_ax.set(xlabel="filler segments G between what is stored and the cue", ylabel="accuracy on the scored tokens (%)",
               ylim=(0, 102), title=f"{experiment.name} against distance")
    acc_ax.legend(fontsize=7)
    acc_ax.grid(alpha=0.3)
    loss_ax.axhline(-math.log(task.chance), color="k", linestyle=":", label="chance")
    loss_ax.set(xlabel="training step", ylabel="training loss on the scored tokens (nats)", title="training")
    loss_ax.legend(fontsize=7)
    loss_ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
