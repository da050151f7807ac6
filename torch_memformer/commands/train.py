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

from ._config_flags import add_config_flags, config_flag_fields
from ._data_args import DATA_FLAGS, add_data_arguments

NAME = "train"
HELP = "train a Memformer (or a baseline) language model; resumable, distributed under torchrun"

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``TrainConfig``'s fields, derived from the fields (``_config_flags.py``), and
    the flags that are the command's own (where the run lives, how to read the config)."""
    from ..training import TrainConfig

    run = parser.add_argument_group("run")
    run.add_argument("--out", type=Path, default=None,
                     help="run directory for checkpoints and metrics (default: runs/<preset>-<date>-<time>)")
    run.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    run.add_argument("--config", type=Path, default=None, metavar="FILE", help="JSON file of training settings")
    add_config_flags(run, TrainConfig, group="run")
    run.add_argument("--print-config", action="store_true", help="print the merged settings as JSON and exit")
    run.add_argument("--cache-dir", type=Path, default=None,
                     help="token cache directory (default: ~/.cache/torch-memformer)")

    model = parser.add_argument_group("model")
    add_config_flags(model, TrainConfig, group="model")
    # model_config's flags: a JSON object (or file) of model fields, and its most used field.
    model.add_argument("--model-config", default=argparse.SUPPRESS, metavar="JSON_OR_FILE",
                       help="model config fields, e.g. '{\"d_model\": 256, \"num_slots\": 32}'")
    model.add_argument("--segment-len", type=int, default=argparse.SUPPRESS,
                       help="tokens per segment (model config segment_len)")

    # The data fields' flags are the ones every command that reads a corpus shares.
    add_data_arguments(parser)
    # None marks "not given" for the shared data flags (their own defaults are the preset's business).
    parser.set_defaults(**{name: None for name in DATA_FLAGS})
    add_config_flags(parser, TrainConfig, group=None)
    add_config_flags(parser.add_argument_group("optimisation"), TrainConfig, group="optimisation")
    add_config_flags(parser.add_argument_group("reporting"), TrainConfig, group="reporting")

    # Test hooks: sleep inside each checkpoint write / after each step so a test can kill there.
    parser.add_argument("--debug-slow-save", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--debug-slow-step", type=float, default=0.0, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    from ..data import default_cache_dir
    from ..training import DebugOptions, TrainConfig, parse_model_config, plan_run, read_config_file, train
    from ..training.distributed import from_environment
    from ..training.precision import idle_cpu_choice

    dist_info = from_environment()
    flag_values = {field.name: getattr(args, field.name) for field in config_flag_fields(TrainConfig)
                   if hasattr(args, field.name) and not (field.name in DATA_FLAGS and getattr(args, field.name) is None)}
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
