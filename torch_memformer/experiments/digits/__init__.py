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

The pieces: ``plan.py`` (variants and sizes), ``training.py`` (train and score one variant),
``writeup.py`` (summary, the paper's orderings, table, plot).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging

from ...data.digits import GREY_LEVELS
from ..common import report
from ..common.arguments import add_jobs_argument, add_steps_and_seeds_arguments, plan_from_flags
from ..common.machine import environment
from ..common.training import run_each
from .plan import DEFAULT, QUICK, VARIANTS, Plan
from .training import corpora, train_and_score
from .writeup import markdown, plot, summarize

NAME = "digits"
TITLE = "Image generation on 8x8 digits (paper Table 1): per-pixel perplexity of Memformer, its ablations and the baselines"

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_steps_and_seeds_arguments(parser, default=DEFAULT)
    parser.add_argument("--variants", type=_variant_list, default=None,
                        help=f"comma-separated subset of: {', '.join(VARIANTS)} (default: all)")
    add_jobs_argument(parser, default=DEFAULT, quick=QUICK)
    parser.set_defaults(threads=1)


def _variant_list(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [n for n in names if n not in VARIANTS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"expected names among {', '.join(VARIANTS)}, got {text!r}")
    return names


def plan_from_args(args: argparse.Namespace) -> Plan:
    # --seeds is already a tuple of seeds (a count N or a list, ``arguments.seed_list``).
    return plan_from_flags(args, default=DEFAULT, quick=QUICK, flags=("steps", "variants", "jobs", "seeds"))


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
