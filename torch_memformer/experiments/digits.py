"""Image generation on 8x8 digits (paper Table 1 at CPU scale): per-pixel perplexity on held-out
images of Memformer, its ablations, Transformer-XL and a plain Transformer, same training budget.

The paper reads 28x28 MNIST images as 784-pixel sequences. Here: scikit-learn's 1,797 8x8 digits
(``data/digits.py``), a pixel's grey level 0..16 is its token (17 tokens), raster order, one image
a document of 64 tokens. A fixed seeded permutation holds out 261 images; the other 1,536 train.

- **Streams.** The trainer's layout: 16 rows, each the training images back to back (96 per row,
  shuffled every epoch), the state reset at every image. Several images per stream, each
  predicted from its own pixels only: images are independent, so a model could only carry noise
  from one to the next, and the reset gives every model the same task (the paper's likelihood of
  one image), whatever its memory reach.
- **Segments of 8 pixels** (one row of the image): an image spans 8 segments, so a Memformer
  decoder sees the previous row through the encoder and everything before it only through the
  memory (the paper's 784-pixel images span about 14 segments). A training window is one image
  (8 segments: MRBP through the whole image; the baselines' truncated BPTT over it).
- **Models.** d_model 64, 4 heads of 16, FFN 128 (the paper's MNIST model halved: 128, 4 x 32,
  256). Memformer 2 encoder + 4 decoder layers with 64 slots (the paper's full model has 64 slots;
  its ablations are 2 + 6 layers); every ablation of ``registry.ABLATIONS`` is this model with
  one switch changed (``slots-64`` is the full model itself and is not trained twice).
  Transformer-XL has 6 layers and the mem_len whose cache holds as many bytes as Memformer's
  state (``common/matching.py``); the plain Transformer 6 layers with a 64-pixel window (it sees
  the whole image: the paper's "Transformer decoder (whole image)").
- **Budget.** Every model trains the same number of steps on the same tokens: 500 steps of
  16 rows x 64 pixels (512,000 pixels, 5.2 epochs), AdamW at 2e-3, 50 warmup steps, cosine to
  10%, float32, with the trainer of ``memformer train`` (``common/training.py``). Three seeds
  (weights and the shuffle; the split stays fixed).
- **Score.** Per-pixel perplexity exp(mean cross-entropy) on the held-out images with the memory
  carried from segment to segment (``evaluate`` with the "documents" layout), counting every
  pixel the stream contract predicts: 63 per image (not an image's first pixel, spec decision 6).

    memformer bench digits --update-results     # 10 models x 3 seeds; 28 min on 2 idle cores
    memformer bench digits --quick              # a smoke test of the files, seconds
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import statistics
from typing import Any

import torch

from ..data.digits import GREY_LEVELS, PIXELS_PER_IMAGE, digits_corpus, load_digit_images, split_digits
from ..evaluate import evaluate
from ..training import InMemoryData, TrainConfig
from .common import report
from .common.arguments import plan_from_flags, positive_int
from .common.flops import count_flops
from .common.machine import environment
from .common.matching import matched_transformer_xl, state_bytes_per_row
from .common.models import parameter_count
from .common.training import experiment_train_config, run_each, train_in_memory

NAME = "digits"
TITLE = "Image generation on 8x8 digits (paper Table 1): per-pixel perplexity of Memformer, its ablations and the baselines"

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Variant:
    """One row of the table: a registry model, or Memformer with one ablation switched."""

    label: str
    model: str
    ablation: str | None = None
    # The paper's per-pixel perplexity on MNIST for the matching row (spec section 3), for context.
    paper: str = "-"


VARIANTS: dict[str, Variant] = {
    "memformer": Variant("Memformer (full)", "memformer",
                         paper="1.555 (4+8); 1.594 (2+6, 64 slots)"),
    "transformer-xl": Variant("Transformer-XL (same state bytes)", "transformer-xl",
                              paper="1.650 / 1.618 / 1.611 (memory 56 / 224 / 784)"),
    "transformer": Variant("Transformer (whole image)", "transformer", paper="1.569"),
    "no-memory": Variant("without memory", "memformer", "no-memory", paper="1.745"),
    "slots-1": Variant("1 slot", "memformer", "slots-1", paper="1.627"),
    "slots-16": Variant("16 slots", "memformer", "slots-16", paper="1.604"),
    "slots-32": Variant("32 slots", "memformer", "slots-32", paper="1.600"),
    "temperature-1": Variant("write temperature 1", "memformer", "temperature-1", paper="1.612"),
    "no-forgetting": Variant("without forgetting", "memformer", "no-forgetting", paper="1.630"),
    "single-head-write": Variant("single-head write", "memformer", "single-head-write", paper="1.626"),
}
SLOT_SWEEP = ("slots-1", "slots-16", "slots-32", "memformer")  # 1, 16, 32, 64 slots
WORSE_THAN_FULL = ("temperature-1", "no-forgetting", "single-head-write")


@dataclasses.dataclass(frozen=True)
class Plan:
    """What one run trains and scores; ``DEFAULT`` and ``QUICK`` below, flags override some."""

    d_model: int
    num_heads: int
    d_ff: int
    encoder_layers: int
    decoder_layers: int
    num_slots: int
    baseline_layers: int
    segment_len: int
    held_out: int
    # Train on the first this-many training images (None: all); the quick run uses a few.
    train_images: int | None
    steps: int
    batch_size: int
    window: int  # segments per training window
    lr: float
    warmup_steps: int
    eval_batch_size: int
    seeds: tuple[int, ...]
    variants: tuple[str, ...]
    # Training runs at a time (each in a fresh process, on ``--threads`` threads); 1: in this process.
    jobs: int

    def __post_init__(self) -> None:
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown:
            raise ValueError(f"unknown variant(s) {', '.join(unknown)}; choose among {', '.join(VARIANTS)}")


DEFAULT = Plan(d_model=64, num_heads=4, d_ff=128, encoder_layers=2, decoder_layers=4, num_slots=64,
               baseline_layers=6, segment_len=8, held_out=261, train_images=None, steps=500, batch_size=16,
               window=8, lr=2e-3, warmup_steps=50, eval_batch_size=64, seeds=(0, 1, 2), variants=tuple(VARIANTS), jobs=2)
QUICK = Plan(d_model=16, num_heads=2, d_ff=32, encoder_layers=1, decoder_layers=1, num_slots=4, baseline_layers=2,
             segment_len=8, held_out=16, train_images=32, steps=2, batch_size=4, window=8, lr=2e-3, warmup_steps=1,
             eval_batch_size=16, seeds=(0,), variants=("memformer", "transformer-xl", "transformer", "no-memory"), jobs=1)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", type=positive_int, default=None,
                        help=f"training steps of every model (default {DEFAULT.steps})")
    parser.add_argument("--seeds", type=positive_int, default=None,
                        help=f"seeds per model, 0 .. N-1 (default {len(DEFAULT.seeds)})")
    parser.add_argument("--variants", type=_variant_list, default=None,
                        help=f"comma-separated subset of: {', '.join(VARIANTS)} (default: all)")
    parser.add_argument("--jobs", type=positive_int, default=None,
                        help="training runs at a time, each in its own process; 1 runs them in this process "
                             f"(default {DEFAULT.jobs}, with --quick {QUICK.jobs})")
    parser.set_defaults(threads=1)


def _variant_list(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [n for n in names if n not in VARIANTS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"expected names among {', '.join(VARIANTS)}, got {text!r}")
    return names


def plan_from_args(args: argparse.Namespace) -> Plan:
    plan = plan_from_flags(args, default=DEFAULT, quick=QUICK, flags=("steps", "variants", "jobs"))
    # --seeds N gives a count: seeds 0 .. N-1.
    return dataclasses.replace(plan, seeds=tuple(range(args.seeds))) if args.seeds else plan


# ---------------------------------------------------------------------------- models and data


def model_config(plan: Plan, name: str) -> dict[str, Any]:
    """The model_config fields of variant ``name`` (its ablation is applied by the trainer)."""
    shared = dict(vocab_size=GREY_LEVELS, d_model=plan.d_model, num_heads=plan.num_heads, d_ff=plan.d_ff,
                  segment_len=plan.segment_len)
    model = VARIANTS[name].model
    if model == "memformer":
        return dict(shared, num_encoder_layers=plan.encoder_layers, num_decoder_layers=plan.decoder_layers,
                    num_slots=plan.num_slots)
    if model == "transformer-xl":
        return matched_transformer_xl(model_config(plan, "memformer"), dict(shared, num_layers=plan.baseline_layers),
                                      vocab_size=GREY_LEVELS)
    # The plain Transformer's window covers a whole image (and the state resets between images).
    return dict(shared, num_layers=plan.baseline_layers, context_len=PIXELS_PER_IMAGE)


def train_config(plan: Plan, name: str, *, seed: int, threads: int) -> TrainConfig:
    variant = VARIANTS[name]
    return experiment_train_config(
        model=variant.model, ablation=variant.ablation, model_config=model_config(plan, name),
        data="in-memory: sklearn digits", steps=plan.steps, batch_size=plan.batch_size, window=plan.window,
        lr=plan.lr, warmup_steps=plan.warmup_steps, seed=seed, threads=threads, log_every=max(1, plan.steps // 4),
    )


def corpora(plan: Plan):
    """(train, held-out) TokenizedCorpus of the fixed split (seed 0)."""
    split = split_digits(load_digit_images(), held_out=plan.held_out, seed=0)
    train_images = split.train if plan.train_images is None else split.train[: plan.train_images]
    return digits_corpus(train_images, name="digits/train"), digits_corpus(split.held_out, name="digits/held-out")


def train_and_score(*, plan: Plan, name: str, seed: int, threads: int, count_cost: bool) -> dict:
    """Train variant ``name`` with ``seed`` and score the held-out images (module level: runs in a
    fresh process). ``count_cost`` also counts its FLOPs per image (the same for every seed)."""
    train_corpus, held_out = corpora(plan)
    config = train_config(plan, name, seed=seed, threads=threads)
    run = train_in_memory(config, InMemoryData(train=train_corpus), curve_every=max(1, plan.steps // 60))
    scored = evaluate(run.model, held_out, batch_size=plan.eval_batch_size, layout="documents")
    row = {
        "variant": name, "seed": seed, "perplexity": scored.perplexity, "loss": scored.loss,
        "targets": scored.num_targets, "train_loss": run.final_loss, "curve": run.curve,
        "train_seconds": run.seconds, "tokens_per_second": run.tokens_per_second,
    }
    if count_cost:
        model = run.model
        image = torch.from_numpy(held_out.document(0).astype("int64")).unsqueeze(0)
        with torch.no_grad():
            flops = count_flops(lambda: model(image))
        row.update(parameters=parameter_count(model), flops_per_image=flops,
                   state_bytes_per_row=state_bytes_per_row(config.model, model.config),
                   model_config=model.config.to_dict())
    return row


# ---------------------------------------------------------------------------- the experiment


def run(args: argparse.Namespace) -> dict:
    started = environment(command=args.command)
    plan = plan_from_args(args)
    train_corpus, held_out = corpora(plan)
    calls = [dict(plan=plan, name=name, seed=seed, threads=args.threads, count_cost=seed == plan.seeds[0])
             for seed in plan.seeds for name in plan.variants]
    logger.info("digits: %d runs (%d models x %d seeds) of %d steps, %d at a time", len(calls), len(plan.variants),
                len(plan.seeds), plan.steps, plan.jobs)
    runs = run_each(train_and_score, calls, jobs=plan.jobs)
    data = {
        "plan": dataclasses.asdict(plan),
        "data": {"train_images": train_corpus.num_documents, "held_out_images": held_out.num_documents,
                 "scored_pixels": runs[0]["targets"], "vocab_size": GREY_LEVELS,
                 "tokens_per_model": plan.steps * plan.batch_size * plan.window * plan.segment_len},
        "runs": runs,
        "summary": summarize(plan, runs),
    }
    return report.save(args, name=NAME, title=TITLE, environment=started, data=data, figure=plot(plan, data),
                       markdown=markdown(plan, data))


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
    return {"variants": per_variant, "checks": _checks(per_variant)}


def _checks(per_variant: dict[str, dict]) -> list[dict]:
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
