"""A bounded, visible token cache: least-recently-used eviction past the limit, the limit kept in
the cache itself, ``memformer cache list|clear|limit``, and ``train`` saying where the cache is
and how big."""

from __future__ import annotations

import logging
import os
import time

import pytest

from torch_memformer.cli import main
from torch_memformer.data import ByteTokenizer, DataSpec, tokenized_split
from torch_memformer.data import cache_entries
from torch_memformer.data.cache_entries import enforce_limit, list_entries, read_limit, write_limit

from train_support import make_corpus

DOC = "x = compute(y)  # a line of a document\n"


def _corpus(root, name, lines):
    """A folder corpus of one document: its entry holds about ``lines`` * 40 bytes of tokens."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "doc.txt").write_text(DOC * lines)
    return DataSpec(str(folder), format="folder")


def _name(entry):
    """The corpus folder's name ("a") from the entry's description ("<tmp dir>/a")."""
    return entry.description.rsplit("/", 1)[-1]


def _names(cache):
    return [_name(e) for e in list_entries(cache)]


def _entry_of(cache, name):
    [entry] = [e for e in list_entries(cache) if _name(e) == name]
    return entry


def _age(entry_path, seconds_ago):
    stamp = time.time() - seconds_ago
    os.utime(entry_path, (stamp, stamp))


def test_least_recently_used_entries_are_evicted_past_the_limit(tmp_path):
    cache = tmp_path / "cache"
    specs = {name: _corpus(tmp_path, name, 1000) for name in ("a", "b", "c")}
    tokenizer = ByteTokenizer()
    tokenized_split(specs["a"], "all", tokenizer, cache_dir=cache)
    tokenized_split(specs["b"], "all", tokenizer, cache_dir=cache)
    one = _entry_of(cache, "a").size_bytes
    assert one > 40_000  # uint16 tokens: 2 bytes per byte of text, plus the index files
    _age(_entry_of(cache, "a").path, 300)
    _age(_entry_of(cache, "b").path, 200)
    # Using a (a cache hit) makes it the most recently used: b is now the oldest.
    tokenized_split(specs["a"], "all", tokenizer, cache_dir=cache)
    assert _names(cache) == ["b", "a"]

    write_limit(cache, int(2.5 * one))  # room for two entries
    tokenized_split(specs["c"], "all", tokenizer, cache_dir=cache)
    assert sorted(_names(cache)) == ["a", "c"]
    assert cache_entries.cache_size(cache) <= 2.5 * one

    # A limit below one entry keeps the entry just built (the run needs it) and drops the rest.
    write_limit(cache, 1)
    tokenized_split(specs["b"], "all", tokenizer, cache_dir=cache)
    assert _names(cache) == ["b"]

    write_limit(cache, 0)  # no limit: nothing is evicted
    for name in ("a", "c"):
        tokenized_split(specs[name], "all", tokenizer, cache_dir=cache)
    assert len(list_entries(cache)) == 3


def test_the_limit_defaults_to_5_gb_and_survives_damage(tmp_path, caplog):
    cache = tmp_path / "cache"
    assert read_limit(cache) == 5 << 30
    write_limit(cache, 123)
    assert read_limit(cache) == 123
    (cache / "limit.json").write_text("{not json")
    with caplog.at_level(logging.WARNING):
        assert read_limit(cache) == 5 << 30
    assert "limit.json is damaged" in caplog.text
    with pytest.raises(ValueError, match="must be a size >= 0"):
        write_limit(cache, -1)


def test_temporaries_of_killed_tokenizations_are_removed_once_stale(tmp_path):
    cache = tmp_path / "cache"
    stale, fresh = cache / ".tmp-old-x", cache / ".tmp-new-y"
    for path in (stale, fresh):
        path.mkdir(parents=True)
        (path / "tokens.bin").write_bytes(b"\0" * 100)
    _age(stale, cache_entries.STALE_TEMPORARY_SECONDS + 60)
    enforce_limit(cache)
    assert not stale.exists() and fresh.exists()  # a fresh one may belong to a running process


def test_train_says_where_the_cache_is_and_how_big(tmp_path, caplog):
    data, cache = make_corpus(tmp_path / "data"), tmp_path / "cache"
    with caplog.at_level(logging.INFO):
        assert main(["train", "--preset", "tiny", "--steps", "1", "--data", str(data), "--cache-dir", str(cache),
                     "--out", str(tmp_path / "run")]) == 0
    lines = [r.getMessage() for r in caplog.records if "the cache holds" in r.getMessage()]
    assert len(lines) == 2  # the train and the valid split
    assert all(str(cache) in line and "of its 5.0 GB limit" in line and "memformer cache list" in line
               for line in lines)


def test_cache_command_lists_limits_and_clears(tmp_path, capsys):
    cache = tmp_path / "cache"
    for name in ("a", "b"):
        tokenized_split(_corpus(tmp_path, name, 200), "all", ByteTokenizer(), cache_dir=cache)
    _age(_entry_of(cache, "b").path, 100)

    assert main(["cache", "list", "--cache-dir", str(cache)]) == 0
    lines = capsys.readouterr().out.splitlines()
    # Least recently used first, with its size, tokens and tokenizer.
    assert len(lines) == 3 and f"{tmp_path.name}/b " in lines[0] and f"{tmp_path.name}/a " in lines[1]
    assert f"{200 * len(DOC):,} tokens  byte " in lines[0] and " KB " in lines[0]
    assert lines[2].startswith(f"{cache}: 2 entries, ") and lines[2].endswith("of its 5.0 GB limit")

    one = _entry_of(cache, "a").size_bytes
    assert main(["cache", "limit", str(1.5 * one / (1 << 30)), "--cache-dir", str(cache)]) == 0
    assert "evicted 1 entry" in capsys.readouterr().out
    assert _names(cache) == ["a"]

    assert main(["cache", "clear", "--cache-dir", str(cache)]) == 0
    assert capsys.readouterr().out == f"{cache}: deleted 1 entry, freed {cache_entries.format_bytes(one)}\n"
    assert list_entries(cache) == [] and read_limit(cache) == round(1.5 * one)  # the limit stays

    assert main(["cache", "list", "--cache-dir", str(tmp_path / "never-made")]) == 0
    assert "0 entries, 0 B of its 5.0 GB limit" in capsys.readouterr().out


@pytest.mark.parametrize("args, needle", [
    (["cache", "limit", "-1"], "the cache limit must be >= 0 GB, got -1.0"),
    (["cache", "limit", "nan"], "the cache limit must be >= 0 GB"),
    (["cache", "lst"], "invalid choice: 'lst'"),
])
def test_cache_command_mistakes_are_one_line(tmp_path, capsys, args, needle):
    assert main([*args, "--cache-dir", str(tmp_path)] if args[1] != "lst" else args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err
