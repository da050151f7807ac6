"""Splits: the names, the deterministic hash split, and split directories.

Three ways a source says which text is train, valid or test (``docs/data.md``):

1. A *split directory* holds one entry per split: a file ``train.<ext>`` / ``valid.<ext>`` /
   ``test.<ext>`` (``validation`` is accepted for ``valid``) or a sub-directory ``train/`` etc.
   The debtext data (``train.jsonl.xz``, ``valid.jsonl.xz``) is one.
2. A source of many documents without split entries is split *by document*: a stable key of each
   document (its relative path in a folder, its number in a JSON Lines file or a dataset) is
   hashed with SHA-256 to a number u in [0, 1); u < test_fraction -> test, u < test + valid ->
   valid, else train. Adding or removing other documents never moves a document between splits.
3. A single text (one file, one document) is split *by position*, like enwik8: the first
   1 - valid - test of its characters are train, then valid, then test.

The split ``"all"`` means the whole source with nothing held out.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

Split = Literal["train", "valid", "test", "all"]
SPLITS: tuple[str, ...] = ("train", "valid", "test", "all")
# The names a split directory's entry may carry for each split.
SPLIT_ENTRY_NAMES: dict[str, tuple[str, ...]] = {
    "train": ("train",),
    "valid": ("valid", "validation"),
    "test": ("test",),
}


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")


def check_fractions(valid_fraction: float, test_fraction: float) -> None:
    for name, value in (("valid_fraction", valid_fraction), ("test_fraction", test_fraction)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    if valid_fraction + test_fraction >= 1.0:
        raise ValueError(
            f"valid_fraction + test_fraction must leave something to train on, got "
            f"{valid_fraction} + {test_fraction} >= 1"
        )


def hash_unit(key: str) -> float:
    """A number in [0, 1) fixed by ``key`` alone (SHA-256, the same on every machine and run)."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_of(key: str, *, valid_fraction: float, test_fraction: float) -> str:
    """Which split (``"train"``, ``"valid"`` or ``"test"``) the document with ``key`` belongs to."""
    u = hash_unit(key)
    if u < test_fraction:
        return "test"
    if u < test_fraction + valid_fraction:
        return "valid"
    return "train"


def in_split(key: str, split: str, *, valid_fraction: float, test_fraction: float) -> bool:
    return split == "all" or split_of(key, valid_fraction=valid_fraction, test_fraction=test_fraction) == split


def position_range(length: int, split: str, *, valid_fraction: float, test_fraction: float) -> tuple[int, int]:
    """[start, end) of ``split`` in a single text of ``length`` characters (train, valid, test in order)."""
    train_end = round(length * (1.0 - valid_fraction - test_fraction))
    valid_end = round(length * (1.0 - test_fraction))
    return {"train": (0, train_end), "valid": (train_end, valid_end), "test": (valid_end, length),
            "all": (0, length)}[split]


def split_entries(directory: Path) -> dict[str, Path]:
    """The split entries of ``directory`` (empty when it is not a split directory).

    Raises ValueError when two entries claim one split (``train.txt`` and ``train.jsonl``).
    """
    found: dict[str, list[Path]] = {}
    for entry in sorted(directory.iterdir()):
        if entry.name.startswith("."):
            continue
        stem = entry.name if entry.is_dir() else entry.name.split(".", 1)[0]
        for split, names in SPLIT_ENTRY_NAMES.items():
            if stem in names:
                found.setdefault(split, []).append(entry)
    for split, entries in found.items():
        if len(entries) > 1:
            names = ", ".join(e.name for e in entries)
            raise ValueError(f"{directory} has several entries for the {split} split ({names}); keep one")
    return {split: entries[0] for split, entries in found.items()}
