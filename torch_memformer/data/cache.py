"""The token cache: tokenize a corpus split once, memory-map it on every later run.

An entry is a directory ``<cache_dir>/<name>-<key>/`` holding

    tokens.bin        the ids of all documents back to back, raw uint16 (vocab <= 65,536) or uint32
    doc_offsets.npy   (D + 1,) int64, where each document starts in tokens.bin
    doc_bytes.npy     (D,) int64, UTF-8 bytes of each document
    token_bytes.npy   (V,) int64, UTF-8 bytes each token id stands for
    meta.json         sizes, dtype, and what the key was made of (for people reading the cache)

The key is a SHA-256 of (the corpus identity: reader, paths, sizes, modification times, split,
options; the tokenizer identity; the cache format version), so editing a source file or changing
the tokenizer makes a new entry rather than reusing a stale one. The cache is bounded: old
entries are evicted least recently used first once it outgrows its limit (``cache_entries.py``,
``memformer cache list|clear|limit``). An entry is built in a temporary directory and renamed into place (``os.replace``), so a reader
never sees half an entry, and two processes building the same entry at once both end up with a
complete one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import cache_entries
from .corpora import open_corpus
from .source import Corpus, DataSpec
from .text_files import DecodeTally
from .tokenized import TokenizedCorpus, token_dtype
from .tokenizers import Tokenizer

logger = logging.getLogger(__name__)

CACHE_VERSION = 1
_TOKENS, _OFFSETS, _DOC_BYTES, _TOKEN_BYTES, _META = (
    "tokens.bin", "doc_offsets.npy", "doc_bytes.npy", "token_bytes.npy", "meta.json",
)
# Documents are encoded a batch at a time (the BPE tokenizer encodes a batch in parallel) and
# written out as they come, so memory stays bounded by one batch, not the corpus.
_BATCH_CHARS = 8 << 20
_BATCH_DOCUMENTS = 1024


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/torch-memformer`` or ``~/.cache/torch-memformer`` (for the CLI to pass)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "torch-memformer"


def cache_key(corpus: Corpus, tokenizer: Tokenizer) -> str:
    """The hex SHA-256 naming ``corpus`` tokenized by ``tokenizer`` in the cache."""
    blob = json.dumps(
        {"version": CACHE_VERSION, "corpus": corpus.identity, "tokenizer": tokenizer.identity()},
        sort_keys=True, separators=(",", ":"),
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def load_or_tokenize(corpus: Corpus, tokenizer: Tokenizer, *, cache_dir: str | Path | None) -> TokenizedCorpus:
    """The tokenized ``corpus``: memory-mapped from ``cache_dir`` if an entry exists, else built
    (and stored there). ``cache_dir=None`` tokenizes in memory and stores nothing.

    Raises ValueError when the corpus holds no text.
    """
    name = f"{corpus.description}, {tokenizer.name}"
    if cache_dir is None:
        with tempfile.TemporaryDirectory(prefix="memformer-tokens-") as scratch:
            entry = Path(scratch)
            _build(corpus, tokenizer, entry, key="")
            return _load(entry, name, in_memory=True)
    cache_dir = Path(cache_dir).expanduser()
    key = cache_key(corpus, tokenizer)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{corpus.description}-{tokenizer.name}").strip("-")[:64]
    entry = cache_dir / f"{slug}-{key[:16]}"
    if (entry / _META).is_file():
        try:
            loaded = _load(entry, name, in_memory=False)
            cache_entries.mark_used(entry)
            logger.info("%s: %s tokens from the cache entry %s (%s)", name, f"{loaded.num_tokens:,}", entry,
                        _describe_cache(cache_dir))
            return loaded
        except (OSError, ValueError, KeyError) as error:
            logger.warning("%s: the cache entry %s is unreadable (%s); tokenizing again", name, entry, error)
            shutil.rmtree(entry, ignore_errors=True)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"cannot create the cache directory {cache_dir}: {error.strerror}") from None
    scratch = Path(tempfile.mkdtemp(prefix=f".tmp-{slug[:20]}-", dir=cache_dir))
    try:
        _build(corpus, tokenizer, scratch, key=key)
        try:
            os.replace(scratch, entry)
        except OSError:
            # Another process finished the same entry first; theirs is as good as ours.
            if not (entry / _META).is_file():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    cache_entries.mark_used(entry)
    cache_entries.enforce_limit(cache_dir, keep=entry)
    loaded = _load(entry, name, in_memory=False)
    logger.info("%s: stored in the cache entry %s (%s)", name, entry, _describe_cache(cache_dir))
    return loaded


def _describe_cache(cache_dir: Path) -> str:
    """Where the disk space went, in one phrase: 'the cache holds 1.2 GB of its 5.0 GB limit; ...'."""
    limit = cache_entries.read_limit(cache_dir)
    size = cache_entries.format_bytes(cache_entries.cache_size(cache_dir))
    bound = f"of its {cache_entries.format_bytes(limit)} limit" if limit else "(no limit)"
    return f"the cache holds {size} {bound}; see 'memformer cache list'"


def tokenized_split(
    spec: DataSpec, split: str, tokenizer: Tokenizer, *, cache_dir: str | Path | None
) -> TokenizedCorpus:
    """``open_corpus`` then ``load_or_tokenize``: the one call a command needs per split."""
    return load_or_tokenize(open_corpus(spec, split), tokenizer, cache_dir=cache_dir)


def _build(corpus: Corpus, tokenizer: Tokenizer, directory: Path, *, key: str) -> None:
    start = time.perf_counter()
    vocab_size = tokenizer.vocab_size
    dtype = token_dtype(vocab_size)
    lengths: list[int] = []
    doc_bytes: list[int] = []
    tally = DecodeTally()
    max_id = -1
    skipped = 0
    with open(directory / _TOKENS, "wb") as out:
        batch: list[str] = []
        chars = 0

        def flush() -> None:
            nonlocal max_id
            for text, ids in zip(batch, tokenizer.encode_batch(batch)):
                ids = np.asarray(ids)
                if not ids.size:
                    continue
                if ids.min() < 0 or ids.max() >= vocab_size:
                    raise ValueError(
                        f"the {tokenizer.name} tokenizer produced id {int(ids.max())} outside its own vocabulary "
                        f"of {vocab_size}; the tokenizer file is inconsistent, train it again"
                    )
                max_id = max(max_id, int(ids.max()))
                out.write(ids.astype(dtype, copy=False).tobytes())
                lengths.append(ids.size)
                doc_bytes.append(len(text.encode("utf-8")))
            batch.clear()

        for text in corpus.documents(tally):
            if not text:
                skipped += 1
                continue
            batch.append(text)
            chars += len(text)
            if chars >= _BATCH_CHARS or len(batch) >= _BATCH_DOCUMENTS:
                flush()
                chars = 0
        if batch:
            flush()
    if not lengths:
        raise ValueError(
            f"{corpus.description} holds no text ({skipped} empty document(s) skipped); check the path, the format "
            "and the split"
        )
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(lengths)
    np.save(directory / _OFFSETS, offsets)
    np.save(directory / _DOC_BYTES, np.asarray(doc_bytes, dtype=np.int64))
    np.save(directory / _TOKEN_BYTES, np.asarray(tokenizer.token_byte_lengths(), dtype=np.int64))
    meta: dict[str, Any] = {
        "version": CACHE_VERSION,
        "key": key,
        "description": corpus.description,
        "corpus": corpus.identity,
        "tokenizer": tokenizer.identity(),
        "dtype": dtype.name,
        "num_tokens": int(offsets[-1]),
        "num_documents": len(lengths),
        "num_bytes": int(sum(doc_bytes)),
        "max_token_id": max_id,
        "empty_documents_skipped": skipped,
        "documents_with_replaced_bytes": tally.documents,
        "files_skipped_as_not_text": tally.skipped,
        "seconds": round(time.perf_counter() - start, 3),
    }
    (directory / _META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    logger.info(
        "%s: tokenized %s documents, %s bytes -> %s tokens with %s in %.1f s",
        corpus.description, f"{len(lengths):,}", f"{meta['num_bytes']:,}", f"{meta['num_tokens']:,}",
        tokenizer.name, meta["seconds"],
    )


def _load(entry: Path, name: str, *, in_memory: bool) -> TokenizedCorpus:
    meta = json.loads((entry / _META).read_text())
    if meta.get("version") != CACHE_VERSION:
        raise ValueError(f"cache format {meta.get('version')} is not {CACHE_VERSION}")
    dtype = np.dtype(meta["dtype"])
    count = int(meta["num_tokens"])
    size = (entry / _TOKENS).stat().st_size
    if size != count * dtype.itemsize:
        raise ValueError(f"{_TOKENS} holds {size} bytes, expected {count * dtype.itemsize}")
    if in_memory:
        tokens = np.fromfile(entry / _TOKENS, dtype=dtype)
    else:
        tokens = np.memmap(entry / _TOKENS, dtype=dtype, mode="r", shape=(count,))
    return TokenizedCorpus(
        tokens=tokens,
        doc_offsets=np.load(entry / _OFFSETS),
        doc_bytes=np.load(entry / _DOC_BYTES),
        token_bytes=np.load(entry / _TOKEN_BYTES),
        name=name,
    )
