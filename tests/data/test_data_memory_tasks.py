"""The synthetic memory tasks' generators: copy after a gap and value tracking (recall has its own
tests in test_data_synthetic.py). Each test reads the documents back and checks the format."""

from __future__ import annotations

import numpy as np
import pytest

from torch_memformer.data.copy_after_gap import CopyTask, copy_documents
from torch_memformer.data.value_tracking import TrackingTask, tracking_documents


def _doc(docs, d):
    offsets = docs.corpus.doc_offsets
    return np.asarray(docs.corpus.tokens[offsets[d] : offsets[d + 1]], dtype=np.int64)


def test_copy_documents_repeat_the_payload_in_order_after_the_gap():
    task = CopyTask()
    L, P = task.segment_len, task.payload_len
    docs = copy_documents(task, gaps=[0, 1, 5], seed=3)
    for d, gap in enumerate([0, 1, 5]):
        doc = _doc(docs, d)
        assert len(doc) == (gap + 3) * L == task.document_len(gap)
        assert doc[0] == task.begin_token
        payload = doc[1 : 1 + P]
        assert np.all(payload < task.num_symbols)
        cue, answer = (gap + 1) * L, (gap + 2) * L
        assert doc[cue] == task.recall_token
        np.testing.assert_array_equal(doc[answer : answer + P], payload)
        np.testing.assert_array_equal(docs.value_positions[d], answer + np.arange(P))
        # Everything else is filler, and only the reproduced payload is scored.
        special = np.zeros(len(doc), dtype=bool)
        special[[0, cue]] = True
        special[1 : 1 + P] = special[answer : answer + P] = True
        assert np.all((doc[~special] >= task.num_symbols) & (doc[~special] < task.begin_token))
        scored = docs.corpus.scored[docs.corpus.doc_offsets[d] : docs.corpus.doc_offsets[d + 1]]
        assert np.flatnonzero(scored).tolist() == docs.value_positions[d].tolist()


def test_copy_documents_are_seeded():
    task = CopyTask()
    a, b = copy_documents(task, gaps=[2, 2], seed=7), copy_documents(task, gaps=[2, 2], seed=7)
    np.testing.assert_array_equal(a.corpus.tokens, b.corpus.tokens)
    c = copy_documents(task, gaps=[2, 2], seed=8)
    assert not np.array_equal(a.corpus.tokens, c.corpus.tokens)
    # The two documents of one call differ.
    assert not np.array_equal(_doc(a, 0), _doc(a, 1))


def test_tracking_documents_ask_for_the_latest_value():
    task = TrackingTask()
    L = task.segment_len
    docs = tracking_documents(task, gaps=[0, 2, 4], seed=5, updates=[1, 2, 3])
    for d, (gap, count) in enumerate(zip([0, 2, 4], [1, 2, 3])):
        doc = _doc(docs, d)
        assert len(doc) == (count + gap + 2) * L
        sets = np.flatnonzero(doc == task.set_token)
        # One SET per update segment, each followed by its value, none after the updates.
        assert (sets // L).tolist() == list(range(count))
        values = doc[sets + 1]
        assert np.all(values < task.num_values)
        query, answer = (count + gap) * L, (count + gap + 1) * L
        assert doc[query] == task.query_token and np.count_nonzero(doc == task.query_token) == 1
        assert doc[answer] == values[-1]
        assert docs.value_positions[d].tolist() == [answer]


def test_tracking_test_documents_share_one_length_per_gap():
    task = TrackingTask()
    docs = task.documents(gaps=[3] * 5, seed=0)
    assert len(set(np.diff(docs.corpus.doc_offsets).tolist())) == 1
    training = task.training_documents(gaps=[3] * 50, seed=0)
    counts = [np.count_nonzero(_doc(training, d) == task.set_token) for d in range(50)]
    assert set(counts) == set(range(1, task.max_updates + 1))


@pytest.mark.parametrize("make, message", [
    (lambda: CopyTask(payload_len=16, segment_len=16), "payload"),
    (lambda: CopyTask(num_symbols=0), "num_symbols"),
    (lambda: TrackingTask(max_updates=0), "max_updates"),
    (lambda: tracking_documents(TrackingTask(), gaps=[1], seed=0, updates=[4]), "updates"),
    (lambda: copy_documents(CopyTask(), gaps=[-1], seed=0), "gaps"),
    (lambda: copy_documents(CopyTask(), gaps=[1], seed=-2), "seed"),
])
def test_bad_task_settings_name_the_problem(make, message):
    with pytest.raises(ValueError, match=message):
        make()
