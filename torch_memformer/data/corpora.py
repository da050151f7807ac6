"""Corpora: where documents come from. ``open_corpus(spec, split)`` -> a ``Corpus`` of str documents.

Sources (``DataSpec.source``) and how ``format="auto"`` recognises them:

=================  =====================================================================
``stdlib``         the embedded default corpus: this Python's standard library ``.py`` files
                   (found through ``sysconfig``), each file a document; nothing to download
a split directory  a directory with ``train.*`` / ``valid.*`` / ``test.*`` entries (files or
                   sub-directories); each entry is read by its own kind (``splits.py``)
a directory        a folder of text files, each file a document (recursively, sorted by path,
                   hidden files skipped, .xz/.gz/.bz2 decompressed)
``*.jsonl[.xz]``   JSON Lines, one document per line in its ``text`` field
``*.parquet`` ...  (also ``.csv``, ``.arrow``) read with Hugging Face ``datasets`` (``hf.py``)
any other file     one text document (``.txt``, ``.txt.xz``, ``.md``, ...)
=================  =====================================================================

``format="hf"`` reads a hub dataset name or a local file/dir with ``datasets`` (optional extra
``hf``). An explicit ``format="folder"`` reads a directory as a folder of documents even when
it has split entries. Text is UTF-8; undecodable bytes become U+FFFD with one warning per corpus.

Files that are not text (``text_files.sniff_binary``: executables, images, PDFs, zip/tar
archives) are skipped in folders, with one warning that counts and names them; a single such file
given as the corpus is refused. ``allow_binary`` reads them anyway, their bytes decoded with
U+FFFD replacements.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import sysconfig
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from . import splits
from .source import HF_FILE_SUFFIXES, JSONL_SUFFIXES, STDLIB, Corpus, DataSpec
from .text_files import (
    DecodeTally,
    decode_python_source,
    decode_utf8,
    iter_jsonl,
    logical_suffix,
    read_bytes,
    sniff_binary,
)

logger = logging.getLogger(__name__)

def open_corpus(spec: DataSpec, split: splits.Split) -> Corpus:
    """The ``split`` (``"train"``, ``"valid"``, ``"test"`` or ``"all"``) of the source ``spec`` names.

    Raises ValueError for a missing source, a split the source does not have, or a format that
    does not fit the path. Nothing is read until ``Corpus.documents()`` is iterated.
    """
    splits.check_split(split)
    if spec.format == "stdlib" or (spec.format == "auto" and spec.source == STDLIB):
        return stdlib_corpus(split, valid_fraction=spec.valid_fraction, test_fraction=spec.test_fraction)
    if spec.format == "hf":
        from .hf import hf_corpus

        return hf_corpus(spec, split)
    path = Path(spec.source).expanduser()
    if not path.exists():
        raise ValueError(
            f"data source {spec.source!r} does not exist; give a file or folder (or 'stdlib' for the "
            "built-in corpus, or --data-format hf for a Hugging Face hub dataset)"
        )
    if path.is_dir():
        if spec.format != "folder":
            entries = splits.split_entries(path)
            if entries:
                return _split_directory(path, entries, split, spec)
            if spec.format in ("text", "jsonl"):
                raise ValueError(
                    f"{path} is a directory without train/valid/test entries; --data-format {spec.format} "
                    "reads one file (use --data-format folder for a folder of documents)"
                )
        return folder_corpus(path, split, valid_fraction=spec.valid_fraction, test_fraction=spec.test_fraction,
                             allow_binary=spec.allow_binary)
    if spec.format == "folder":
        raise ValueError(f"{path} is a file, but --data-format folder needs a directory of documents")
    return _file_corpus(path, split, spec)


def _file_corpus(path: Path, split: str, spec: DataSpec) -> Corpus:
    kind = spec.format if spec.format in ("text", "jsonl") else _kind_of_file(path)
    if kind == "hf":
        from .hf import hf_corpus

        return hf_corpus(spec, split, path=path)
    if kind == "jsonl":
        return jsonl_corpus(
            path, split, text_field=spec.text_field, valid_fraction=spec.valid_fraction,
            test_fraction=spec.test_fraction,
        )
    return text_file_corpus(path, split, valid_fraction=spec.valid_fraction, test_fraction=spec.test_fraction,
                            allow_binary=spec.allow_binary)


def _kind_of_file(path: Path) -> str:
    suffix = logical_suffix(path)
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    if suffix in HF_FILE_SUFFIXES:
        return "hf"
    return "text"


def _split_directory(directory: Path, entries: dict[str, Path], split: str, spec: DataSpec) -> Corpus:
    """A split directory: the split is an entry, read whole (nothing further held out of it)."""
    wanted = [s for s in ("train", "valid", "test") if s in entries] if split == "all" else [split]
    missing = [s for s in wanted if s not in entries]
    if missing:
        have = ", ".join(entries[s].name for s in ("train", "valid", "test") if s in entries)
        raise ValueError(
            f"{directory} has no {missing[0]} split (it holds: {have}); add a {missing[0]}.<ext> file "
            f"or a {missing[0]}/ folder"
        )
    parts = []
    for name in wanted:
        entry = entries[name]
        if entry.is_dir():
            parts.append(folder_corpus(entry, "all", valid_fraction=0.0, test_fraction=0.0,
                                       allow_binary=spec.allow_binary))
        else:
            parts.append(_file_corpus(entry, "all", spec))
    if len(parts) == 1:
        part = parts[0]
        return Corpus(f"{directory.name}/{entries[wanted[0]].name}", part.identity, part.read)
    return _concatenation(f"{directory.name} [all]", parts)


def _concatenation(description: str, parts: Sequence[Corpus]) -> Corpus:
    def read(tally: DecodeTally) -> Iterator[str]:
        for part in parts:
            yield from part.read(tally)

    return Corpus(description, {"reader": "concatenation", "parts": [p.identity for p in parts]}, read)


def text_file_corpus(
    path: Path, split: str, *, valid_fraction: float, test_fraction: float, allow_binary: bool = False
) -> Corpus:
    """One file, one document; its splits are consecutive stretches of characters (enwik8 style).

    A file that looks binary is refused (ValueError) unless ``allow_binary``: it is all there
    is to train on, so skipping it would only move the error elsewhere.
    """
    identity = {"reader": "text", "files": [_file_identity(path)], "split": split,
                "fractions": [valid_fraction, test_fraction]}

    def read(tally: DecodeTally) -> Iterator[str]:
        data = read_bytes(path)
        reason = None if allow_binary else sniff_binary(data)
        if reason is not None:
            raise ValueError(f"{path} is not a text file ({reason}); give text, or pass --allow-binary to train on "
                             "its bytes anyway")
        text = decode_utf8(data, where=str(path), tally=tally)
        start, end = splits.position_range(len(text), split, valid_fraction=valid_fraction, test_fraction=test_fraction)
        yield text[start:end]

    return Corpus(_describe(path, split), identity, read)


def jsonl_corpus(
    path: Path, split: str, *, text_field: str, valid_fraction: float, test_fraction: float
) -> Corpus:
    """JSON Lines, one document per line; split by hashing the document's number (0, 1, ...)."""
    identity = {"reader": "jsonl", "files": [_file_identity(path)], "split": split, "text_field": text_field,
                "fractions": [valid_fraction, test_fraction]}

    def read(tally: DecodeTally) -> Iterator[str]:
        for number, text in enumerate(iter_jsonl(path, text_field=text_field, tally=tally)):
            if splits.in_split(str(number), split, valid_fraction=valid_fraction, test_fraction=test_fraction):
                yield text

    return Corpus(_describe(path, split), identity, read)


