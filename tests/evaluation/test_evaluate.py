"""``evaluate`` against a plain reference (each document read whole by ``forward``), its memory-reset
mode, and streaming generation (incremental decoding, and agreement with ``model.generate``)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from torch_memformer import registry
from torch_memformer.data import ByteTokenizer, TokenizedCorpus
from torch_memformer.evaluate import evaluate
from torch_memformer.generate import IncrementalDecoder, generate_text

from conftest import tiny_model

VOCAB = 50
LENGTHS = (37, 9, 64, 21, 50)  # segment_len 8: documents end mid-segment, one is a single token short of 8x


def _corpus() -> TokenizedCorpus:
    generator = torch.Generator().manual_seed(5)
    docs = [torch.randint(0, VOCAB, (n,), generator=generator).tolist() for n in LENGTHS]
    return TokenizedCorpus.from_documents(docs, vocab_size=VOCAB)


def _reference_loss_sum(model, corpus: TokenizedCorpus) -> float:
    """Each document from a fresh state in one forward call; the shifted loss scores all but its first token."""
    total = 0.0
    for d in range(corpus.num_documents):  # (no_grad by the caller)
        ids = torch.as_tensor(corpus.document(d).astype("int64"))[None]
        logits = model(ids).logits[0, :-1]
        total += float(F.cross_entropy(logits.double(), ids[0, 1:], reduction="sum"))
    return total


@pytest.mark.parametrize("name", ["memformer", "transformer-xl"])
def test_evaluate_scores_every_token_once_like_a_whole_document_forward(name):
    torch.manual_seed(0)
    if name == "memformer":
        model = tiny_model().double()
    else:
        model = registry.build_model(name, dict(vocab_size=VOCAB, d_model=32, num_heads=4, d_ff=64, num_layers=2,
                                                mem_len=8, segment_len=8)).double().eval()
    corpus = _corpus()
    with torch.no_grad():
        expected = _reference_loss_sum(model, corpus)
    for batch_size, layout, segments in [(1, "contiguous", 1), (1, "documents", 3), (2, "documents", 2),
                                         (3, "documents", 1)]:
        result = evaluate(model, corpus, batch_size=batch_size, layout=layout, segments_per_batch=segments)
        assert result.num_targets == sum(n - 1 for n in LENGTHS)
        assert result.num_target_bytes == result.num_targets  # byte-like table: one byte per token
        assert result.loss_sum == pytest.approx(expected, rel=1e-10), (batch_size, layout)
    assert result.bits_per_byte == pytest.approx(expected / math.log(2) / result.num_target_bytes)
    assert result.perplexity == pytest.approx(math.exp(expected / result.num_targets))


def test_memory_reset_keeps_only_the_previous_segment():
    corpus = _corpus()
    model = tiny_model().double()
    carried = evaluate(model, corpus, batch_size=1, layout="documents")
    reset = evaluate(model, corpus, batch_size=1, layout="documents", reset_memory=True)
    assert reset.num_targets == carried.num_targets and reset.reset_memory and not carried.reset_memory
    # Documents of 37..64 tokens span 5..8 segments: from the third segment on, the memory
    # carries what the reset run has lost.
    assert abs(reset.loss_sum - carried.loss_sum) > 1e-3

    # Two segments or fewer: segment 0 is encoded from M_0 either way and segment 1's decoder
    # reads that encoding, so resetting the memory changes nothing.
    short = TokenizedCorpus.from_documents([list(range(1, 17)), list(range(20, 29))], vocab_size=VOCAB)
    assert evaluate(model, short, batch_size=1, reset_memory=True).loss_sum == pytest.approx(
        evaluate(model, short, batch_size=1).loss_sum, rel=1e-12)

    # Without a memory there is nothing to reset.
    no_memory = tiny_model(use_memory=False).double()
    assert evaluate(no_memory, corpus, batch_size=2, reset_memory=True).loss_sum == pytest.approx(
        evaluate(no_memory, corpus, batch_size=2).loss_sum, rel=1e-12)


def test_evaluate_arguments_are_checked():
    model = tiny_model()
    baseline = registry.build_model("transformer", dict(vocab_size=VOCAB, d_model=32, num_heads=4, segment_len=8))
    with pytest.raises(ValueError, match="has none to reset"):
        evaluate(baseline, _corpus(), reset_memory=True)
    with pytest.raises(ValueError, match="max_batches"):
        evaluate(model, _corpus(), max_batches=0)
    big = TokenizedCorpus.from_documents([[0, 60, 3]], vocab_size=64)
    with pytest.raises(ValueError, match="outside the model's vocabulary of 50"):
        evaluate(model, big)
    assert evaluate(model, _corpus(), batch_size=1, max_batches=1).num_batches == 1
    assert model.training is False


def test_incremental_decoder_never_splits_a_character():
    tokenizer = ByteTokenizer()
    text = "naïve café: 3€ → 🙂 done"
    decoder = IncrementalDecoder(tokenizer)
    pieces = [decoder.push([byte]) for byte in text.encode("utf-8")] + [decoder.flush()]
    assert "".join(pieces) == text
    assert not any("\ufffd" in piece for piece in pieces)
    assert pieces[text.encode("utf-8").index("🙂".encode("utf-8")) + 1] == ""  # held back mid-character
    # Bytes that never complete a character still come out (as U+FFFD), not held forever.
    broken = IncrementalDecoder(tokenizer)
    out = "".join(broken.push([b]) for b in b"a\xe2\x82b" + b"c" * 10) + broken.flush()
    assert out == (b"a\xe2\x82b" + b"c" * 10).decode("utf-8", errors="replace")


def test_generate_text_streams_what_model_generate_samples():
    torch.manual_seed(0)
    model = registry.build_model("memformer", dict(vocab_size=256, d_model=32, num_heads=4, d_ff=64,
                                                   num_encoder_layers=1, num_decoder_layers=1, num_slots=4,
                                                   segment_len=8)).double().eval()
    tokenizer = ByteTokenizer()
    prompt = "stream me"
    # Greedy: chunked calls carrying the state must pick the same tokens as one call (crossing
    # several segment boundaries, 30 tokens with segments of 8).
    pieces = list(generate_text(model, tokenizer, prompt, max_new_tokens=30, temperature=0.0, chunk_tokens=7))
    ids = torch.tensor([list(prompt.encode())])
    expected = model.generate(ids, 30, temperature=0.0).tokens[0].tolist()
    assert "".join(pieces) == tokenizer.decode(expected)
    # Sampling with a seed is repeatable.
    a = "".join(generate_text(model, tokenizer, prompt, max_new_tokens=20, temperature=1.0, seed=4))
    b = "".join(generate_text(model, tokenizer, prompt, max_new_tokens=20, temperature=1.0, seed=4))
    assert a == b
    with pytest.raises(ValueError, match="prompt is empty"):
        list(generate_text(model, tokenizer, "", max_new_tokens=3))
