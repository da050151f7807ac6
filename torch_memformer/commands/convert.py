"""``memformer convert``: a native checkpoint to a Hugging Face directory, or back.

    memformer convert runs/tiny/checkpoints/final --to hf --out runs/tiny-hf
    memformer convert runs/tiny-hf --to native --out runs/tiny-native

Needs the ``hf`` extra (``pip install torch-memformer[hf]``). Reads JSON and safetensors only.
See ``docs/huggingface.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "convert"
HELP = "convert a checkpoint between the native format and a Hugging Face transformers directory"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", type=Path, help="the directory to convert: a native checkpoint (or a run directory: "
                                                  "its latest checkpoint) for --to hf, a Hugging Face directory for "
                                                  "--to native")
    parser.add_argument("--to", required=True, choices=("hf", "native"), help="the format to write")
    parser.add_argument("--out", type=Path, required=True, help="the directory to write")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


def run(args: argparse.Namespace) -> int:
    from ..checkpoint import CheckpointError
    from ..errors import UserError
    from ..runs import resolve_checkpoint

    if args.out.exists() and not args.overwrite:
        raise UserError(f"{args.out} already exists; choose another --out or pass --overwrite")
    if args.out.resolve() == args.source.resolve():
        raise UserError("--out must differ from the source directory")
    try:
        from ..integrations.hf import hf_to_native, native_to_hf
    except ImportError as error:
        raise UserError(
            f"memformer convert needs the Hugging Face extra ({error}); install it with "
            "pip install 'torch-memformer[hf]'"
        ) from None
    try:
        if args.to == "hf":
            native_to_hf(resolve_checkpoint(args.source), args.out)
        else:
            hf_to_native(args.source, args.out)
    except CheckpointError as error:
        raise UserError(str(error)) from None
    print(f"wrote {'a Hugging Face directory' if args.to == 'hf' else 'a native checkpoint'} to {args.out}")
    return 0
