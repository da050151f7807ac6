"""Token corpora built in memory for the experiments: 8x8 digits as pixel tokens, the synthetic
recall task, and the ``scored`` mask that keeps unpredictable tokens out of the loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from torch_memformer.data import TokenizedCorpus, TrainStream, eval_batches
from torch_memformer.data.digits import GREY_LEVELS, digits_corpus, load_digit_images, split_digits
from torch_memformer.data.layout import (
    IGNORE_INDEX,
    contiguous_layout,
    document_layout,
    gather,
    reference_contiguous_rows,
    reference_document_rows,
)
from torch_memformer.data.recall import RecallTask, curriculum_gaps, recall_documents
from torch_memformer.evaluate import evaluate

from conftest import tiny_model


# ---------------------------------------------------------------------------- digits


def test_digits_are_17_grey_levels_in_raster_order():
    from sklearn.datasets import load_digits

    images = load_digit_images()
    assert images.shape == (1797, 64) and images.dtype == np.int64
    assert images.min() == 0 and images.max() == GREY_LEVELS - 1
    # Raster order: pixel (row r, column c) is token 8 r + c.
    assert np.array_equal(images[5].reshape(8, 8), load_digits().images[5].astype(np.int64))


def test_digits_split_is_seeded_disjoint_and_complete():
    images = load_digit_images()
    split = split_digits(images, held_out=261, seed=0)
    again = split_digits(images, held_out=261, seed=0)
    other = split_digits(images, held_out=261, seed=1)
    assert len(split.held_out) == 261 and len(split.train) == 1536
    assert np.array_equal(split.held_out_index, again.held_out_index)
    assert not np.array_equal(split.held_out_index, other.held_out_index)
    assert not set(split.train_index) & set(split.held_out_index)
    assert sorted(set(split.train_index) | set(split.held_out_index)) == list(range(1797))
    assert np.array_equal(split.held_out, images[split.held_out_index])
    corpus = digits_corpus(split.held_out)
    assert corpus.vocab_size == GREY_LEVELS and corpus.num_documents == 261
    assert (corpus.doc_lengths == 64).all() and np.array_equal(corpus.document(3), split.held_out[3])
    with pytest.raises(ValueError, match="held_out must be"):
        split_digits(images, held_out=1797, seed=0)


# ---------------------------------------------------------------------------- recall


def test_recall_documents_follow_the_format():
    task = RecallTask(num_pairs=3, num_keys=5, num_values=4, num_fillers=6, segment_len=8)
    docs = recall_documents(task, gaps=[0, 2, 5], seed=3)
    keys, values = range(0, 5), range(5, 9)
    for d, gap in enumerate([0, 2, 5]):
        doc = docs.corpus.document(d).astype(np.int64)
        assert len(doc) == (gap + 3) * 8
        pairs = dict(zip(doc[0:6:2].tolist(), doc[1:6:2].tolist()))
        assert len(pairs) == 3 and set(pairs) <= set(keys) and set(pairs.values()) <= set(values)
        query, answer = doc[(gap + 1) * 8 : (gap + 2) * 8], doc[(gap + 2) * 8 :]
        filler = np.concatenate([doc[6:8], doc[8 : (gap + 1) * 8], query[3:], answer[6:]])
        assert (filler >= 9).all() and (filler < 15).all()
        # The queries are the keys in some order; the answers repeat that order, each key with its value.
        assert sorted(query[:3].tolist()) == sorted(pairs)
        assert answer[0:6:2].tolist() == query[:3].tolist()
        assert [pairs[k] for k in answer[0:6:2].tolist()] == answer[1:6:2].tolist()
        # The scored tokens are exactly the answered values.
        start = docs.corpus.doc_offsets[d]
        mask = docs.corpus.scored[start : start + len(doc)]
        assert np.flatnonzero(mask).tolist() == docs.value_positions[d].tolist()
        assert all(pairs[doc[p - 1]] == doc[p] for p in docs.value_positions[d])
    again = recall_documents(task, gaps=[0, 2, 5], seed=3)
    assert np.array_equal(again.corpus.tokens, docs.corpus.tokens)
    assert not np.array_equal(recall_documents(task, gaps=[0, 2, 5], seed=4).corpus.tokens, docs.corpus.tokens)


def test_curriculum_holds_g0_then_ramps_to_the_largest_gap():
    segments, max_gap = 6000, 8
    gaps = curriculum_gaps(segments=segments, max_gap=max_gap, seed=0, hold=0.4, ramp=0.4)
    starts = np.concatenate([[0], np.cumsum(gaps + 3)[:-1]]) / segments  # share of the row before each doc
    assert (gaps + 3).sum() >= segments > (gaps[:-1] + 3).sum()  # just enough documents
    assert (gaps[starts < 0.4] == 0).all()
    ramp = starts[(starts >= 0.4) & (starts < 0.8)]
    assert gaps[(starts >= 0.4) & (starts < 0.8)].max() == max_gap
    cap = np.minimum(max_gap, 1 + (max_gap * (ramp - 0.4) / 0.4).astype(int))
    assert (gaps[(starts >= 0.4) & (starts < 0.8)] <= cap).all()
    assert set(gaps[starts >= 0.8].tolist()) == set(range(max_gap + 1))  # every gap up to the cap appears
    assert np.array_equal(gaps, curriculum_gaps(segments=segments, max_gap=max_gap, seed=0))
    with pytest.raises(ValueError, match="hold and ramp"):
        curriculum_gaps(segments=10, max_gap=2, seed=0, hold=0.7, ramp=0.5)


def test_tiled_curriculum_puts_the_same_gaps_on_every_training_row():
    task = RecallTask(num_pairs=2, num_keys=4, num_values=4, num_fillers=4, segment_len=8)
    steps, window_segments, rows = 6, 4, 3
    row_gaps = curriculum_gaps(segments=steps * window_segments, max_gap=3, seed=1, hold=0.3, ramp=0.4)
    docs = recall_documents(task, gaps=np.tile(row_gaps, rows), seed=5)
    stream = TrainStream(docs.corpus, batch_size=rows, segment_len=task.segment_len,
                         window=window_segments * task.segment_len, shuffle=False)
    assert stream.batches_per_epoch >= steps
    batches = [stream.next_batch() for _ in range(steps)]
    reset_BN = torch.cat([b.reset for b in batches], dim=1)
    labels_BN = torch.cat([b.labels for b in batches], dim=1)
    # Every row starts its documents (resets) at the same positions, those of one curriculum row.
    starts = np.concatenate([[0], np.cumsum(row_gaps + 3)[:-1]]) * task.segment_len
    expected = np.zeros(reset_BN.size(1), dtype=bool)
    expected[starts[starts < reset_BN.size(1)]] = True
    for row in range(rows):
        assert np.array_equal(reset_BN[row].numpy(), expected)
    # ... and only the answered values are trained on, at the same positions in every row.
    assert torch.equal((labels_BN != -100)[0], (labels_BN != -100)[rows - 1])


def test_recall_task_rejects_pairs_that_do_not_fit():
    with pytest.raises(ValueError, match="more than one segment"):
        RecallTask(num_pairs=5, segment_len=8)
    with pytest.raises(ValueError, match="num_keys"):
        RecallTask(num_pairs=4, num_keys=3)


# ---------------------------------------------------------------------------- the scored mask


def _masked_corpus() -> TokenizedCorpus:
    rng = np.random.default_rng(0)
    docs = [rng.integers(0, 20, size=n) for n in (13, 8, 21, 5)]
    scored = [rng.random(len(doc)) < 0.5 for doc in docs]
    return TokenizedCorpus.from_documents(docs, vocab_size=20, scored=scored)


def test_unscored_tokens_get_label_minus_100_in_both_layouts_and_their_references():
    corpus = _masked_corpus()
    layout = contiguous_layout(corpus, order=np.arange(4), num_rows=2, segment_len=4, round_up=True)
    block = gather(corpus, layout, rows=np.arange(2), start=0, length=layout.row_len, pad_id=0)
    reference = reference_contiguous_rows(corpus, order=[0, 1, 2, 3], num_rows=2, segment_len=4,
                                          row_len=layout.row_len, pad_id=0)
    for got, want in zip(block, reference):
        assert np.array_equal(got, want)
    documents = document_layout(corpus, num_rows=2, segment_len=4)
    block = gather(corpus, documents, rows=np.arange(2), start=0, length=documents.row_len, pad_id=0)
    for got, want in zip(block, reference_document_rows(corpus, num_rows=2, segment_len=4, pad_id=0)):
        assert np.array_equal(got, want)
    # Every scored token but each document's first is a target; nothing else is.
    expected = sum(int(corpus.scored[corpus.doc_offsets[d] + 1 : corpus.doc_offsets[d + 1]].sum()) for d in range(4))
    assert int((block.labels != IGNORE_INDEX).sum()) == expected


def test_training_and_evaluation_count_only_scored_tokens():
    corpus = _masked_corpus()
    unmasked = TokenizedCorpus(corpus.tokens, corpus.doc_offsets, corpus.doc_bytes, corpus.token_bytes)
    stream = TrainStream(corpus, batch_size=2, segment_len=4, window=8)
    plain = TrainStream(unmasked, batch_size=2, segment_len=4, window=8)
    batch, plain_batch = stream.next_batch(), plain.next_batch()
    assert torch.equal(batch.input_ids, plain_batch.input_ids) and torch.equal(batch.reset, plain_batch.reset)
    assert (batch.labels != IGNORE_INDEX).sum() < (plain_batch.labels != IGNORE_INDEX).sum()
    kept = batch.labels != IGNORE_INDEX
    assert torch.equal(batch.labels[kept], plain_batch.labels[kept])
    stats = eval_batches(corpus, batch_size=2, segment_len=4, window=8).stats
    expected = sum(int(corpus.scored[corpus.doc_offsets[d] + 1 : corpus.doc_offsets[d + 1]].sum()) for d in range(4))
    assert stats.num_targets == expected
    model = tiny_model(vocab_size=20, segment_len=4)
    assert evaluate(model, corpus, batch_size=2).num_targets == expected


def test_scored_mask_must_match_the_tokens():
    with pytest.raises(ValueError, match="scored must be a bool array"):
        TokenizedCorpus(np.zeros(4, dtype=np.uint16), np.array([0, 4]), np.array([4]), np.ones(8, dtype=np.int64),
                        scored=np.ones(3, dtype=bool))
    with pytest.raises(ValueError, match="one bool per token"):
        TokenizedCorpus.from_documents([[1, 2, 3]], vocab_size=8, scored=[[True, False]])
