"""Sampling from a decoder-only baseline: one cached step per token.

Shape legend: B batch, N prompt tokens, V vocabulary.

The state carries everything a step needs (the cache and the last token's hidden state). For
the plain Transformer a step is the ordinary forward of one token over its KV cache. For
Transformer-XL, whose state caches hidden states, generation keeps each layer's projected keys
and values beside them, so a step projects one new position instead of mem_len + 1
(``TransformerXL._step``). ``tests/test_baselines_stream.py`` checks greedy decoding against
argmax of the full forward over the generated text, and the final states against each other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..model.generation import GenerationOutput, check_sampling, sample_next
from .state import StreamState

if TYPE_CHECKING:
    from .streaming import StreamingLM


# no_grad rather than inference_mode: the returned state may be fed to a later forward with
# autograd on, which inference tensors refuse.
@torch.no_grad()
def generate(
    model: "StreamingLM",
    input_ids: torch.Tensor,
    max_new_tokens: int,
    *,
    state: StreamState | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> GenerationOutput:
    """Continue each row of ``input_ids`` (B, N) (after ``state``) by ``max_new_tokens`` tokens.

    Returns the new tokens (B, max_new_tokens) and the state after the last of them.
    """
    check_sampling(max_new_tokens, temperature, top_k, top_p)
    carried = model._start_steps(model.advance(input_ids, state=state))
    new_tokens = input_ids.new_empty(input_ids.size(0), max_new_tokens, dtype=torch.long)
    for step in range(max_new_tokens):
        logits_BV = model.logits_from_hidden(carried.last_hidden)
        token_B = sample_next(logits_BV, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator)
        new_tokens[:, step] = token_B
        # Also after the last token, so the returned state continues the stream exactly. The
        # sampled ids need no checking (advance's would cost a host sync per token).
        carried = model._step(token_B.unsqueeze(1), carried)
    return GenerationOutput(tokens=new_tokens, state=model._finish_steps(carried))
