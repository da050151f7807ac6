"""The forward of ``MemformerForCausalLM`` when ``generate`` hands it a ``MemformerCache``.

Shape legend: B batch, N tokens in a call, K logits kept, V vocabulary.

The first call (the cache is empty) reads the prompt; every later call reads the columns
``generate`` appended, one cached decoder step per token (``cache.py``). Two prefills:

- ``logits_to_keep == 1`` (what ``generate`` asks for): the native sampler's own path, the
  critical path over the prompt (``Memformer.advance``), then the decoder prefill of the current
  segment, whose last output predicts the first new token. So greedy ``generate`` equals
  ``stream_generate`` token for token.
- otherwise the full forward (every position's logits), then the cursor starts after it.

Padding: prompts may be padded on the left only (a generated token follows the last column), and
every new column must be real; each row reads only its real tokens, as without a cache.
"""

from __future__ import annotations

import torch

from ...model import Memformer, MemformerState
from ...model.checks import check_ids
from .cache import MemformerCache
from .padding import real_spans


def cached_forward(
    model: Memformer,
    input_ids_BN: torch.Tensor,
    *,
    state: MemformerState | None,
    attention_mask: torch.Tensor | None,
    cache: MemformerCache,
    logits_to_keep: int,
    full_forward,
) -> torch.Tensor:
    """Read ``input_ids_BN`` into ``cache`` (in place); returns the last K logits (B, K, V), K = N
    when ``logits_to_keep`` is 0 (checked by the caller: a non-negative integer). ``full_forward(ids, state, mask) -> (logits, state)`` is the
    uncached forward, used for a prefill that wants every position's logits."""
    batch, n = input_ids_BN.shape
    keep = n if logits_to_keep == 0 else min(logits_to_keep, n)
    if not cache.is_initialized:
        return _prefill(model, input_ids_BN, state, attention_mask, cache, keep, full_forward)
    if state is not None:
        raise ValueError("give either memformer_state or a cache that has already read the prompt, not both: "
                         "the cache holds the streams' state")
    if batch != cache.batch_size:
        raise ValueError(f"input_ids has {batch} rows but the cache holds {cache.batch_size} streams")
    if attention_mask is not None and not bool(attention_mask[:, -n:].all()):
        raise ValueError("with a cache, the new columns of attention_mask must be ones: pad prompts on the left only")
    input_ids_BN = check_ids(input_ids_BN, model.config.vocab_size)
    logits = []
    for i in range(n):
        cache.push(model, input_ids_BN[:, i])
        if i >= n - keep:
            logits.append(cache.logits(model))
    return torch.stack(logits, dim=1)


def _prefill(
    model: Memformer,
    input_ids_BN: torch.Tensor,
    state: MemformerState | None,
    attention_mask: torch.Tensor | None,
    cache: MemformerCache,
    keep: int,
    full_forward,
) -> torch.Tensor:
    batch, n = input_ids_BN.shape
    padded = attention_mask is not None and not bool(attention_mask.all())
    if padded:
        spans_B2 = real_spans(attention_mask, (batch, n))
        if bool((spans_B2[:, 1] != n).any()) or bool((spans_B2[:, 0] == n).any()):
            raise ValueError("to generate, pad prompts on the left only (tokenizer.padding_side = 'left') and give "
                             "every row at least one real token: a new token follows each row's last column")
    if keep > 1:
        logits_BNV, state = full_forward(input_ids_BN, state, attention_mask)
        cache.start(state, n)
        return logits_BNV[:, n - keep :]
    if padded:
        state = _advance_left_padded(model, input_ids_BN, state, spans_B2[:, 0])
    else:
        state = model.advance(input_ids_BN, state=state)
    cache.start(state, n)
    return cache.logits(model).unsqueeze(1)


def _advance_left_padded(
    model: Memformer, input_ids_BN: torch.Tensor, state: MemformerState | None, start_B: torch.Tensor
) -> MemformerState:
    """The state after each row's real tokens (from ``start_B`` to the end), rows with the same
    padding read together."""
    if state is None:
        state = model.init_state(input_ids_BN.size(0), device=input_ids_BN.device)
    rows_by_start: dict[int, list[int]] = {}
    for row, start in enumerate(start_B.tolist()):
        rows_by_start.setdefault(start, []).append(row)
    order, states = [], []
    for start, rows in rows_by_start.items():
        states.append(model.advance(input_ids_BN[rows, start:], state=state.select(rows)))
        order.extend(rows)
    return MemformerState.cat(states).select(torch.argsort(torch.tensor(order, device=input_ids_BN.device)))
