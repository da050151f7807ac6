"""Keeping the token cache bounded and visible: its entries, their sizes, its size limit, eviction.

The cache (``cache.py``) adds an entry per (corpus, tokenizer) and would otherwise only grow. Here:

- every use of an entry marks it used (the entry directory's modification time, set by
  ``mark_used``), so eviction is least-recently-used;
- after an entry is built, ``enforce_limit`` deletes the least recently used other entries until
  the cache fits its limit (a corpus bigger than the limit still gets its one entry);
- the limit is ``DEFAULT_LIMIT_BYTES`` unless ``<cache_dir>/limit.json`` says otherwise
  (``memformer cache limit GB`` writes it, like ``ccache -M``), so every command and every
  process sharing the cache keeps the same bound without a flag on each command.

A process that has an entry memory-mapped keeps reading it after another process deletes it
(POSIX keeps the file until the last mapping closes), so eviction never breaks a running job.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
from pathlib import Path

logger = logging.getLogger(__name__)

DEFAULT_LIMIT_BYTES = 5 << 30
LIMIT_FILE = "limit.json"
META_FILE = "meta.json"
# A temporary directory of a tokenization older than this was left by a killed process.
STALE_TEMPORARY_SECONDS = 6 * 3600


@dataclasses.dataclass(frozen=True)
class CacheEntry:
    """One tokenized corpus in the cache. last_used: seconds since the epoch."""

    path: Path
    description: str
    tokenizer: str
    num_tokens: int
    size_bytes: int
    last_used: float


def list_entries(cache_dir: Path) -> list[CacheEntry]:
    """The complete entries of ``cache_dir``, least recently used first (none if it does not exist)."""
    cache_dir = Path(cache_dir)
    if not cache_dir.is_dir():
        return []
    entries = []
    for path in cache_dir.iterdir():
        if path.name.startswith(".") or not (path / META_FILE).is_file():
            continue
        try:
            meta = json.loads((path / META_FILE).read_text())
            tokenizer = meta.get("tokenizer", {})
            entries.append(CacheEntry(
                path=path, description=str(meta.get("description", path.name)),
                tokenizer=str(tokenizer.get("kind", "?") if isinstance(tokenizer, dict) else tokenizer),
                num_tokens=int(meta.get("num_tokens", 0)), size_bytes=directory_size(path),
                last_used=path.stat().st_mtime,
            ))
        except (OSError, ValueError, TypeError, AttributeError):  # a damaged entry: still takes space, still listed
            entries.append(CacheEntry(path=path, description=path.name, tokenizer="?", num_tokens=0,
                                      size_bytes=directory_size(path), last_used=_mtime(path)))
    return sorted(entries, key=lambda e: (e.last_used, e.path.name))


def directory_size(path: Path) -> int:
    """Bytes of the regular files under ``path`` (0 if it vanished meanwhile)."""
    total = 0
    for directory, _, names in os.walk(path):
        for name in names:
            try:
                total += os.lstat(os.path.join(directory, name)).st_size
            except OSError:
                pass
    return total


def cache_size(cache_dir: Path) -> int:
    return directory_size(Path(cache_dir)) if Path(cache_dir).is_dir() else 0


def mark_used(entry: Path) -> None:
    """Record that ``entry`` was used now (its directory's modification time)."""
    try:
        os.utime(entry)
    except OSError:  # a read-only cache still works, it just cannot track use
        pass


def read_limit(cache_dir: Path) -> int:
    """The cache's size limit in bytes: ``limit.json``'s, else ``DEFAULT_LIMIT_BYTES``; 0 means none."""
    path = Path(cache_dir) / LIMIT_FILE
    if not path.is_file():
        return DEFAULT_LIMIT_BYTES
    try:
        limit = json.loads(path.read_text())["limit_bytes"]
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ValueError(limit)
        return limit
    except (OSError, ValueError, KeyError, TypeError) as error:
        logger.warning("%s is damaged (%s); using the default limit of %s", path, error,
                       format_bytes(DEFAULT_LIMIT_BYTES))
        return DEFAULT_LIMIT_BYTES


def write_limit(cache_dir: Path, limit_bytes: int) -> None:
    """Set the cache's size limit (0: no limit)."""
    if isinstance(limit_bytes, bool) or not isinstance(limit_bytes, int) or limit_bytes < 0:
        raise ValueError(f"the cache limit must be a size >= 0, got {limit_bytes!r}")
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_dir / f".{LIMIT_FILE}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps({"limit_bytes": limit_bytes}) + "\n")
    os.replace(tmp, cache_dir / LIMIT_FILE)


def enforce_limit(cache_dir: Path, *, keep: Path | None = None) -> list[CacheEntry]:
    """Delete the least recently used entries (never ``keep``) until the cache fits its limit, and
    temporaries that killed tokenizations left behind; returns the deleted entries."""
    cache_dir = Path(cache_dir)
    remove_stale_temporaries(cache_dir)
    limit = read_limit(cache_dir)
    if not limit:
        return []
    entries = list_entries(cache_dir)
    total = sum(e.size_bytes for e in entries)
    evicted = []
    for entry in entries:
        if total <= limit:
            break
        if keep is not None and entry.path.resolve() == Path(keep).resolve():
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        total -= entry.size_bytes
        evicted.append(entry)
    if evicted:
        logger.info("token cache %s: evicted %d least recently used entr%s (%s) to stay under its %s limit",
                    cache_dir, len(evicted), "y" if len(evicted) == 1 else "ies",
                    format_bytes(sum(e.size_bytes for e in evicted)), format_bytes(limit))
    return evicted


def remove_stale_temporaries(cache_dir: Path) -> None:
    now = time.time()
    for path in Path(cache_dir).glob(".tmp-*"):
        if now - _mtime(path) > STALE_TEMPORARY_SECONDS:
            shutil.rmtree(path, ignore_errors=True)


def clear(cache_dir: Path) -> tuple[int, int]:
    """Delete every entry (and stale temporary) of the cache, keeping its limit; returns (entries, bytes freed)."""
    cache_dir = Path(cache_dir)
    entries = list_entries(cache_dir)
    freed = cache_size(cache_dir)
    if cache_dir.is_dir():
        now = time.time()
        for path in cache_dir.iterdir():
            if path.name == LIMIT_FILE:
                continue
            if path.name.startswith(".tmp-") and now - _mtime(path) < STALE_TEMPORARY_SECONDS:
                continue  # another process may be tokenizing into it right now
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
    return len(entries), freed - cache_size(cache_dir)


def format_bytes(count: int) -> str:
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} B"


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
