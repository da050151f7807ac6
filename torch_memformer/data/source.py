"""What a data source is and what opening one gives: ``DataSpec`` and ``Corpus``.

The readers (``corpora.py`` for files, folders and the standard library; ``hf.py`` for Hugging
Face ``datasets``) all take a ``DataSpec`` and return a ``Corpus``; both live here, below the
readers, so that ``corpora.open_corpus`` can hand a source to ``hf.py`` without the two modules
importing each other.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator
from typing import Any, Literal

from . import splits
from .text_files import DecodeTally

# Logged under the readers' module name, as before these types moved here: the CLI prints it.
logger = logging.getLogger("torch_memformer.data.corpora")

DataFormat = Literal["auto", "text", "folder", "jsonl", "hf", "stdlib"]
DATA_FORMATS: tuple[str, ...] = ("auto", "text", "folder", "jsonl", "hf", "stdlib")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
HF_FILE_SUFFIXES = {".parquet": "parquet", ".csv": "csv", ".arrow": "arrow"}
STDLIB = "stdlib"


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """Where a corpus comes from; the ``--data*`` flags of every command map onto it.

    source: a path, a Hugging Face hub dataset name (with ``format="hf"``) or ``"stdlib"``.
    format: how to read it; ``"auto"`` decides from the path (module docstring).
    text_field: the field holding the text in JSON Lines and ``datasets`` rows.
    hf_config: the configuration of a hub dataset (``"wikitext-103-raw-v1"``), if it has several.
    valid_fraction, test_fraction: held-out shares for sources without split entries.
    allow_binary: read files that look binary (NUL bytes, mostly not UTF-8) instead of skipping
        them in folders and refusing a single one.
    """

    source: str = STDLIB
    format: DataFormat = "auto"
    text_field: str = "text"
    hf_config: str | None = None
    valid_fraction: float = 0.05
    test_fraction: float = 0.05
    allow_binary: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.source, str) or not self.source:
            raise ValueError(f"data source must be a non-empty path or name, got {self.source!r}")
        if self.format not in DATA_FORMATS:
            raise ValueError(f"data format must be one of {', '.join(DATA_FORMATS)}, got {self.format!r}")
        if not isinstance(self.text_field, str) or not self.text_field:
            raise ValueError(f"text_field must be a non-empty field name, got {self.text_field!r}")
        splits.check_fractions(self.valid_fraction, self.test_fraction)
        if not isinstance(self.allow_binary, bool):
            raise ValueError(f"allow_binary must be true or false, got {self.allow_binary!r}")


@dataclasses.dataclass(frozen=True)
class Corpus:
    """The documents of one split of one source, read lazily and in a fixed order.

    description: a short human name for messages ("debtext/valid.jsonl.xz", "stdlib [train]").
    identity: JSON-able; changes whenever the documents may change (files, sizes, modification
        times, split, reader options). The token cache is keyed on it.
    """

    description: str
    identity: dict[str, Any]
    read: Callable[[DecodeTally], Iterator[str]] = dataclasses.field(repr=False, compare=False)

    def documents(self, tally: DecodeTally | None = None) -> Iterator[str]:
        """Yield the documents; after the last, warn once if any held undecodable bytes, and once
        if files that are not text were skipped.

        ``tally``, if given, is filled with the counts of such documents (the cache records them).
        """
        tally = DecodeTally() if tally is None else tally
        yield from self.read(tally)
        if tally.skipped:
            more = ", ..." if tally.skipped > len(tally.skipped_names) else ""
            logger.warning("%s: skipped %d file(s) that are not text (%s%s); pass --allow-binary to read them anyway",
                           self.description, tally.skipped, ", ".join(tally.skipped_names), more)
        if tally.documents:
            # The standard library's tests hold files that are undecodable on purpose: worth a
            # line, not an alarm.
            unexpected = tally.documents > tally.expected
            logger.log(
                logging.WARNING if unexpected else logging.INFO,
                "%s: %d document(s) held bytes that are not valid UTF-8 (first: %s); they were replaced with U+FFFD%s",
                self.description,
                tally.documents,
                tally.first,
                "" if unexpected else " (expected: test files of the standard library that are invalid on purpose)",
            )
