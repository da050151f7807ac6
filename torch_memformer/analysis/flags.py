"""The command-line flags of what to trace, shared by ``memformer analyze`` and
``memformer bench memory-analysis`` (each adds its own flags around them)."""

from __future__ import annotations

import argparse


def add_analysis_arguments(parser: argparse.ArgumentParser) -> None:
    """Add --split, --document, --documents and --max-segments."""
    parser.add_argument("--split", default="valid", choices=("train", "valid", "test", "all"),
                        help="the split whose documents are traced (default: valid)")
    parser.add_argument("--document", type=int, default=None,
                        help="index in the split of the document drawn segment by segment (default: the longest)")
    parser.add_argument("--documents", type=int, default=None,
                        help="trace only the first N documents of the split for the statistics (default: all)")
    parser.add_argument("--max-segments", type=int, default=64,
                        help="segments traced per document from its start (default 64)")

