"""The memory analysis (``torch_memformer.analysis``): the writer attention recomputed outside the
model writes exactly the model's own next memory, traces agree with the model's stream, and the
slot statistics count what they say."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import tiny_model
from torch_memformer.analysis import analyze_slots, spearman, trace_memory, writer_attention
from torch_memformer.analysis.slots import summarize
from torch_memformer.data import TokenizedCorpus


def _tokens(batch: int, n: int, seed: int = 3) -> torch.Tensor:
    return torch.randint(0, 50, (batch, n), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("changes", [{}, {"write_heads": "single"}, {"write_temperature": 1.0}, {"forgetting": False}])
def test_recomputed_write_equals_the_models_next_memory(changes):
    model = tiny_model(**changes).double()
    tokens = _tokens(2, 3 * 8)
    # A memory that has already been written (not the initial one), then one more segment.
    memory = model.advance(tokens[:, :16], state=None).memory
    segment = tokens[:, 16:]
    hidden = model.encode(segment, memory)
    attention = writer_attention(model, memory, hidden)
    _, expected = model.encode_and_write(segment, memory)
    torch.testing.assert_close(attention.next_memory_BSD, expected, rtol=0, atol=1e-12)
    heads = 4 if changes.get("write_heads", "multi") == "multi" else 1
    assert attention.keep_BHS.shape == (2, heads, 6) and attention.take_BHST.shape == (2, heads, 6, 8)
    total = attention.keep_BHS + attention.take_BHST.sum(-1)
    torch.testing.assert_close(total, torch.ones_like(total), rtol=0, atol=1e-12)


def test_recomputed_write_matches_the_fused_float32_path():
    model = tiny_model()  # float32, attention_impl "sdpa": the writer runs one fused kernel
    tokens = _tokens(3, 8)
    memory = model.initial_memory().expand(3, -1, -1)
    attention = writer_attention(model, memory, model.encode(tokens, memory))
    torch.testing.assert_close(attention.next_memory_BSD, model.encode_and_write(tokens, memory)[1],
                               rtol=0, atol=1e-5)


def test_trace_follows_the_models_stream():
    model = tiny_model().double()
    tokens = _tokens(2, 3 * 8 + 5)  # a partial last segment is never written
    trace = trace_memory(model, tokens)
    assert trace.keep_BPHS.shape == (2, 3, 4, 6) and trace.num_segments == 3
    torch.testing.assert_close(trace.keep_BPS, trace.keep_BPHS.mean(dim=2))
    assert bool((trace.keep_BPS >= 0).all()) and bool((trace.keep_BPS <= 1).all())
    torch.testing.assert_close(trace.memory_BSD, model.advance(tokens, state=None).memory, rtol=0, atol=1e-12)


def test_trace_refuses_what_it_cannot_trace():
    with pytest.raises(ValueError, match="at least one whole segment of 8 tokens"):
        trace_memory(tiny_model(), _tokens(1, 7))
    with pytest.raises(ValueError, match="no slots to analyse"):
        trace_memory(tiny_model(use_memory=False), _tokens(1, 8))
    with pytest.raises(ValueError, match="token ids must lie in 0..49"):
        trace_memory(tiny_model(), torch.full((1, 8), 50))


def test_analyze_slots_counts_shares_and_groups():
    model = tiny_model()
    generator = np.random.default_rng(0)
    lengths = [8 * 12, 8 * 3 + 2, 5, 8 * 20]  # the third is shorter than a segment: skipped
    corpus = TokenizedCorpus.from_documents([generator.integers(0, 50, n) for n in lengths], vocab_size=50)
    analysis = analyze_slots(model, corpus, max_segments=10)
    assert analysis.document == 3  # the longest by default
    assert analysis.documents == [0, 1, 3] and analysis.segments == [10, 3, 10]
    assert analysis.document_keep_PHS.shape == (10, 4, 6) and analysis.document_keep_PS.shape == (10, 6)
    assert analysis.documents_P.tolist() == [3, 3, 3] + [2] * 7
    # The shares are recomputed here from the traces themselves.
    traces = {d: trace_memory(model, torch.as_tensor(corpus.document(d)[: p * 8], dtype=torch.long)[None])
              for d, p in zip(analysis.documents, analysis.segments)}
    keep_at_0 = np.stack([t.keep_BPS[0, 0].numpy() for t in traces.values()])
    assert analysis.keep_share_P[0] == pytest.approx((keep_at_0 > 0.5).mean())
    pairs_at_1 = np.stack([t.keep_BPHS[0, 1].numpy() for t in traces.values()])
    assert analysis.pair_overwrite_share_P[1] == pytest.approx((pairs_at_1 < 0.1).mean())
    np.testing.assert_allclose(analysis.document_keep_PHS, traces[3].keep_BPHS[0].numpy(), atol=1e-6)
    np.testing.assert_allclose(analysis.head_first_keep_H, np.stack([t.keep_BPHS[0, 0].numpy()
                                                                     for t in traces.values()]).mean(axis=(0, 2)),
                               atol=1e-6)
    often, rarely = analysis.often_overwritten, analysis.rarely_overwritten
    assert len(often) == len(rarely) == 1 and not set(often) & set(rarely)
    assert analysis.slot_mean_keep_S[often[0]] == analysis.slot_mean_keep_S.min()
    np.testing.assert_allclose(analysis.bias_norm_S, model.memory_norm.bias().detach().norm(dim=-1).numpy(),
                               rtol=1e-6)
    assert analysis.summary["mid_document_from_segment"] == 8
    assert set(analysis.to_dict()) >= {"document_keep_PHS", "document_keep_PS", "keep_share_P", "bias_norm_S",
                                       "head_mid_keep_H", "summary"}
    # A chosen document is traced even beyond max_documents.
    assert analyze_slots(model, corpus, document=1, max_documents=1, max_segments=4).documents == [0, 1]


def test_analyze_slots_refuses_bad_documents():
    model = tiny_model()
    corpus = TokenizedCorpus.from_documents([[1] * 16, [2] * 3], vocab_size=50)
    with pytest.raises(ValueError, match="index 0..1"):
        analyze_slots(model, corpus, document=2)
    with pytest.raises(ValueError, match="less than one segment"):
        analyze_slots(model, corpus, document=1)
    with pytest.raises(ValueError, match="max_segments"):
        analyze_slots(model, corpus, max_segments=0)


def test_summary_groups_slots_by_how_often_they_are_overwritten():
    # Slot 0 is always overwritten, slot 3 always kept; bias norms rise with overwriting.
    keep_PS = np.tile(np.array([[0.05, 0.3, 0.6, 0.95]]), (12, 1))
    keep_PS[0] = 0.0  # a document's first write: every slot takes new content
    analysis = summarize({0: keep_PS[:, None, :]}, np.array([3.0, 2.0, 1.5, 1.0]), document=0)
    assert analysis.often_overwritten == [0] and analysis.rarely_overwritten == [3]
    assert analysis.summary["bias_norm_ratio"] == pytest.approx(3.0)
    assert analysis.summary["spearman_take_vs_bias_norm"] == pytest.approx(1.0)
    assert analysis.summary["first_write_overwrite_share"] == 1.0
    assert analysis.summary["mid_document_keep_share"] == pytest.approx(0.5)
    assert analysis.summary["mid_document_overwrite_share"] == pytest.approx(0.25)
    np.testing.assert_allclose(analysis.slot_overwrite_rate_S, [1.0, 0.0, 0.0, 0.0])


def test_spearman():
    assert spearman([1, 2, 3, 4], [10, 20, 25, 100]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 1, 2, 3], [1, 2, 3, 4]) == pytest.approx(np.corrcoef([0.5, 0.5, 2, 3], [0, 1, 2, 3])[0, 1])
    assert spearman([1, 1, 1], [1, 2, 3]) is None


def test_summary_tells_heads_that_keep_from_heads_that_overwrite():
    # Every slot keeps its chunk in head 1 and replaces its chunks in heads 0 and 2: as slots they
    # keep a third, neither "kept" nor "overwritten"; as (slot, head) pairs a third keep, two thirds go.
    keep_PHS = np.zeros((10, 3, 4))
    keep_PHS[:, 1] = 1.0
    analysis = summarize({0: keep_PHS}, np.ones(4), document=0)
    assert analysis.summary["mid_document_keep_share"] == 0.0 and analysis.summary["mid_document_overwrite_share"] == 0.0
    assert analysis.summary["mid_document_pair_keep_share"] == pytest.approx(1 / 3)
    assert analysis.summary["mid_document_pair_overwrite_share"] == pytest.approx(2 / 3)
    np.testing.assert_allclose(analysis.head_mid_keep_H, [0.0, 1.0, 0.0])
    assert analysis.summary["mid_document_mean_keep"] == pytest.approx(1 / 3)

