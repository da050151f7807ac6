"""``memformer eval``: bits per byte and perplexity of a checkpoint over a whole split, with the
memory carried and with the memory reset at every segment (what the memory is worth).

    memformer eval --checkpoint runs/quickstart                    # the run's own data, valid split
    memformer eval --checkpoint runs/x --data other.jsonl --split test --json
    memformer eval --checkpoint runs/x --by-distance      # also: the memory's worth by depth into a document
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ._data_args import DATA_FLAGS, add_data_arguments
from ._terminal import TextOut, add_raw_argument

NAME = "eval"
HELP = "evaluate a checkpoint: bits per byte with the memory carried and with it reset every segment"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, required=True,
                        help="a checkpoint directory, or a run directory (its latest checkpoint)")
    add_data_arguments(parser)
    # Not given: the data the checkpoint was trained on (recorded in its trainer_state.json).
    parser.set_defaults(**{name: None for name in DATA_FLAGS})
    parser.add_argument("--split", default="valid", choices=("train", "valid", "test", "all"),
                        help="which split to score (default: valid)")
    parser.add_argument("--batch-size", type=int, default=8, help="rows read in lockstep (default 8)")
    parser.add_argument("--max-batches", type=int, default=None, help="stop after this many batches (default: all)")
    parser.add_argument("--memory", choices=("both", "carried", "reset"), default="both",
                        help="carried: memory kept across segments; reset: memory reset every segment; both (default)")
    parser.add_argument("--layout", choices=("contiguous", "documents"), default="contiguous",
                        help="contiguous (the training layout, least padding) or documents (each document in one row)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16", "auto"), default="fp32",
                        help="fp32 (default, exact) or an autocast precision (faster)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for PyTorch (default: the idle cores, by the load average; 0: one per core)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the segment step (Memformer only; compiles first, faster after)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="token cache (default: ~/.cache/torch-memformer)")
    parser.add_argument("--by-distance", action="store_true",
                        help="also split the scores by segments since the state was reset (a document's start): "
                             "where in a document the memory helps")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    add_raw_argument(parser)


def run(args: argparse.Namespace) -> int:
    from ..checkpoint import load_model
    from ..checkpoint_data import data_spec_for_checkpoint
    from ..compile_step import compile_segment_step
    from ..data import default_cache_dir, tokenized_split
    from ..errors import UserError
    from ..evaluate import evaluate
    from ..runs import resolve_checkpoint
    from ..training.precision import resolve_device, resolve_precision
    from ._threads import set_threads

    if args.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.max_batches is not None and args.max_batches < 1:
        raise UserError(f"--max-batches must be >= 1, got {args.max_batches}")
    set_threads(args.threads)
    checkpoint = resolve_checkpoint(args.checkpoint)
    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    loaded = load_model(checkpoint, device=device)
    if loaded.tokenizer is None:
        raise UserError(f"checkpoint {checkpoint} has no tokenizer files, so its token ids cannot be matched to text")
    spec = data_spec_for_checkpoint(checkpoint, vars(args))
    corpus = tokenized_split(spec, args.split, loaded.tokenizer,
                             cache_dir=args.cache_dir if args.cache_dir is not None else default_cache_dir())
    segments = -(-corpus.num_tokens // loaded.config.segment_len)
    if args.batch_size > max(1, segments):
        # Rows past the data are only padding, and a huge count failed allocating them (fuzzing).
        raise UserError(f"--batch-size {args.batch_size} is more rows than the {args.split} split fills: its "
                        f"{corpus.num_tokens:,} tokens make {segments:,} segment(s) of {loaded.config.segment_len}; "
                        f"use --batch-size {max(1, segments)} or less")
    modes = {"both": (False, True), "carried": (False,), "reset": (True,)}[args.memory]
    if loaded.model_type != "memformer" and True in modes:
        if args.memory == "reset":
            raise UserError(f"--memory reset applies to Memformer; this checkpoint is a {loaded.model_type}")
        modes = (False,)
    if args.compile:
        if loaded.model_type != "memformer":
            raise UserError(f"--compile compiles a Memformer's segment step; this checkpoint is a {loaded.model_type}")
        compile_segment_step(loaded.model)
    params = sum(p.numel() for p in loaded.model.parameters())
    out = TextOut(raw=args.raw)  # file and corpus names may hold control characters (JSON escapes its own)
    if not args.json:
        out.print(f"checkpoint: {checkpoint} ({loaded.model_type}, {params:,} parameters)")
        out.print(f"data: {corpus.name}: {corpus.num_documents:,} documents, {corpus.num_tokens:,} tokens, "
              f"{corpus.num_bytes:,} bytes; {precision.name} on {device}")
    results = {}
    for reset in modes:
        label = "reset" if reset else "carried"
        with _Progress(f"memory {label}") as progress:
            result = evaluate(loaded.model, corpus, batch_size=args.batch_size, reset_memory=reset,
                              layout=args.layout, max_batches=args.max_batches, autocast_dtype=precision.dtype,
                              progress=progress, by_distance=args.by_distance)
        results[label] = result
        if not args.json:
            name = "memory reset every segment" if reset else "memory carried"
            print(f"{name + ':':28s} {result.bits_per_byte:.4f} bits/byte | perplexity {result.perplexity:.3f} per "
                  f"token | {result.num_targets:,} tokens scored in {result.seconds:.1f} s "
                  f"({result.tokens_per_second:,.0f} tokens/s)", flush=True)
    if args.json:
        print(json.dumps({"checkpoint": str(checkpoint), "model_type": loaded.model_type, "data": corpus.name,
                          "split": args.split, "precision": precision.name,
                          **{label: r.to_dict() for label, r in results.items()}}, sort_keys=True))
    elif len(results) == 2:
        gain = results["reset"].bits_per_byte - results["carried"].bits_per_byte
        print(f"the memory is worth {gain:+.4f} bits/byte "
              f"({100 * gain / results['reset'].bits_per_byte:+.1f}% of the reset model's)")
    if args.by_distance and not args.json:
        print("\n".join(distance_table(results)))
    return 0


def distance_table(results: dict) -> list[str]:
    """The per-distance lines of ``--by-distance``: bits/byte per bucket for each mode evaluated,
    and the memory's worth where both were."""
    labels = list(results)
    header = "segments since reset | tokens scored | " + " | ".join(f"{label} bits/byte" for label in labels)
    lines = [header + (" | memory worth" if len(labels) == 2 else "")]
    for index, first in enumerate(results[labels[0]].by_distance):
        span = f"{first.first_segment}" if first.first_segment == first.last_segment else \
            f"{first.first_segment}-{first.last_segment}"
        row = [f"{span:>20s}", f"{first.num_targets:>13,}"]
        row += [f"{results[label].by_distance[index].bits_per_byte:>{len(label) + 10}.4f}" for label in labels]
        if len(labels) == 2:
            row.append(f"{results['reset'].by_distance[index].bits_per_byte - first.bits_per_byte:+12.4f}")
        lines.append(" | ".join(row))
    return lines


class _Progress:
    """A progress bar on a terminal; otherwise a log line about every 10% (evaluating a large
    split on a CPU takes minutes)."""

    def __init__(self, description: str) -> None:
        self.description = description
        self.bar = None
        self.next_report = 0.1

    def __enter__(self) -> "_Progress":
        return self

    def __call__(self, done: int, total: int) -> None:
        import logging
        import sys

        if self.bar is None and sys.stderr.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=self.description, unit="batch", leave=False)
        if self.bar is not None:
            self.bar.update(1)
        elif done / total >= self.next_report or done == total:
            logging.getLogger(__name__).info("%s: %d/%d batches", self.description, done, total)
            self.next_report = done / total + 0.1

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()

