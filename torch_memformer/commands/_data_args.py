"""The ``--data*`` flags every command that reads a corpus shares, and the ``DataSpec`` they make.

Not a command itself (the leading underscore keeps ``cli.py`` from listing it).
"""

from __future__ import annotations

import argparse

from ..checkpoint_data import DATA_FIELDS
from ..data import DATA_FORMATS, DataSpec

# The destinations of the flags add_data_arguments adds (TrainConfig's data fields have these names).
DATA_FLAGS = DATA_FIELDS


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Add --data, --data-format, --text-field, --hf-config, --valid-fraction, --test-fraction,
    --allow-binary."""
    group = parser.add_argument_group("data (docs/data.md)")
    group.add_argument(
        "--data", default="stdlib", metavar="PATH_OR_NAME",
        help="a text file, a folder of text files, a .jsonl[.xz|.gz] file, a folder with train.*/valid.*/test.* "
             "entries, a Hugging Face dataset (with --data-format hf), or 'stdlib' (default: the Python "
             "standard library's sources, nothing to download)",
    )
    group.add_argument("--data-format", choices=DATA_FORMATS, default="auto",
                       help="how to read --data (default: auto, from the path)")
    group.add_argument("--text-field", default="text", help="the field holding the text in JSON Lines / datasets rows")
    group.add_argument("--hf-config", default=None, help="configuration name of a Hugging Face hub dataset")
    group.add_argument("--valid-fraction", type=float, default=0.05,
                       help="held-out share for sources without split entries (default 0.05)")
    group.add_argument("--test-fraction", type=float, default=0.05,
                       help="test share for sources without split entries (default 0.05)")
    group.add_argument("--allow-binary", action="store_true",
                       help="read files that look binary (NUL bytes, mostly not UTF-8) as text; by default they are "
                            "skipped in folders, and a single one given as --data is refused")


def data_spec_from_args(args: argparse.Namespace) -> DataSpec:
    return DataSpec(
        source=args.data,
        format=args.data_format,
        text_field=args.text_field,
        hf_config=args.hf_config,
        valid_fraction=args.valid_fraction,
        test_fraction=args.test_fraction,
        allow_binary=args.allow_binary,
    )
