"""Language modelling (paper Table 2 at CPU scale): validation bits per byte of Memformer, the
no-memory ablation and Transformer-XL at several memory lengths, at equal parameter count and
equal training time, on debtext.

Every model is trained by ``memformer train``'s loop (``torch_memformer.training.train``: MRBP for
Memformer, truncated BPTT for Transformer-XL) on the same byte-level stream (batch 8, windows of
4 segments of 64 tokens, AdamW at 2e-3, warm-up then cosine, seed 0), and scored with
``torch_memformer.evaluate`` on the same fixed prefix of the valid split. Sizes
(``common/trained_models.py`` solves the FFN widths so the parameter counts match Memformer's):

- Memformer: d_model 128, 4 heads, FFN 512, 2 encoder + 2 decoder layers, 16 slots, segments of 64;
- the no-memory ablation (``--ablation no-memory``: no memory read, no writer), FFN widened to
  Memformer's parameter count;
- Transformer-XL: 4 layers of d_model 128, FFN widened to Memformer's parameter count, segments of
  64, mem_len 32, 64, 128 and 256.

Equal training time: a per-model budget of CPU time (``--minutes``, 3.5 by default, on
``--threads`` 1) is turned into a step count from an interleaved measurement of each model's CPU
seconds per step (see ``common/trained_models.py`` for why CPU time, and steps rather than a
wall-clock stop); ``--steps N`` trains every model for N steps instead. The checkpoints go to ``--checkpoints`` (default
``<out>/language-model-checkpoints``, ignored by git) with a manifest that ``memformer bench
matched-inference`` reads.

    memformer bench language-model --update-results      # ~25 min on 2 cores
    memformer bench language-model --quick               # tiny models, seconds

The comparison with the paper, the table and the plot are in ``writeup.py``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
from pathlib import Path

import torch

from ...checkpoint import load_model
from ...errors import UserError
from ..common import report
from ..common.arguments import int_list, positive_float, positive_int
from ..common.flops import count_flops
from ..common.machine import environment
from ..common.trained_models import (
    ModelEntry,
    Recipe,
    checkpoint_of,
    count_parameters,
    matched_d_ff,
    train_and_evaluate,
)
from .writeup import compare_with_paper, markdown, plot

NAME = "language-model"
TITLE = "Language modelling on debtext at equal parameters and training time (paper Table 2 at CPU scale)"

logger = logging.getLogger(__name__)

DEFAULT_DATA = "../shared/data/debtext"
CHECKPOINTS_DIR = "language-model-checkpoints"





@dataclasses.dataclass(frozen=True)
class Plan:
    """The models and the recipe; ``DEFAULT`` and ``QUICK`` below, flags override some fields."""

    d_model: int
    num_heads: int
    d_ff: int
    num_encoder_layers: int
    num_decoder_layers: int
    num_slots: int
    segment_len: int
    txl_layers: int
    mem_lens: tuple[int, ...]
    recipe: Recipe
    # Segments of the batch-1 forward whose FLOPs per token are counted (after a full memory).
    flops_segments: int = 4

    def entries(self, *, vocab_size: int) -> list[ModelEntry]:
        """Memformer, the no-memory ablation and one Transformer-XL per mem_len, the latter two
        with the FFN width that matches Memformer's parameter count."""
        shared = dict(d_model=self.d_model, num_heads=self.num_heads, segment_len=self.segment_len)
        memformer = dict(shared, d_ff=self.d_ff, num_encoder_layers=self.num_encoder_layers,
                         num_decoder_layers=self.num_decoder_layers, num_slots=self.num_slots)
        target = count_parameters("memformer", memformer, vocab_size=vocab_size)
        no_memory_ff = matched_d_ff("memformer", memformer, target=target, vocab_size=vocab_size, ablation="no-memory")
        txl = dict(shared, num_layers=self.txl_layers, mem_len=self.mem_lens[0])
        txl_ff = matched_d_ff("transformer-xl", txl, target=target, vocab_size=vocab_size)
        entries = [
            ModelEntry("memformer", f"Memformer {self.num_encoder_layers}+{self.num_decoder_layers}, "
                                    f"{self.num_slots} slots", "memformer", memformer, memory=self.num_slots),
            ModelEntry("no-memory", "Memformer without memory", "memformer", dict(memformer, d_ff=no_memory_ff),
                       ablation="no-memory"),
        ]
        for mem_len in self.mem_lens:
            entries.append(ModelEntry(f"txl-{mem_len}", f"Transformer-XL, mem_len {mem_len}", "transformer-xl",
                                      dict(txl, d_ff=txl_ff, mem_len=mem_len), memory=mem_len))
        return entries


DEFAULT = Plan(d_model=128, num_heads=4, d_ff=512, num_encoder_layers=2, num_decoder_layers=2, num_slots=16,
               segment_len=64, txl_layers=4, mem_lens=(32, 64, 128, 256),
               recipe=Recipe(seconds_per_model=210.0, eval_batches=24))
