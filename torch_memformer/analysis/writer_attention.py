"""The memory writer's attention weights, recomputed from a model's parameters (spec 1.2).

Shape legend: B batch, H heads, S slots, T tokens of a segment, D d_model, K head dim.

The model never hands out the writer's attention: its segment step stays a pure function that
returns only the new memory (style principle 2), and its fast path is one fused
``scaled_dot_product_attention`` call whose weights never exist as a tensor. For the analysis of
the paper's Fig. 6 we recompute them here, outside the model, from the writer's own submodules
(``model.writer``: slot_norm, query, key, value; ``model.memory_norm`` for forgetting) and the
tensors the model's public pieces give (``model.encode``):

    q_i = LN(m_i) W_Q,  k_i = LN(m_i) W_K,  K_x = x W_K,  V_x = x W_V
    a_i = softmax([q_i . k_i ; q_i . K_x] / (sqrt(K) * tau))        per head
    m'_i = a_i[0] m_i + sum_j a_i[j] V_x[j],   M_{t+1} = BMN(m')

``a_i[0]`` is the slot's **self weight**: 1 keeps the slot as it was, 0 replaces it by new content.
``tests/analysis/test_analysis.py`` checks that the memory written from these weights equals the model's
own next memory (``model.encode_and_write``), so the weights are the ones the model used.
"""

from __future__ import annotations

import dataclasses
import torch

from ..model import Memformer
from ..model.attention import merge_heads, split_heads
from ..model.memory import mix_slots


@dataclasses.dataclass(frozen=True)
class WriterAttention:
    """The writer's attention for one segment.

    keep_BHS: a_i[0] per head, the weight of slot i's own vector (its self weight).
    take_BHST: a_i[1:] per head, the weights of the segment's T tokens; keep + take sum to 1.
    written_BSD: m', the written slots before forgetting.
    next_memory_BSD: M_{t+1}, the slots after Biased Memory Normalization.
    """

    keep_BHS: torch.Tensor
    take_BHST: torch.Tensor
    written_BSD: torch.Tensor
    next_memory_BSD: torch.Tensor

    @property
    def keep_BS(self) -> torch.Tensor:
        """The self weight per slot, averaged over heads: the share of the slot's vector it keeps
        (each head writes an equal-sized chunk of the slot)."""
        return self.keep_BHS.mean(dim=1)


def check_has_memory(model: Memformer) -> None:
    """ValueError unless ``model`` is a Memformer with a memory to analyse."""
    if not isinstance(model, Memformer):
        raise ValueError(f"the memory analysis needs a Memformer, got {type(model).__name__}; pass a Memformer "
                         "checkpoint")
    if not model.config.use_memory:
        raise ValueError("this Memformer was built without memory (the no-memory ablation): it has no slots to "
                         "analyse; pass a checkpoint with use_memory true")


def writer_attention(model: Memformer, memory_BSD: torch.Tensor, hidden_BTD: torch.Tensor) -> WriterAttention:
    """The writer's attention of slots ``memory_BSD`` (M_t) over encoder states ``hidden_BTD``
    (H_t = ``model.encode(tokens, M_t)``), and the memory it writes. Computed in the parameters'
    dtype, without gradients."""
    check_has_memory(model)
    writer = model.writer
    with torch.no_grad():
        # The writer's own written-out attention (its reference path): one self logit (plus the
        # learned self bias, when the model has one) and T token logits per slot (spec 1.2).
        keep_BHS1, take_BHST = writer.weights(memory_BSD, hidden_BTD)
        v_tok_BHTK = split_heads(writer.value(hidden_BTD), writer.num_heads)
        raw_BHSK = split_heads(memory_BSD, writer.num_heads)
        written_BSD = merge_heads(mix_slots(keep_BHS1, take_BHST, raw_BHSK, v_tok_BHTK))
        next_memory_BSD = model.memory_norm(written_BSD)
    return WriterAttention(keep_BHS=keep_BHS1.squeeze(-1), take_BHST=take_BHST, written_BSD=written_BSD,
                           next_memory_BSD=next_memory_BSD)
