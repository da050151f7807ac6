"""Fuzzing the tokenizers: any Unicode text round-trips exactly through the byte tokenizer and
a trained BPE, encode_batch agrees with encode, every id is in the vocabulary and the ids spell
the text's UTF-8 bytes; any byte string decodes (invalid UTF-8 as U+FFFD, like Python's
``errors="replace"``); ids outside the vocabulary are a ValueError."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fuzz_support import examples
from torch_memformer.data import ByteTokenizer, train_bpe

# Hundreds of generated examples per test: the fast subset (-m "not slow") leaves them to the full run.
pytestmark = pytest.mark.slow

# Any code point but lone surrogates (no UTF-8 encoding; the readers replace them first,
# text_files.clean_surrogates), with the awkward ones made likely: whitespace runs (the BPE
# pre-tokenizer splits on them), newlines, combining marks, astral characters.
TEXT = st.text(st.one_of(st.characters(blacklist_categories=["Cs"]),
                         st.sampled_from([" ", "\n", "\r", "\t", "\u00a0", "\u0301", "\U0001F600", "\x00", "é"])),
               max_size=200)


@pytest.fixture(scope="module")
def bpe():
    texts = ["the quick brown fox jumps over the lazy dog\n", "def main():\n    return 0\n", "héllo wörld 😀 " * 3]
    return train_bpe(texts * 5, vocab_size=300, min_frequency=2)


@settings(max_examples=examples(3))
@given(text=TEXT)
def test_byte_tokenizer_round_trip(text):
    tokenizer = ByteTokenizer()
    ids = tokenizer.encode(text)
    assert bytes(ids) == text.encode("utf-8")
    assert tokenizer.decode(ids) == text
    assert tokenizer.encode_batch([text])[0].tolist() == ids


@settings(max_examples=examples(3))
@given(text=TEXT)
def test_bpe_round_trip(bpe, text):
    ids = bpe.encode(text)
    assert all(0 <= i < bpe.vocab_size for i in ids)
    assert bpe.decode(ids) == text
    assert bpe.encode_batch([text, "", text])[2].tolist() == ids
    # The byte lengths bits per byte divides by add up to the text's UTF-8 length.
    assert int(bpe.token_byte_lengths()[np.asarray(ids, dtype=np.int64)].sum()) == len(text.encode("utf-8"))


@settings(max_examples=examples(3))
@given(data=st.binary(max_size=200))
def test_any_bytes_decode_like_python(bpe, data):
    assert ByteTokenizer().decode(list(data)) == data.decode("utf-8", errors="replace")
    # BPE: the ids of the bytes' latin-1 spelling are valid ids and decode without raising.
    text = bpe.decode(bpe.encode(data.decode("latin-1")))
    assert text == data.decode("latin-1")


@settings(max_examples=examples())
@given(ids=st.lists(st.integers(), max_size=20))
def test_ids_outside_the_vocabulary_are_a_value_error(bpe, ids):
    for tokenizer in (ByteTokenizer(), bpe):
        inside = all(0 <= i < tokenizer.vocab_size for i in ids)
        if inside:
            assert isinstance(tokenizer.decode(ids), str)
        else:
            with pytest.raises(ValueError, match="outside"):
                tokenizer.decode(ids)


@settings(max_examples=examples(3))
@given(text=TEXT, piece_chars=st.integers(1, 16))
def test_bpe_encoding_in_pieces_equals_one_call(bpe, text, piece_chars):
    """Long texts are encoded in pieces cut before a newline that precedes a non-space; the cut
    must never change the ids (tokenizers.py, _SAFE_CUT). Small pieces make every text long."""
    import torch_memformer.data.tokenizers as tokenizers

    whole = bpe.backend.encode(text, add_special_tokens=False).ids
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tokenizers, "_BPE_PIECE_CHARS", piece_chars)
        assert bpe.encode(text) == whole
        assert bpe.encode_batch([text])[0].tolist() == whole