def folder_corpus(
    directory: Path, split: str, *, valid_fraction: float, test_fraction: float, allow_binary: bool = False
) -> Corpus:
    """Each file under ``directory`` a document; split by hashing its relative path.

    Files that are not text are skipped and counted (``DecodeTally.skip``): those that look
    binary (unless ``allow_binary``) and compressed files that do not decompress.
    """
    files = list_files(directory)
    if not files:
        raise ValueError(f"folder {directory} holds no files (hidden files are skipped)")
    chosen = [rel for rel in files if splits.in_split(rel, split, valid_fraction=valid_fraction,
                                                       test_fraction=test_fraction)]
    # The binary policy decides which files are documents, so it is part of what the cache keys on.
    identity = {"reader": "folder", "root": str(directory.resolve()), "listing": _listing_hash(directory, files),
                "split": split, "fractions": [valid_fraction, test_fraction],
                "binary": "read" if allow_binary else "skip"}

    def read(tally: DecodeTally) -> Iterator[str]:
        for rel in chosen:
            path = directory / rel
            try:
                data = read_bytes(path)
            except ValueError:  # a .gz/.xz/.bz2 that does not decompress, or an unreadable file
                tally.skip(rel)
                continue
            if not allow_binary and sniff_binary(data) is not None:
                tally.skip(rel)
                continue
            yield decode_utf8(data, where=str(path), tally=tally)

    return Corpus(_describe(directory, split), identity, read)


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_files(root: Path | None = None) -> list[str]:
    """The standard library's ``.py`` files, relative POSIX paths in sorted order.

    Third-party packages installed into the interpreter (``site-packages``) are not part of it.
    """
    root = stdlib_root() if root is None else root
    skip = {"site-packages", "dist-packages", "__pycache__"}
    files = []
    # os.walk with pruning: site-packages can be far larger than the standard library itself.
    for directory, subdirs, names in os.walk(root):
        subdirs[:] = [d for d in subdirs if d not in skip and not d.startswith(".")]
        rel = Path(directory).relative_to(root)
        files.extend((rel / name).as_posix() for name in names if name.endswith(".py") and not name.startswith("."))
    return sorted(files)


