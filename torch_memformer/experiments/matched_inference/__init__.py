"""Inference at matched quality (the abstract's "8.1x less memory and 3.2x faster on inference"):
stream 16k tokens through Memformer and through the Transformer-XL whose validation bits per byte
(same data, same training time, same parameter count) is closest to Memformer's, and compare the
state bytes, the peak process memory and the tokens per second.

The models are those of ``memformer bench language-model``, read from its checkpoint manifest
(``--checkpoints``, default ``<out>/language-model-checkpoints``); when there is none they are
trained first with that experiment's recipe (Memformer and the Transformer-XLs, about 20 minutes
on 2 cores). Each model is measured streaming the first ``--tokens`` tokens of the longest
document of the valid split, batch ``--batch`` (1), one torch thread (a shared 2-core machine
makes multi-threaded batch-1 timing several times slower and noisier):

- **read**: the stream in chunks of one segment (64 tokens), ``model(chunk, state=state)`` with
  logits for every token (what scoring a stream costs); tokens per second from the model calls;
- **generate**: ``--generate-tokens`` (512) tokens sampled at temperature 1 from the state
  after the stream (the time of reading the one-token prompt subtracted, as in ``streaming``);
- **memory**: in a fresh process per model, run with ``MALLOC_MMAP_THRESHOLD_=65536`` so glibc
  returns large freed blocks and the resident set follows the live tensors, reading the same
  stream in ``--memory-batch`` (16) rows at once: after loading the model and a warm-up the RSS is
  the baseline, the peak is reset (``/proc/self/clear_refs``), and the peak RSS above the baseline
  while reading the stream (and, separately, while generating) is the memory inference needs
  beyond the weights; the process's whole peak RSS is reported too. (At batch 1 that working
  memory is a few hundred KiB, and repeated runs differed by as much; at 16 rows they agree
  within 1%.)
- **state**: ``state.num_bytes()`` per stream, what a server keeps per user between calls.

Timing runs in one long-lived process per model (the default allocator), the models' runs
interleaved (A, B, C, A, B, C, ...) and the median of ``--repeats`` (3) taken.

    memformer bench matched-inference --update-results        # ~5 min with the LM checkpoints
    memformer bench matched-inference --quick                 # tiny models, seconds

The pieces: ``plan.py`` (what is streamed and timed), ``measurement.py`` (speed and memory, each
model in its own process), ``worker.py`` (what runs inside a model's process), ``writeup.py``
(rows, ratios against the abstract's targets, tables, plot).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging

from .. import language_model
from ..common import report
from ..common.arguments import plan_from_flags, positive_int
from ..common.machine import environment
from ..common.trained_models import checkpoint_of, read_manifest, train_and_evaluate
from .measurement import measure_memory, measure_speed, stream_tokens
from .plan import DEFAULT, QUICK, Plan
from .writeup import compare, markdown, plot, result_row, valid_bits_per_byte

NAME = "matched-inference"
TITLE = "Inference at matched quality: Memformer against the Transformer-XL of closest bits per byte (abstract: 8.1x, 3.2x)"

logger = logging.getLogger(__name__)





def add_arguments(parser: argparse.ArgumentParser) -> None:
    language_model.add_training_arguments(parser)
    parser.add_argument("--tokens", type=positive_int, default=None,
                        help=f"tokens streamed through each model (default {DEFAULT.tokens})")
    parser.add_argument("--generate-tokens", type=positive_int, default=None,
                        help=f"tokens sampled after the stream (default {DEFAULT.generate_tokens})")
    parser.add_argument("--repeats", type=positive_int, default=None,
                        help=f"timed runs per model, interleaved; the median is reported (default {DEFAULT.repeats})")
    parser.add_argument("--batch", type=positive_int, default=None,
                        help=f"streams read together when timing (default {DEFAULT.batch}); the same text in every row")
    parser.add_argument("--memory-batch", type=positive_int, default=None,
                        help=f"streams read together when measuring memory (default {DEFAULT.memory_batch})")
    parser.set_defaults(threads=1)


def plan_from_args(args: argparse.Namespace) -> Plan:
    return plan_from_flags(args, default=DEFAULT, quick=QUICK,
                           flags=("tokens", "generate_tokens", "repeats", "batch", "memory_batch"))


def run(args: argparse.Namespace) -> dict:
    started = environment(command=args.command)
    plan = plan_from_args(args)
    root = language_model.checkpoints_root(args)
    manifest, trained_here = read_manifest(root), False
    if manifest is None:
        logger.info("no language-model checkpoints in %s: training them first", root)
        lm_plan = language_model.plan_from_args(args)
        entries = [entry for entry in lm_plan.entries(vocab_size=256) if entry.key != "no-memory"]
        manifest = train_and_evaluate(entries, lm_plan.recipe, root=root, data=language_model.resolve_data(args),
                                      threads=args.threads or 1, seed=args.seed, cache_dir=language_model.cache_dir(args))
        trained_here = True
    records = {record["key"]: record for record in manifest["models"]}
    memformer = records["memformer"]
    txls = sorted((r for r in manifest["models"] if r["model"] == "transformer-xl"), key=lambda r: r["memory"])
    if not txls:
        raise ValueError(f"the manifest in {root} holds no Transformer-XL to compare with")
    matched = min(txls, key=lambda r: abs(valid_bits_per_byte(r) - valid_bits_per_byte(memformer)))
    measured = [memformer] + (txls if plan.all_txl else [matched])
    checkpoints = {r["key"]: str(checkpoint_of(root, r)) for r in measured}
    ids = stream_tokens(manifest["data"], checkpoint=checkpoints["memformer"], n=plan.tokens,
                        cache_dir=language_model.cache_dir(args))
    logger.info("matched Transformer-XL: %s (%.4f bits/byte against Memformer's %.4f)", matched["key"],
                valid_bits_per_byte(matched), valid_bits_per_byte(memformer))
    timing = measure_speed(checkpoints, ids, plan, threads=args.threads)
    memory = measure_memory(checkpoints, ids, plan, threads=args.threads)
    rows = [result_row(record, timing[record["key"]], memory[record["key"]], matched=record["key"] == matched["key"])
            for record in measured]
    data = {
        "plan": dataclasses.asdict(plan),
        "checkpoints": str(root),
        "trained_here": trained_here,
        "data": manifest["data"],
        "training": {"recipe": manifest["recipe"], "threads": manifest["threads"]},
        "matched": matched["key"],
        "rows": rows,
        "comparison": compare(rows),
    }
    return report.save(args, name=NAME, title=TITLE, environment=started, data=data, figure=plot(rows, data),
                       markdown=markdown(data))
