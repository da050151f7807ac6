"""``Memformer.forward_embeds``: embedded inputs give exactly what their token ids give."""

from __future__ import annotations

import pytest
import torch

from conftest import tiny_model


def ids_of(batch: int, length: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, 50, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("length", [5, 16, 21])  # inside the first segment, two whole ones, mid-third
def test_embedded_inputs_give_the_logits_loss_and_state_of_their_ids(length):
    model = tiny_model().double()
    ids = ids_of(2, length)
    reference = model(ids, labels=ids)
    out = model.forward_embeds(model.embedding(ids), labels=ids)
    torch.testing.assert_close(out.logits, reference.logits, rtol=0, atol=1e-12)
    torch.testing.assert_close(out.loss, reference.loss, rtol=0, atol=1e-12)
    if length % model.config.segment_len:
        # The state would have to keep the partial segment's vectors: none is returned.
        assert out.state is None
    else:
        for name, tensor in reference.state.tensors().items():
            torch.testing.assert_close(getattr(out.state, name), tensor, rtol=0, atol=1e-12, msg=name)


def test_embedded_inputs_continue_a_state_that_ends_mid_segment():
    """The state's partial segment (ids) is embedded and joined to the new vectors."""
    model = tiny_model().double()
    ids = ids_of(3, 30, seed=2)
    reference = model(ids)
    first = model(ids[:, :11])
    out = model.forward_embeds(model.embedding(ids[:, 11:]), state=first.state)
    torch.testing.assert_close(out.logits, reference.logits[:, 11:], rtol=0, atol=1e-12)


def test_gradients_reach_the_embedded_inputs_as_they_reach_the_embedding():
    # An untied head, so the table's gradient is only what the inputs send it.
    model = tiny_model(tie_embeddings=False).double()
    ids = ids_of(2, 19, seed=3)
    embeds = model.embedding(ids).detach().requires_grad_(True)
    model.forward_embeds(embeds, labels=ids).loss.backward()
    model.zero_grad()
    model(ids, labels=ids).loss.backward()
    # Each token's vector gets the gradient its row of the table gets from that position: compare
    # the sums per token id.
    table_grad = model.embedding.weight.grad
    per_id = torch.zeros_like(table_grad).index_add_(0, ids.flatten(), embeds.grad.flatten(0, 1))
    torch.testing.assert_close(per_id[:50], table_grad[:50], rtol=0, atol=1e-10)


def test_bad_embedded_inputs_are_refused_clearly():
    model = tiny_model()
    with pytest.raises(ValueError, match=r"shape \(batch, n, d_model=32\)"):
        model.forward_embeds(torch.zeros(2, 4, 31))
    with pytest.raises(ValueError, match="floating point"):
        model.forward_embeds(torch.zeros(2, 4, 32, dtype=torch.long))
    with pytest.raises(ValueError, match=r"labels must have shape \(2, 4\)"):
        model.forward_embeds(torch.zeros(2, 4, 32), labels=torch.zeros(2, 5, dtype=torch.long))
