"""Evaluation batches: every real token once, nothing dropped, byte counts for bits per byte."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from torch_memformer.data import IGNORE_INDEX, TokenizedCorpus, eval_batches
from torch_memformer.data.layout import reference_contiguous_rows, reference_document_rows


def random_corpus(seed: int, num_docs: int = 23, max_len: int = 70) -> TokenizedCorpus:
    rng = np.random.default_rng(seed)
    docs = [rng.integers(1, 256, size=int(rng.integers(1, max_len + 1))) for _ in range(num_docs)]
    # A token's byte count varies (as with BPE), so byte totals are not token totals.
    token_bytes = rng.integers(1, 5, size=256)
    return TokenizedCorpus.from_documents(docs, vocab_size=256, token_bytes=token_bytes, name=f"random{seed}")


def rows_of(batches) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each row's batches joined: (B, num_batches * N)."""
    return tuple(torch.cat([b[i] for b in batches], dim=1) for i in range(3))


@pytest.mark.parametrize("layout", ["contiguous", "documents"])
@pytest.mark.parametrize("batch_size, segment_len, window", [(3, 8, 16), (4, 5, 10), (1, 4, 12), (7, 16, 32)])
def test_every_real_token_exactly_once(layout, batch_size, segment_len, window):
    corpus = random_corpus(batch_size * segment_len)
    batches = list(eval_batches(corpus, batch_size=batch_size, segment_len=segment_len, window=window, layout=layout))
    ids, labels, reset = rows_of(batches)
    assert all(b.input_ids.shape == (batch_size, window) for b in batches)
    # Pad id 0 never occurs in the documents, so the non-zero ids are exactly the real tokens.
    real = ids != 0
    assert int(real.sum()) == corpus.num_tokens
    assert sorted(ids[real].tolist()) == sorted(corpus.tokens.tolist())
    # Resets only at segment boundaries; the scored tokens are the real ones minus each stream's first.
    assert torch.all(torch.nonzero(reset, as_tuple=True)[1] % segment_len == 0)
    assert torch.all(labels[~real] == IGNORE_INDEX) and torch.all(labels[reset] == IGNORE_INDEX)
    assert torch.equal(labels[real & ~reset], ids[real & ~reset])
    first_tokens = int((real & reset).sum())
    assert sum(b.num_targets for b in batches) == corpus.num_tokens - first_tokens
    scored = labels[labels != IGNORE_INDEX].numpy()
    assert sum(b.num_target_bytes for b in batches) == int(corpus.token_bytes[scored].sum())
    stats = eval_batches(corpus, batch_size=batch_size, segment_len=segment_len, window=window, layout=layout).stats
    assert (stats.num_tokens, stats.num_targets) == (corpus.num_tokens, corpus.num_tokens - first_tokens)
    assert stats.num_batches == len(batches)
    # Nothing dropped, the last batch filled out with padding: exactly enough batches for the longest row.
    last_real = max(int(torch.nonzero(row).max()) for row in real if row.any())
    assert (len(batches) - 1) * window <= last_real < len(batches) * window


def test_documents_layout_reads_each_document_whole_from_its_start():
    corpus = random_corpus(5)
    for batch_size in (1, 2, 5):
        ids, labels, reset = rows_of(list(eval_batches(corpus, batch_size=batch_size, segment_len=8, window=16,
                                                       layout="documents")))
        ref = reference_document_rows(corpus, num_rows=batch_size, segment_len=8, pad_id=0)
        width = ref.input_ids.shape[1]
        assert torch.equal(ids[:, :width], torch.from_numpy(ref.input_ids))
        assert torch.equal(labels[:, :width], torch.from_numpy(ref.labels))
        assert torch.equal(reset[:, :width], torch.from_numpy(ref.reset))
        assert torch.all(ids[:, width:] == 0)
        # Only documents' first tokens go unscored, whatever the batch size: results cannot depend on it.
        assert int((labels != IGNORE_INDEX).sum()) == corpus.num_tokens - corpus.num_documents


def test_contiguous_layout_matches_the_training_reference():
    corpus = random_corpus(6)
    batches = eval_batches(corpus, batch_size=3, segment_len=4, window=8)
    ids, labels, reset = rows_of(list(batches))
    padded = int(sum(-(-len(corpus.document(d)) // 4) * 4 for d in range(corpus.num_documents)))
    row_len = -(-padded // 4 // 3) * 4
    ref = reference_contiguous_rows(corpus, order=list(range(corpus.num_documents)), num_rows=3, segment_len=4,
                                    row_len=row_len, pad_id=0)
    assert torch.equal(ids[:, :row_len], torch.from_numpy(ref.input_ids))
    assert torch.equal(labels[:, :row_len], torch.from_numpy(ref.labels))
    assert torch.equal(reset[:, :row_len], torch.from_numpy(ref.reset))


@pytest.mark.parametrize("layout", ["contiguous", "documents"])
def test_ranks_split_the_rows_and_stay_in_step(layout):
    corpus = random_corpus(7)
    whole = eval_batches(corpus, batch_size=4, segment_len=4, window=8, layout=layout)
    ranks = [eval_batches(corpus, batch_size=2, segment_len=4, window=8, layout=layout, rank=r, world_size=2)
             for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == len(whole)
    for full, part0, part1 in zip(whole, *ranks):
        for i in range(3):
            assert torch.equal(torch.cat([part0[i], part1[i]]), full[i])
    assert sum(r.stats.num_target_bytes for r in ranks) == whole.stats.num_target_bytes


def test_errors():
    corpus = random_corpus(8)
    with pytest.raises(ValueError, match="layout must be 'contiguous' or 'documents'"):
        eval_batches(corpus, batch_size=1, segment_len=4, window=8, layout="rows")
    with pytest.raises(ValueError, match="must be a multiple of segment_len"):
        eval_batches(corpus, batch_size=1, segment_len=4, window=6)
    with pytest.raises(ValueError, match="outside the model's vocabulary of 100"):
        eval_batches(corpus, batch_size=1, segment_len=4, window=8, vocab_size=100)
    with pytest.raises(ValueError, match="pad_id must be a valid token id"):
        eval_batches(corpus, batch_size=1, segment_len=4, window=8, pad_id=256)
