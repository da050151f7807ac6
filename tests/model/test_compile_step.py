"""``compile_segment_step``: the compiled segment step gives eager's outputs and gradients, has no
graph break (fullgraph), and one compile serves every segment of a stream."""

from __future__ import annotations

import pytest
import torch
from torch._dynamo.utils import counters

from conftest import tiny_model
from torch_memformer.compile_step import compile_segment_step
from torch_memformer.training.engines import backward_window

SEGMENT = 8  # tiny_model's segment_len


def ids_of(batch: int, length: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, 50, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.slow  # compiles (seconds on a CPU)
def test_compiled_segments_give_eager_outputs_and_later_segments_do_not_recompile():
    torch._dynamo.reset()
    eager = tiny_model(seed=4)
    compiled = compile_segment_step(tiny_model(seed=4))
    ids = ids_of(3, 4 * SEGMENT)
    eager_state = compiled_state = None
    with torch.no_grad():
        for t in range(4):
            piece = ids[:, t * SEGMENT : (t + 1) * SEGMENT]
            if t == 1:  # segment 0 has compiled
                # the encoder step and the decoder's full-segment prefix; later segments reuse them.
                graphs = counters["stats"]["unique_graphs"]
                recompile_is_an_error = torch._dynamo.config.patch(error_on_recompile=True)
                recompile_is_an_error.__enter__()
            # evaluate's step: predict (the decoder) then advance (the encoder and the writer).
            torch.testing.assert_close(compiled.predict(piece, state=compiled_state),
                                       eager.predict(piece, state=eager_state), rtol=0, atol=2e-5)
            compiled_state = compiled.advance(piece, state=compiled_state)
            eager_state = eager.advance(piece, state=eager_state)
            torch.testing.assert_close(compiled_state.memory, eager_state.memory, rtol=0, atol=2e-5)
        recompile_is_an_error.__exit__(None, None, None)
        assert counters["stats"]["unique_graphs"] == graphs
        # forward over many segments at once walks the same compiled step.
        out, reference = compiled(ids), eager(ids)
    torch.testing.assert_close(out.logits, reference.logits, rtol=0, atol=2e-5)
    torch.testing.assert_close(out.state.context, reference.state.context, rtol=0, atol=2e-5)


@pytest.mark.slow  # compiles forward and backward graphs
def test_mrbp_gradients_through_the_compiled_step_equal_eager():
    """The engines' calls (advance, predict, replayed RNG, memory gradients handed back) through
    compiled graphs. aot_eager traces forward and backward as inductor does but skips its code
    generation (a minute on a CPU); inductor's kernels are checked by the test above."""
    torch._dynamo.reset()
    eager = tiny_model(seed=5).train()
    compiled = compile_segment_step(tiny_model(seed=5).train(), backend="aot_eager")
    ids = ids_of(2, 4 * SEGMENT, seed=2)
    eager_result = backward_window(eager, ids, method="mrbp")
    compiled_result = backward_window(compiled, ids, method="mrbp")
    torch.testing.assert_close(compiled_result.loss, eager_result.loss, rtol=0, atol=1e-5)
    for (name, p), q in zip(eager.named_parameters(), compiled.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_only_a_memformer_is_compiled():
    with pytest.raises(TypeError, match="compiles a Memformer's segment step, got Linear"):
        compile_segment_step(torch.nn.Linear(2, 2))
