"""``memformer tokenizer train``: learn a byte-level BPE vocabulary from a corpus split.

    memformer tokenizer train --data /work/shared/data/debtext --vocab-size 8192 --out runs/bpe8k

writes ``tokenizer.json`` and ``tokenizer_meta.json`` into ``--out``; pass that directory to the
commands that take ``--tokenizer``. The default tokenizer (``byte``) needs no training.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from ._data_args import add_data_arguments, data_spec_from_args

NAME = "tokenizer"
HELP = "train a byte-level BPE tokenizer on a corpus (the default byte tokenizer needs none)"
# Bytes per token is reported on the first documents of the training text, up to this many characters.
_SAMPLE_BYTES = 2 << 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="tokenizer_action", metavar="ACTION", required=True)
    train = actions.add_parser("train", help="learn a BPE vocabulary from --data and save it in --out",
                               description="learn a byte-level BPE vocabulary from --data and save it in --out")
    add_data_arguments(train)
    train.add_argument("--split", default="train", choices=("train", "valid", "test", "all"),
                       help="which split of --data to learn from (default: train)")
    train.add_argument("--vocab-size", type=int, required=True, help="number of token ids, at least 256")
    train.add_argument("--min-frequency", type=int, default=2, help="least count of a pair to merge (default 2)")
    train.add_argument("--max-bytes", type=int, default=None,
                       help="learn from at most this many bytes of text (whole documents; default: all)")
    train.add_argument("--out", type=Path, required=True, help="directory to write the tokenizer into")


def run(args: argparse.Namespace) -> int:
    from ..data import open_corpus, train_bpe
    from ..data.tokenizers import META_FILE
    from ..errors import UserError

    if args.max_bytes is not None and args.max_bytes < 1:
        raise UserError(f"--max-bytes must be >= 1, got {args.max_bytes}")
    if (args.out / META_FILE).exists():
        raise UserError(f"{args.out} already holds a tokenizer; choose another --out or remove it first")
    corpus = open_corpus(data_spec_from_args(args), args.split)
    counter = _ByteCounter(corpus.documents(), limit=args.max_bytes)
    start = time.perf_counter()
    tokenizer = train_bpe(counter, vocab_size=args.vocab_size, min_frequency=args.min_frequency)
    seconds = time.perf_counter() - start
    try:
        tokenizer.save(args.out)
    except OSError as error:
        raise UserError(f"cannot write the tokenizer to {args.out}: {error.strerror}") from None
    sample = "".join(counter.seen_texts)[:_SAMPLE_BYTES]
    sample_tokens = len(tokenizer.encode(sample))
    documents = f"{counter.documents:,} document{'' if counter.documents == 1 else 's'}"
    print(f"trained a byte-level BPE tokenizer on {documents} ({counter.bytes:,} bytes) of "
          f"{corpus.description} in {seconds:.1f} s")
    print(f"vocabulary: {tokenizer.vocab_size:,} ids (asked {args.vocab_size:,})"
          + (f"; {len(sample.encode('utf-8')) / max(sample_tokens, 1):.2f} bytes per token on the first "
             f"{len(sample.encode('utf-8')):,} bytes" if sample else ""))
    print(f"saved to {args.out}")
    return 0


class _ByteCounter:
    """Passes documents through, counting them and their UTF-8 bytes, stopping after ``limit``
    bytes; keeps the first few documents to measure bytes per token afterwards."""

    def __init__(self, texts: Iterable[str], *, limit: int | None) -> None:
        self._texts = iter(texts)
        self._limit = limit
        self.documents = 0
        self.bytes = 0
        self.seen_texts: list[str] = []
        self._kept = 0

    def __iter__(self) -> Iterator[str]:
        for text in self._texts:
            if self._limit is not None and self.bytes >= self._limit:
                return
            size = len(text.encode("utf-8"))
            self.documents += 1
            self.bytes += size
            if self._kept < _SAMPLE_BYTES:
                self.seen_texts.append(text)
                self._kept += size
            yield text

