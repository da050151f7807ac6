"""``memformer analyze``: what a trained Memformer's memory slots do (the paper's Fig. 6).

    memformer analyze --checkpoint runs/debtext-cpu-20min --out runs/debtext-cpu-20min/analysis
    memformer analyze --checkpoint DIR --data /work/shared/data/debtext --document 3 --out DIR

Traces the first ``--max-segments`` segments of the documents of a split from a fresh memory,
recomputing the writer's attention at every write (``torch_memformer.analysis``), and writes
``<out>/memory_analysis.json`` and ``<out>/memory_analysis.png``: (a) every slot's self weight per
segment over one document, (b) per segment the share of slots that keep their content and the
share that are overwritten, (c) the forgetting-bias norms of often- against rarely-overwritten
slots.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..analysis.flags import add_analysis_arguments
from ._data_args import DATA_FLAGS, add_data_arguments

NAME = "analyze"
HELP = "analyse a Memformer checkpoint's memory: writer attention per slot, kept vs overwritten slots, forgetting biases"
OUTPUT_NAME = "memory_analysis"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, required=True,
                        help="a Memformer checkpoint directory, or a run directory (its latest checkpoint)")
    parser.add_argument("--out", type=Path, required=True,
                        help=f"directory for {OUTPUT_NAME}.json and {OUTPUT_NAME}.png")
    add_analysis_arguments(parser)
    add_data_arguments(parser)
    # Not given: the data the checkpoint was trained on (as memformer eval).
    parser.set_defaults(**{name: None for name in DATA_FLAGS})
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for PyTorch (default 0: one per core)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="token cache (default: ~/.cache/torch-memformer)")


def run(args: argparse.Namespace) -> int:
    import torch

    from ..analysis.checkpoint import analyze_checkpoint, describe
    from ..errors import UserError

    if args.threads < 0:
        raise UserError(f"--threads must be >= 0, got {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)
    result = analyze_checkpoint(args.checkpoint, data=vars(args), split=args.split, document=args.document,
                                documents=args.documents, max_segments=args.max_segments, cache_dir=args.cache_dir)
    args.out.mkdir(parents=True, exist_ok=True)
    json_path, png_path = args.out / f"{OUTPUT_NAME}.json", args.out / f"{OUTPUT_NAME}.png"
    json_path.write_text(json.dumps(result.record, indent=2) + "\n")
    figure = result.figure
    figure.savefig(png_path, dpi=120)
    import matplotlib.pyplot as plt

    plt.close(figure)
    print("\n".join(describe(result.analysis)))
    print(f"wrote {json_path} and {png_path}")
    return 0
