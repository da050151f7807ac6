"""Tokenizers: byte and BPE round trips, save/load, byte counts for bits per byte."""

from __future__ import annotations

import numpy as np
import pytest

from torch_memformer.data import BPETokenizer, ByteTokenizer, load_tokenizer, resolve_tokenizer, train_bpe
from torch_memformer.data import tokenizers as tokenizers_module

TEXTS = [
    "The quick brown fox jumps over the lazy dog.\nThe dog sleeps.\n" * 20,
    "def f(x):\n    return x * 2  # double\n\nprint(f(21))\n" * 20,
    "Ünïcödé, 日本語, emoji \U0001f600 and tabs\tand CRLF\r\n" * 5,
]
ODD = "never seen: Ωμέγα \U0001f680 \x00 nul, lone\r and trailing space "


@pytest.fixture(scope="module")
def bpe() -> BPETokenizer:
    return train_bpe(TEXTS, vocab_size=320, min_frequency=2)


def test_byte_tokenizer_round_trip_and_bytes():
    tok = ByteTokenizer()
    ids = tok.encode(ODD)
    assert ids == list(ODD.encode("utf-8"))
    assert tok.decode(ids) == ODD
    assert [a.tolist() for a in tok.encode_batch([ODD, ""])] == [ids, []]
    assert int(tok.token_byte_lengths()[ids].sum()) == len(ODD.encode("utf-8"))


def test_bpe_trains_merges_and_round_trips(bpe):
    assert 256 < bpe.vocab_size <= 320
    for text in TEXTS + [ODD, ""]:
        ids = bpe.encode(text)
        assert bpe.decode(ids) == text
        # Bits per byte needs each token's UTF-8 length; they must add up to the text's.
        assert int(bpe.token_byte_lengths()[ids].sum()) == len(text.encode("utf-8"))
    # Merges were learned: common text takes fewer tokens than bytes.
    assert len(bpe.encode(TEXTS[0])) < len(TEXTS[0].encode("utf-8")) / 2
    assert [a.tolist() for a in bpe.encode_batch(TEXTS)] == [bpe.encode(t) for t in TEXTS]


def test_bpe_save_load_gives_identical_ids(bpe, tmp_path):
    bpe.save(tmp_path / "tok")
    loaded = load_tokenizer(tmp_path / "tok")
    assert isinstance(loaded, BPETokenizer)
    assert loaded.vocab_size == bpe.vocab_size
    assert loaded.identity() == bpe.identity()
    for text in TEXTS + [ODD]:
        assert loaded.encode(text) == bpe.encode(text)
    assert isinstance(resolve_tokenizer(tmp_path / "tok"), BPETokenizer)


def test_byte_tokenizer_save_load(tmp_path):
    ByteTokenizer().save(tmp_path)
    assert isinstance(load_tokenizer(tmp_path), ByteTokenizer)
    assert isinstance(resolve_tokenizer("byte"), ByteTokenizer)


def test_long_text_is_encoded_in_pieces_without_changing_ids(bpe, monkeypatch):
    text = "".join(f"line {i}: some words, more words\n  indented {i}\n\n" for i in range(200))
    whole = bpe.encode(text)
    monkeypatch.setattr(tokenizers_module, "_BPE_PIECE_CHARS", 97)
    assert len(tokenizers_module._pieces(text, 97)) > 10
    assert bpe.encode(text) == whole
    assert np.concatenate(bpe.encode_batch([text])).tolist() == whole


def test_identity_changes_with_the_vocabulary(bpe):
    other = train_bpe(TEXTS, vocab_size=300)
    assert other.identity() != bpe.identity()
    assert ByteTokenizer().identity() != bpe.identity()


def test_out_of_vocabulary_ids_are_rejected(bpe):
    with pytest.raises(ValueError, match=r"token id 256 is outside the byte tokenizer's vocabulary \[0, 256\)"):
        ByteTokenizer().decode([65, 256])
    with pytest.raises(ValueError, match=f"token id {bpe.vocab_size} is outside the bpe"):
        bpe.decode([bpe.vocab_size])


def test_bad_training_arguments():
    with pytest.raises(ValueError, match="vocab_size must be an integer in \\[256"):
        train_bpe(TEXTS, vocab_size=100)
    with pytest.raises(ValueError, match="no text"):
        train_bpe(["", ""], vocab_size=300)


def test_load_errors(tmp_path):
    with pytest.raises(ValueError, match="no tokenizer in .*tokenizer_meta.json is missing"):
        load_tokenizer(tmp_path)
    (tmp_path / "tokenizer_meta.json").write_text('{"kind": "wordpiece"}')
    with pytest.raises(ValueError, match="unknown tokenizer kind 'wordpiece'"):
        load_tokenizer(tmp_path)
    with pytest.raises(ValueError, match="neither 'byte' nor a directory"):
        resolve_tokenizer(tmp_path / "missing")
