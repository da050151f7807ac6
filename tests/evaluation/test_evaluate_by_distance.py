"""``evaluate(by_distance=True)``: the sums split by segments since the state was last reset add up
to the totals, count the right tokens per bucket, and show the memory only where it can act."""

from __future__ import annotations

import pytest
import torch

from torch_memformer.data import TokenizedCorpus
from torch_memformer.distance_profile import bucket_of, bucket_range
from torch_memformer.evaluate import evaluate

from conftest import tiny_model

VOCAB = 50


def _corpus(lengths) -> TokenizedCorpus:
    generator = torch.Generator().manual_seed(11)
    docs = [torch.randint(0, VOCAB, (n,), generator=generator).tolist() for n in lengths]
    return TokenizedCorpus.from_documents(docs, vocab_size=VOCAB)


def test_buckets_are_powers_of_two_of_the_distance():
    distances = torch.tensor([0, 1, 2, 3, 4, 7, 8, 15, 16, 2**40 - 1, 2**40])
    assert bucket_of(distances).tolist() == [0, 1, 2, 2, 3, 3, 4, 4, 5, 40, 41]
    assert [bucket_range(b) for b in range(4)] == [(0, 0), (1, 1), (2, 3), (4, 7)]
    for d in range(300):  # every distance lies in the range of its own bucket
        first, last = bucket_range(int(bucket_of(torch.tensor([d]))[0]))
        assert first <= d <= last


def test_buckets_add_up_to_the_plain_evaluation():
    torch.manual_seed(0)
    model = tiny_model().double()  # segment_len 8
    corpus = _corpus((37, 9, 130, 21, 75))
    for layout, batch_size in (("contiguous", 2), ("documents", 3)):
        plain = evaluate(model, corpus, batch_size=batch_size, layout=layout)
        split = evaluate(model, corpus, batch_size=batch_size, layout=layout, by_distance=True)
        assert plain.by_distance is None and "by_distance" not in plain.to_dict()
        assert split.loss_sum == pytest.approx(plain.loss_sum, rel=1e-12)
        buckets = split.by_distance
        assert sum(b.num_targets for b in buckets) == plain.num_targets
        assert sum(b.num_target_bytes for b in buckets) == plain.num_target_bytes
        assert sum(b.loss_sum for b in buckets) == pytest.approx(plain.loss_sum, rel=1e-12)
        assert [b.first_segment for b in buckets] == [0, 1, 2, 4, 8, 16][: len(buckets)] and len(buckets) >= 5
        assert split.to_dict()["by_distance"][0]["bits_per_byte"] == buckets[0].bits_per_byte


def test_one_document_per_row_fills_the_buckets_it_reaches():
    torch.manual_seed(0)
    model = tiny_model()
    # One document of 10 segments of 8: its first token is never scored.
    result = evaluate(model, _corpus((80,)), batch_size=1, layout="documents", by_distance=True)
    assert [(b.first_segment, b.last_segment, b.num_targets) for b in result.by_distance] == [
        (0, 0, 7), (1, 1, 8), (2, 3, 16), (4, 7, 32), (8, 15, 16)]


def test_the_memory_differs_only_from_the_third_segment_on():
    """Segment 0 reads a fresh state and segment 1 the encoding of segment 0, which read M_0 either
    way: resetting the memory can change nothing there, and changes what comes after."""
    torch.manual_seed(0)
    model = tiny_model().double()
    corpus = _corpus((120, 64))
    carried = evaluate(model, corpus, batch_size=2, layout="documents", by_distance=True).by_distance
    reset = evaluate(model, corpus, batch_size=2, layout="documents", by_distance=True,
                     reset_memory=True).by_distance
    for near_c, near_r in zip(carried[:2], reset[:2]):
        assert near_c.loss_sum == pytest.approx(near_r.loss_sum, rel=1e-12)
    assert all(abs(c.loss_sum - r.loss_sum) > 1e-9 * abs(r.loss_sum) for c, r in zip(carried[2:], reset[2:]))
