"""Sampling from a Memformer: a decoder KV cache inside the segment, the memory across segments.

Shape legend: B batch, L segment length, D d_model, V vocabulary.

Per new token the cost is one cached decoder step; once every L tokens the finished segment goes
through the encoder and the writer and the cache starts again on the new context
(``DecodingCursor``, ``cursor.py``, which the Hugging Face cache shares). Nothing grows with the
stream, so time and memory per token stay flat however long it runs.

``tests/test_generation.py`` checks greedy decoding here against argmax of the full forward.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import torch

from .cursor import DecodingCursor
from .state import MemformerState

if TYPE_CHECKING:
    from .memformer import Memformer


@dataclasses.dataclass(frozen=True)
class GenerationOutput:
    """tokens: (B, max_new_tokens) the new tokens only; state: the state after the last of them."""

    tokens: torch.Tensor
    state: MemformerState


def sample_next(
    logits_BV: torch.Tensor,
    *,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """One token per row: argmax at temperature 0, else a draw from the filtered softmax."""
    if temperature == 0:
        return logits_BV.argmax(dim=-1)
    logits_BV = logits_BV.float() / temperature
    if top_k is not None and top_k < logits_BV.size(-1):
        kth_B1 = logits_BV.topk(top_k, dim=-1).values[:, -1:]
        logits_BV = logits_BV.masked_fill(logits_BV < kth_B1, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_BV, order_BV = logits_BV.sort(dim=-1, descending=True)
        cumulative_BV = sorted_BV.softmax(dim=-1).cumsum(dim=-1)
        # Drop a token when the ones ranked above it already hold top_p of the mass (the first
        # token always stays).
        drop_sorted_BV = (cumulative_BV - sorted_BV.softmax(dim=-1)) >= top_p
        drop_BV = drop_sorted_BV.scatter(-1, order_BV, drop_sorted_BV)
        logits_BV = logits_BV.masked_fill(drop_BV, float("-inf"))
    probs_BV = logits_BV.softmax(dim=-1)
    return torch.multinomial(probs_BV, 1, generator=generator).squeeze(-1)


def check_sampling(max_new_tokens: int, temperature: float, top_k: int | None, top_p: float | None) -> None:
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be a non-negative integer, got {max_new_tokens!r}")
    if not isinstance(temperature, (int, float)) or not temperature >= 0:
        raise ValueError(f"temperature must be >= 0 (0 means greedy), got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be a positive integer or None, got {top_k!r}")
    if top_p is not None and not (isinstance(top_p, (int, float)) and 0 < top_p <= 1):
        raise ValueError(f"top_p must be in (0, 1] or None, got {top_p!r}")


# no_grad rather than inference_mode: the returned state may be fed to a later forward with
# autograd on, which inference tensors refuse.
@torch.no_grad()
def generate(
    model: "Memformer",
    input_ids: torch.Tensor,
    max_new_tokens: int,
    *,
    state: MemformerState | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> GenerationOutput:
    """Continue each row of ``input_ids`` (B, N) (after ``state``) by ``max_new_tokens`` tokens."""
    check_sampling(max_new_tokens, temperature, top_k, top_p)
    state = model.advance(input_ids, state=state)
    positions_B = state.position
    if bool((positions_B == positions_B[0]).all()):
        return _generate_aligned(model, state, max_new_tokens, temperature, top_k, top_p, generator)
    # Rows at different places in their segments finish segments at different steps: sample each
    # group of rows on its own (rows are independent), then put them back in order.
    groups = [torch.nonzero(positions_B == p).flatten() for p in torch.unique(positions_B)]
    outs = [
        _generate_aligned(model, state.select(rows), max_new_tokens, temperature, top_k, top_p, generator)
        for rows in groups
    ]
    inverse_B = torch.argsort(torch.cat(groups))
    tokens = torch.cat([o.tokens for o in outs])[inverse_B]
    return GenerationOutput(tokens=tokens, state=MemformerState.cat([o.state for o in outs]).select(inverse_B))


def _generate_aligned(
    model: "Memformer",
    state: MemformerState,
    max_new_tokens: int,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    generator: torch.Generator | None,
) -> GenerationOutput:
    """Generation for rows that share one position p inside the current segment."""
    new_tokens = state.tokens.new_empty(state.batch_size, max_new_tokens)
    if max_new_tokens == 0:
        return GenerationOutput(tokens=new_tokens, state=state)
    # The cursor decodes lazily: the last token is pushed (its segment encoded if it completes one)
    # but never run through the decoder, since nothing reads its prediction.
    cursor = DecodingCursor.start(state)
    for step in range(max_new_tokens):
        token_B = sample_next(
            cursor.logits(model), temperature=temperature, top_k=top_k, top_p=top_p, generator=generator
        )
        new_tokens[:, step] = token_B
        cursor.push(model, token_B)
    return GenerationOutput(tokens=new_tokens, state=cursor.state())
