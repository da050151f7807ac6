"""Float64 gradient checks: autograd's gradients equal finite differences through the whole model."""

import torch

from conftest import tiny_config
from torch_memformer import Memformer


def _double_model(**changes):
    torch.manual_seed(0)
    config = tiny_config(vocab_size=11, d_model=8, num_heads=2, d_ff=16, num_slots=3, segment_len=4, **changes)
    return Memformer(config).double().eval()


def test_gradcheck_through_memory_across_segments():
    model = _double_model()
    ids = torch.randint(0, 11, (2, 13), generator=torch.Generator().manual_seed(1))
    state = model(ids[:, :3]).state  # start mid-segment
    memory = state.memory.detach().clone().requires_grad_(True)
    context = state.context.detach().clone().requires_grad_(True)

    def loss_of(memory_BSD, context_BLD):
        out = model(ids[:, 3:], state=state.replace(memory=memory_BSD, context=context_BLD), labels=ids[:, 3:])
        return out.loss, out.state.memory

    assert torch.autograd.gradcheck(loss_of, (memory, context), eps=1e-6, atol=1e-6)


def test_gradcheck_parameters_of_writer_and_forgetting():
    model = _double_model()
    ids = torch.randint(0, 11, (1, 10), generator=torch.Generator().manual_seed(2))
    names = ["memory_norm.direction_SD", "memory_norm.log_norm_S", "writer.query.weight", "writer.key.bias",
             "encoder.layers.0.memory_read.query.weight"]
    params = dict(model.named_parameters())
    originals = [params[n].detach().clone().requires_grad_(True) for n in names]

    def loss_of(*values):
        overrides = dict(zip(names, values))
        out = torch.func.functional_call(model, overrides, (ids,), {"labels": ids})
        return out.loss

    assert torch.autograd.gradcheck(loss_of, tuple(originals), eps=1e-6, atol=1e-6)


def test_every_parameter_receives_a_gradient():
    model = _double_model()
    ids = torch.randint(0, 11, (2, 14), generator=torch.Generator().manual_seed(3))
    model(ids, labels=ids).loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert missing == []
