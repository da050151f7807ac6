"""``memformer cache``: what the token cache holds, and keeping it small.

    memformer cache list                  # entries, least recently used first, sizes, the limit
    memformer cache clear                 # delete every entry (they are rebuilt when needed)
    memformer cache limit 2               # evict down to 2 GB, now and after every new entry

``train``, ``eval`` and ``tokenizer`` store each tokenized corpus there once (``data/cache.py``);
the least recently used entries are evicted once the cache outgrows its limit (5 GB unless set).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

NAME = "cache"
HELP = "list or clear the token cache, or set its size limit"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="the entries, least recently used first, and the total")
    clear = actions.add_parser("clear", help="delete every entry (rebuilt when a command needs it)")
    limit = actions.add_parser("limit", help="set the size limit; the least recently used entries go first")
    limit.add_argument("gigabytes", type=float, metavar="GB", help="the limit in GB (1 GB = 2^30 bytes; 0: no limit)")
    for action in (listing, clear, limit):
        action.add_argument("--cache-dir", type=Path, default=None,
                            help="the token cache (default: ~/.cache/torch-memformer, or $XDG_CACHE_HOME's)")


def run(args: argparse.Namespace) -> int:
    from ..data import cache_entries
    from ..data.cache import default_cache_dir
    from ..errors import UserError

    cache_dir = args.cache_dir if args.cache_dir is not None else default_cache_dir()
    size = cache_entries.format_bytes
    if args.action == "limit":
        if not args.gigabytes >= 0:  # also refuses nan
            raise UserError(f"the cache limit must be >= 0 GB, got {args.gigabytes}")
        limit = round(args.gigabytes * (1 << 30))
        cache_entries.write_limit(cache_dir, limit)
        evicted = cache_entries.enforce_limit(cache_dir)
        print(f"{cache_dir}: limit {size(limit) if limit else 'none'}; evicted {len(evicted)} entr"
              f"{'y' if len(evicted) == 1 else 'ies'}; it holds {size(cache_entries.cache_size(cache_dir))}")
        return 0
    if args.action == "clear":
        count, freed = cache_entries.clear(cache_dir)
        print(f"{cache_dir}: deleted {count} entr{'y' if count == 1 else 'ies'}, freed {size(freed)}")
        return 0
    entries = cache_entries.list_entries(cache_dir)
    limit = cache_entries.read_limit(cache_dir)
    for entry in entries:
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.last_used))
        print(f"{size(entry.size_bytes):>9s}  {used}  {entry.num_tokens:>14,} tokens  {entry.tokenizer:5s}  "
              f"{entry.description}  ({entry.path.name})")
    total = cache_entries.cache_size(cache_dir)
    print(f"{cache_dir}: {len(entries)} entr{'y' if len(entries) == 1 else 'ies'}, {size(total)} of "
          f"{'its ' + size(limit) + ' limit' if limit else 'no limit'}")
    return 0
