"""Hugging Face ``datasets`` as a source: a hub name or local files, behind the ``hf`` extra.

``datasets`` is imported only here and only when such a source is opened, so the rest of the
package works without it. Splits: a dataset's own split is used when it has the one asked for
(``valid`` also matches ``validation`` and ``dev``); a dataset with a single split (local files
usually load as one ``train`` split) is split by hashing each row's number, like a JSON Lines file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import splits
from .source import HF_FILE_SUFFIXES, JSONL_SUFFIXES, Corpus, DataSpec
from .text_files import DecodeTally, clean_surrogates, logical_suffix

_SPLIT_ALIASES = {"train": ("train",), "valid": ("validation", "valid", "dev"), "test": ("test",)}
_DISK_MARKERS = ("dataset_dict.json", "dataset_info.json", "state.json")
_ROWS_PER_READ = 1024


def hf_corpus(spec: DataSpec, split: str, *, path: Path | None = None) -> Corpus:
    """The ``split`` of a ``datasets`` dataset: ``path`` (a local file) or ``spec.source``."""
    try:
        import datasets
    except ImportError:
        raise ValueError(
            "reading Hugging Face datasets needs the optional 'datasets' package: pip install 'torch-memformer[hf]'"
        ) from None
    source = str(path if path is not None else spec.source)
    loaded = _load(datasets, source, spec.hf_config)
    parts = loaded if isinstance(loaded, datasets.DatasetDict) else {"train": loaded}
    table, hash_split = _pick_split(parts, split, source)
    if spec.text_field not in table.column_names:
        raise ValueError(
            f"dataset {source!r} has no {spec.text_field!r} column (columns: {', '.join(table.column_names)}); "
            "choose one with --text-field"
        )
    identity = {"reader": "hf", "source": source, "config": spec.hf_config, "split": split,
                "hash_split": hash_split, "fingerprint": table._fingerprint, "text_field": spec.text_field,
                "fractions": [spec.valid_fraction, spec.test_fraction]}
    field = spec.text_field

    def read(tally: DecodeTally) -> Iterator[str]:
        number = 0
        for rows in table.select_columns([field]).iter(batch_size=_ROWS_PER_READ):
            for text in rows[field]:
                keep = hash_split is None or splits.in_split(
                    str(number), hash_split, valid_fraction=spec.valid_fraction, test_fraction=spec.test_fraction
                )
                where = f"{source} row {number}"
                number += 1
                if not keep or text is None:
                    continue
                if not isinstance(text, str):
                    raise ValueError(f"{where}: column {field!r} holds a {type(text).__name__}, not a string")
                yield clean_surrogates(text, where=where, tally=tally)

    return Corpus(f"{source} [{split}]", identity, read)


def _load(datasets: Any, source: str, config: str | None) -> Any:
    local = Path(source).expanduser()
    try:
        if local.is_dir() and any((local / marker).exists() for marker in _DISK_MARKERS):
            return datasets.load_from_disk(str(local))
        if local.is_file():
            suffix = logical_suffix(local)
            builder = HF_FILE_SUFFIXES.get(suffix) or ("json" if suffix in JSONL_SUFFIXES + (".json",) else "text")
            # The "text" builder makes every line a row: that is what datasets means by a text file.
            return datasets.load_dataset(builder, data_files=str(local))
        return datasets.load_dataset(source, config)
    except (ValueError, TypeError):
        raise
    except Exception as error:  # datasets raises many types (FileNotFoundError, DatasetNotFoundError, ...)
        raise ValueError(f"cannot load Hugging Face dataset {source!r}: {error}") from None


def _pick_split(parts: Any, split: str, source: str) -> tuple[Any, str | None]:
    """The table to read and, when the dataset lacks held-out splits, the split to hash out of it."""
    names = list(parts.keys())
    if split == "all":
        if len(names) == 1:
            return parts[names[0]], None
        import datasets

        return datasets.concatenate_datasets([parts[n] for n in names]), None
    for alias in _SPLIT_ALIASES[split]:
        if alias in parts and len(names) > 1:
            return parts[alias], None
    if len(names) == 1:
        return parts[names[0]], split
    raise ValueError(f"dataset {source!r} has no {split} split (it has: {', '.join(names)})")