def stdlib_corpus(
    split: str, *, valid_fraction: float = 0.05, test_fraction: float = 0.05, root: Path | None = None
) -> Corpus:
    """The embedded default corpus: each ``.py`` file of the standard library a document.

    Split by hashing the relative path (about 90/5/5 by file). The files are decoded as Python
    decodes them (PEP 263 coding cookie). What it holds depends on the Python version, which is
    part of its identity.
    """
    splits.check_split(split)
    root = stdlib_root() if root is None else root
    files = stdlib_files(root)
    if not files:
        raise ValueError(f"found no .py files under the standard library directory {root}")
    chosen = [rel for rel in files if splits.in_split(rel, split, valid_fraction=valid_fraction,
                                                       test_fraction=test_fraction)]
    identity = {"reader": "stdlib", "python": sys.version.split()[0], "root": str(root),
                "listing": _listing_hash(root, files), "split": split, "fractions": [valid_fraction, test_fraction]}

    def read(tally: DecodeTally) -> Iterator[str]:
        for rel in chosen:
            path = root / rel
            yield decode_python_source(read_bytes(path), where=str(path), tally=tally,
                                       expected=_broken_on_purpose(rel))

    return Corpus(f"stdlib [{split}]", identity, read)


def _broken_on_purpose(rel: str) -> bool:
    """The standard library's tests of bad source files (``test/tokenizedata/badsyntax_pep3120.py``,
    ``test/bad_coding*.py``): undecodable on purpose."""
    parts = rel.split("/")
    return "test" in parts[:-1] and parts[-1].startswith("bad")


def list_files(directory: Path) -> list[str]:
    """Regular files under ``directory`` (recursively), hidden ones skipped, sorted relative POSIX paths."""
    files = []
    for path in directory.rglob("*"):
        rel = path.relative_to(directory)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        files.append(rel.as_posix())
    return sorted(files)


def _file_identity(path: Path) -> list[Any]:
    stat = path.stat()
    return [str(path.resolve()), stat.st_size, stat.st_mtime_ns]


def _listing_hash(root: Path, files: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for rel in files:
        stat = (root / rel).stat()
        digest.update(f"{rel}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def _describe(path: Path, split: str) -> str:
    name = f"{path.parent.name}/{path.name}" if path.parent.name else path.name
    return name if split == "all" else f"{name} [{split}]"
