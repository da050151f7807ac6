"""The token cache: built once, memory-mapped after, rebuilt when the source or tokenizer changes."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from torch_memformer.data import (
    ByteTokenizer,
    DataSpec,
    TokenizedCorpus,
    load_or_tokenize,
    open_corpus,
    tokenized_split,
    train_bpe,
)


def make_folder(root, texts):
    root.mkdir(exist_ok=True)
    for i, text in enumerate(texts):
        (root / f"doc{i:02d}.txt").write_text(text)


class RefusingTokenizer(ByteTokenizer):
    """The byte tokenizer's identity, but encoding is forbidden: proves the cache was used."""

    def encode(self, text):
        raise AssertionError("the cache should have been used")

    encode_batch = encode


def test_second_run_memory_maps_without_tokenizing(tmp_path):
    texts = ["héllo world", "", "second document\n" * 10, "x"]
    make_folder(tmp_path / "data", texts)
    spec = DataSpec(str(tmp_path / "data"), format="folder")
    first = tokenized_split(spec, "all", ByteTokenizer(), cache_dir=tmp_path / "cache")
    assert first.num_documents == 3  # the empty document is skipped
    assert [bytes(first.document(i).tolist()).decode() for i in range(3)] == [t for t in texts if t]
    assert first.doc_bytes.tolist() == [len(t.encode()) for t in texts if t]
    assert first.tokens.dtype == np.uint16
    second = tokenized_split(spec, "all", RefusingTokenizer(), cache_dir=tmp_path / "cache")
    assert isinstance(second.tokens, np.memmap)
    assert np.array_equal(second.tokens, first.tokens)
    assert np.array_equal(second.doc_offsets, first.doc_offsets)
    entries = [p for p in (tmp_path / "cache").iterdir()]
    assert len(entries) == 1 and not entries[0].name.startswith(".tmp")  # no temporary left behind
    meta = json.loads((entries[0] / "meta.json").read_text())
    assert meta["num_tokens"] == first.num_tokens and meta["empty_documents_skipped"] == 1


def test_changed_source_or_tokenizer_is_tokenized_again(tmp_path):
    make_folder(tmp_path / "data", ["one", "two"])
    spec = DataSpec(str(tmp_path / "data"), format="folder")
    tokenized_split(spec, "all", ByteTokenizer(), cache_dir=tmp_path / "cache")
    path = tmp_path / "data" / "doc01.txt"
    path.write_text("two, edited")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    with pytest.raises(AssertionError, match="cache should have been used"):
        tokenized_split(spec, "all", RefusingTokenizer(), cache_dir=tmp_path / "cache")
    fresh = tokenized_split(spec, "all", ByteTokenizer(), cache_dir=tmp_path / "cache")
    assert bytes(fresh.document(1).tolist()) == b"two, edited"
    bpe = train_bpe(["one two three"] * 5, vocab_size=260)
    again = tokenized_split(spec, "all", bpe, cache_dir=tmp_path / "cache")
    assert again.vocab_size == bpe.vocab_size
    assert len(list((tmp_path / "cache").iterdir())) == 3
    # A different split of the same source is a different entry, too.
    assert open_corpus(spec, "train").identity != open_corpus(spec, "valid").identity


def test_bpe_cache_counts_bytes(tmp_path):
    texts = ["the cat sat on the mat. " * 30, "the dog ate the hat. " * 30]
    make_folder(tmp_path / "data", texts)
    bpe = train_bpe(texts, vocab_size=300)
    corpus = tokenized_split(DataSpec(str(tmp_path / "data"), format="folder"), "all", bpe, cache_dir=None)
    assert corpus.num_tokens < corpus.num_bytes / 2
    for d in range(corpus.num_documents):
        assert int(corpus.token_bytes[corpus.document(d)].sum()) == corpus.doc_bytes[d]
    assert bpe.decode(corpus.document(0).tolist()) == texts[0]


def test_unreadable_entry_is_rebuilt(tmp_path):
    make_folder(tmp_path / "data", ["abc", "defg"])
    spec = DataSpec(str(tmp_path / "data"), format="folder")
    tokenized_split(spec, "all", ByteTokenizer(), cache_dir=tmp_path / "cache")
    (entry,) = (tmp_path / "cache").iterdir()
    (entry / "tokens.bin").write_bytes(b"\x00")  # truncated
    again = tokenized_split(spec, "all", ByteTokenizer(), cache_dir=tmp_path / "cache")
    assert bytes(again.document(1).tolist()) == b"defg"


def test_no_text_is_an_error(tmp_path):
    make_folder(tmp_path / "data", ["", ""])
    with pytest.raises(ValueError, match=r"holds no text \(2 empty document\(s\) skipped\)"):
        load_or_tokenize(open_corpus(DataSpec(str(tmp_path / "data")), "all"), ByteTokenizer(), cache_dir=None)


def test_out_of_vocabulary_ids_are_reported():
    corpus = TokenizedCorpus.from_documents([[1, 2, 3], [4, 300, 5]], vocab_size=512, name="toy")
    corpus.check_vocab(512)
    with pytest.raises(ValueError, match="token id 300 .*token 4 of toy.* outside the model's vocabulary of 256.*"
                                         "at least 512"):
        corpus.check_vocab(256)
    with pytest.raises(ValueError, match="token id 600 is outside the vocabulary"):
        TokenizedCorpus.from_documents([[600]], vocab_size=512)
