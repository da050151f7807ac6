"""``memformer train``: train a model on a corpus, resumable, on one process or under torchrun.

    memformer train --out runs/quickstart                      # stdlib corpus, quickstart preset
    memformer train --data corpus.jsonl.xz --preset cpu-20min --out runs/mine
    memformer train --out runs/mine --resume                    # continue after a crash or Ctrl-C
    torchrun --nproc_per_node=2 -m torch_memformer train --out runs/ddp ...

Settings: TrainConfig defaults < --preset < --config FILE < flags (``docs/cli.md``). Only the flags
given on the command line override; ``--print-config`` shows the merged result.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from ._data_args import add_data_arguments

NAME = "train"
HELP = "train a Memformer (or a baseline) language model; resumable, distributed under torchrun"

# Flags whose values go into TrainConfig under the same name (dashes -> underscores).
_CONFIG_FLAGS = (
    "model", "ablation", "tokenizer", "preset", "data", "data_format", "text_field", "hf_config", "valid_fraction",
    "test_fraction", "shuffle", "steps", "batch_size", "window", "method", "lr", "min_lr_ratio", "warmup_steps",
    "weight_decay", "beta1", "beta2", "grad_clip", "seed", "precision", "device", "threads", "log_every", "eval_every",
    "eval_batches", "eval_batch_size", "checkpoint_every", "keep_checkpoints", "allow_binary",
)

_DATA_FLAGS = ("data", "data_format", "text_field", "hf_config", "valid_fraction", "test_fraction", "allow_binary")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .. import registry
    from ..training import METHODS, PRECISIONS, PRESETS

    unset = argparse.SUPPRESS  # a flag not given leaves the lower layers' value
    run = parser.add_argument_group("run")
    run.add_argument("--out", type=Path, default=None,
                     help="run directory for checkpoints and metrics (default: runs/<preset>-<date>-<time>)")
    run.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    run.add_argument("--config", type=Path, default=None, metavar="FILE", help="JSON file of training settings")
    run.add_argument("--preset", choices=list(PRESETS), default=unset,
                     help="starting settings: " + "; ".join(f"{k}: {v['description']}" for k, v in PRESETS.items())
                          + " (default: quickstart)")
    run.add_argument("--print-config", action="store_true", help="print the merged settings as JSON and exit")
    run.add_argument("--cache-dir", type=Path, default=None,
                     help="token cache directory (default: ~/.cache/torch-memformer)")

    model = parser.add_argument_group("model")
    model.add_argument("--model", choices=registry.model_names(), default=unset,
                       help="architecture (default: memformer)")
    model.add_argument("--ablation", choices=list(registry.ABLATIONS), default=unset,
                       help="one of the paper's Memformer ablations")
    model.add_argument("--model-config", default=unset, metavar="JSON_OR_FILE",
                       help="model config fields, e.g. '{\"d_model\": 256, \"num_slots\": 32}'")
    model.add_argument("--segment-len", type=int, default=unset, help="tokens per segment (model config segment_len)")
    model.add_argument("--tokenizer", default=unset, metavar="byte|DIR",
                       help="'byte' (default) or a directory from 'memformer tokenizer train'")

    add_data_arguments(parser)
    # None marks "not given" for the shared data flags (their own defaults are the preset's business).
    parser.set_defaults(**{name: None for name in _DATA_FLAGS})
    parser.add_argument("--shuffle", action=argparse.BooleanOptionalAction, default=unset,
                        help="shuffle the document order every epoch (default: on)")

    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--steps", type=int, default=unset, help="optimizer steps in the whole run")
    optim.add_argument("--batch-size", type=int, default=unset, help="stream rows per step, per process")
    optim.add_argument("--window", type=int, default=unset, metavar="K",
                       help="segments per training window (MRBP/BPTT horizon); the memory is carried between windows")
    optim.add_argument("--method", choices=METHODS, default=unset,
                       help="gradient engine (default: mrbp for Memformer, bptt for the baselines)")
    optim.add_argument("--lr", type=float, default=unset, help="peak learning rate")
    optim.add_argument("--min-lr-ratio", type=float, default=unset, help="final learning rate / peak (cosine)")
    optim.add_argument("--warmup-steps", "--warmup", type=int, default=unset, dest="warmup_steps",
                       help="linear warmup steps")
    optim.add_argument("--weight-decay", type=float, default=unset, help="AdamW weight decay (weight matrices only)")
    optim.add_argument("--beta1", type=float, default=unset)
    optim.add_argument("--beta2", type=float, default=unset)
    optim.add_argument("--grad-clip", type=float, default=unset, help="max gradient norm (0: no clipping)")
    optim.add_argument("--seed", type=int, default=unset)
    optim.add_argument("--precision", choices=PRECISIONS, default=unset,
                       help="auto (bf16 autocast where the hardware has it, else fp32), fp32, bf16, fp16 (CUDA)")
    optim.add_argument("--device", default=unset, help="auto, cpu, cuda or cuda:N (default: auto)")
    optim.add_argument("--threads", type=int, default=unset,
                       help="CPU threads for PyTorch (default: the idle cores, by the load average; 0: PyTorch's "
                            "default, one per core)")

    report = parser.add_argument_group("reporting")
    report.add_argument("--log-every", type=int, default=unset, help="steps between progress lines")
    report.add_argument("--eval-every", type=int, default=unset, help="steps between validations (0: never)")
    report.add_argument("--eval-batches", type=int, default=unset,
                        help="valid batches per validation (0: the whole split)")
    report.add_argument("--eval-batch-size", type=int, default=unset)
    report.add_argument("--checkpoint-every", type=int, default=unset,
                        help="steps between checkpoints (and at the end)")
    report.add_argument("--keep-checkpoints", type=int, default=unset, help="checkpoints kept (older ones deleted)")

    # Test hooks: sleep inside each checkpoint write / after each step so a test can kill there.
    parser.add_argument("--debug-slow-save", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--debug-slow-step", type=float, default=0.0, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    from ..data import default_cache_dir
    from ..training import DebugOptions, parse_model_config, plan_run, read_config_file, train
    from ..training.distributed import from_environment
    from ..training.precision import idle_cpu_choice

    dist_info = from_environment()
    flag_values = {name: getattr(args, name) for name in _CONFIG_FLAGS
                   if hasattr(args, name) and not (name in _DATA_FLAGS and getattr(args, name) is None)}
    model_config = parse_model_config(args.model_config) if hasattr(args, "model_config") else {}
    if hasattr(args, "segment_len"):
        model_config["segment_len"] = args.segment_len
    if model_config:
        flag_values["model_config"] = model_config
    file_values = read_config_file(args.config) if args.config is not None else {}
    if args.out is None:
        if args.resume:
            raise ValueError("--resume needs --out: the run directory to continue")
        if dist_info.enabled:
            raise ValueError("under torchrun pass --out, so that every process writes to the same run")
        preset = flag_values.get("preset") or file_values.get("preset") or "quickstart"
        args.out = Path("runs") / f"{preset}-{time.strftime('%Y%m%d-%H%M%S')}"
    config, resume = plan_run(out_dir=args.out, file_values=file_values, flag_values=flag_values, resume=args.resume)
    if ("threads" not in flag_values and "threads" not in file_values and not dist_info.enabled
            and "OMP_NUM_THREADS" not in os.environ):
        # Unset: as many threads as there are idle cores (torchrun and OMP_NUM_THREADS decide otherwise).
        choice = idle_cpu_choice()
        if choice.threads < choice.cores:  # the surprising case says why
            logging.getLogger(__name__).info("%s", choice.reason())
        config = config.replace(threads=choice.threads)
    if args.print_config:
        print(config.to_json(), end="")
        return 0
    if resume is not None and resume.state.step == config.steps:
        if dist_info.is_main:
            print(f"{args.out} already finished its {config.steps} steps ({resume.checkpoint}); nothing to do. "
                  f"Pass a larger --steps to train further, or: memformer eval --checkpoint {args.out}")
        return 0
    cache_dir = args.cache_dir if args.cache_dir is not None else default_cache_dir()
    debug = DebugOptions(slow_save_seconds=args.debug_slow_save, slow_step_seconds=args.debug_slow_step)
    try:
        result = train(config, out_dir=args.out, resume=resume, dist_info=dist_info, cache_dir=cache_dir,
                       debug=debug)
    except KeyboardInterrupt:  # a second Ctrl-C: stopped at once, without saving (training/interrupt.py)
        if dist_info.is_main:
            print(f"memformer: interrupted without saving; continue from the last checkpoint (or step 0 if there "
                  f"is none) with: memformer train --out {args.out} --resume", file=sys.stderr, flush=True)
        return 130
    if not dist_info.is_main:
        return 130 if result.interrupted else 0
    if result.interrupted:
        print(f"memformer: interrupted at step {result.step}; saved {result.checkpoint}; continue with: "
              f"memformer train --out {args.out} --resume", file=sys.stderr, flush=True)
        return 130
    print(f"trained to step {result.step} in {_duration(result.seconds)} ({result.tokens_per_second:,.0f} tokens/s); "
          f"last training loss {result.loss:.4f} nats/token")
    if result.valid is not None:
        print(f"valid: {result.valid.bits_per_byte:.4f} bits/byte, perplexity {result.valid.perplexity:.3f} "
              f"({result.valid.num_targets:,} tokens)")
    print(f"checkpoint: {result.checkpoint}")
    print(f"next: memformer eval --checkpoint {args.out}  |  memformer generate --checkpoint {args.out} --prompt TEXT")
    return 0


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"