QUICK = Plan(d_model=32, num_heads=2, d_ff=64, num_encoder_layers=1, num_decoder_layers=1, num_slots=4,
             segment_len=16, txl_layers=2, mem_lens=(8, 16),
             recipe=Recipe(seconds_per_model=0.4, batch_size=2, window=2, calibration_rounds=1, eval_batches=2,
                           eval_batch_size=2),
             flops_segments=2)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_training_arguments(parser)
    parser.add_argument("--mem-lens", type=int_list, default=None,
                        help=f"Transformer-XL memory lengths (default {','.join(map(str, DEFAULT.mem_lens))})")
    # One thread: then a step's CPU time is its work, whatever else runs on the machine.
    parser.set_defaults(threads=1)


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of training the models, shared with ``matched-inference`` (which may train them)."""
    parser.add_argument("--data", default=None,
                        help=f"the corpus (default {DEFAULT_DATA}, relative to the repository root)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="token cache (default: ~/.cache/torch-memformer)")
    parser.add_argument("--checkpoints", type=Path, default=None,
                        help=f"where the trained models go (default <out>/{CHECKPOINTS_DIR})")
    parser.add_argument("--minutes", type=positive_float, default=None,
                        help=f"training CPU time per model (default {DEFAULT.recipe.seconds_per_model / 60:g})")
    parser.add_argument("--steps", type=positive_int, default=None,
                        help="train every model for this many steps instead of an equal time")
    parser.add_argument("--eval-batches", type=positive_int, default=None,
                        help=f"valid batches of 8 x 512 tokens scored (default {DEFAULT.recipe.eval_batches})")


def plan_from_args(args: argparse.Namespace) -> Plan:
    base = QUICK if args.quick else DEFAULT
    recipe = base.recipe
    if args.minutes is not None:
        recipe = dataclasses.replace(recipe, seconds_per_model=60.0 * args.minutes)
    recipe = dataclasses.replace(recipe, steps=args.steps, eval_batches=args.eval_batches or recipe.eval_batches)
    return dataclasses.replace(base, mem_lens=getattr(args, "mem_lens", None) or base.mem_lens, recipe=recipe)


def resolve_data(args: argparse.Namespace) -> str:
    data = args.data or DEFAULT_DATA
    if not Path(data).exists() and data != "stdlib":
        raise UserError(f"the corpus {data} does not exist; pass --data DIR (a directory with train and valid "
                        "splits, e.g. /work/shared/data/debtext)")
    return data


def checkpoints_root(args: argparse.Namespace) -> Path:
    return args.checkpoints if args.checkpoints is not None else Path(args.out) / CHECKPOINTS_DIR


def run(args: argparse.Namespace) -> dict:
    started = environment(command=args.command)
    plan = plan_from_args(args)
    data = resolve_data(args)
    threads = args.threads
    root = checkpoints_root(args)
    entries = plan.entries(vocab_size=256)
    manifest = train_and_evaluate(entries, plan.recipe, root=root, data=data, threads=threads, seed=args.seed,
                                  cache_dir=cache_dir(args))
    for record in manifest["models"]:
        record["inference_flops_per_token"] = inference_flops_per_token(checkpoint_of(root, record),
                                                                         segments=plan.flops_segments)
    rows = [_row(record) for record in manifest["models"]]
    data_out = {
        "plan": {key: value for key, value in dataclasses.asdict(plan).items() if key != "recipe"},
        "recipe": dataclasses.asdict(plan.recipe),
        "data": data,
        "threads": threads,
        "checkpoints": str(root),
        "models": rows,
        "comparison": compare_with_paper(rows),
    }
    return report.save(args, name=NAME, title=TITLE, environment=started, data=data_out, figure=plot(rows),
                       markdown=markdown(data_out))


def cache_dir(args: argparse.Namespace) -> Path:
    """The token cache: ``--cache-dir``, else the default one (shared by the experiments that
    read the language-model checkpoints' corpus)."""
    from ...data import default_cache_dir

    return args.cache_dir if args.cache_dir is not None else default_cache_dir()


def inference_flops_per_token(checkpoint: Path, *, segments: int) -> float:
    """FLOPs per token of a batch-1 forward over ``segments`` segments after the memory is full
    (a Transformer-XL's cache holds mem_len positions, Memformer's state a written memory)."""
    model = load_model(checkpoint).model.eval()
    config = model.config
    length = config.segment_len
    fill = math.ceil(getattr(config, "mem_len", length) / length) * length
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, config.vocab_size, (1, fill + segments * length), generator=generator)
    with torch.no_grad():
        state = model.advance(ids[:, :fill], state=model.init_state(1))
        flops = count_flops(lambda: model(ids[:, fill:], state=state))
    return flops / (segments * length)


def _row(record: dict) -> dict:
    """What the table, plot and comparison need of one trained model."""
    row = {key: record[key] for key in ("key", "label", "model", "ablation", "memory", "parameters", "steps",
                                         "step_seconds", "calibration_step_seconds", "budget_seconds",
                                         "train_seconds", "train_wall_seconds", "train_cpu_seconds",
                                         "tokens", "tokens_per_second", "final_train_loss", "train_curve",
                                         "checkpoint", "command", "inference_flops_per_token")}
    row["model_config"] = record["model_config"]
    row["valid_bits_per_byte"] = record["valid"]["bits_per_byte"]
    row["valid_tokens"] = record["valid"]["num_targets"]
    reset = record.get("valid_reset")
    row["valid_reset_bits_per_byte"] = None if reset is None else reset["bits_per_byte"]
    return row
