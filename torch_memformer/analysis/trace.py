"""The writer's self weights over a stream of whole segments, from a fresh memory.

Shape legend: B batch, N tokens, P segments, H write heads, S slots, L segment length.

``trace_memory`` walks the critical path exactly as the model's stream does (spec 1: for each
segment, H_t = Encode(s_t, M_t), M_{t+1} = Write(M_t, H_t), starting from M_0 = v / ||v||) with the
model's public pieces (``model.initial_memory``, ``model.encode``) and the recomputed writer
attention (``writer_attention.py``), keeping each slot's self weight at each write.
"""

from __future__ import annotations

import dataclasses

import torch

from ..model import Memformer
from .writer_attention import check_has_memory, writer_attention


@dataclasses.dataclass(frozen=True)
class MemoryTrace:
    """keep_BPHS: the self weight a_i[0] of slot i in write head h at the write after segment p
    (each head writes its own chunk of the slot). memory_BSD: M_P, the memory after the last
    traced segment (what ``model.advance`` over the same tokens leaves in its state)."""

    keep_BPHS: torch.Tensor
    memory_BSD: torch.Tensor

    @property
    def keep_BPS(self) -> torch.Tensor:
        """The self weight per slot, averaged over heads: the share of its vector a slot keeps."""
        return self.keep_BPHS.mean(dim=2)

    @property
    def num_segments(self) -> int:
        return self.keep_BPS.size(1)


def trace_memory(model: Memformer, tokens_BN: torch.Tensor) -> MemoryTrace:
    """Trace B fresh streams of N tokens through the memory; only the first N // L whole segments
    are traced (a partial last segment is never written to memory)."""
    check_has_memory(model)
    length = model.config.segment_len
    if not isinstance(tokens_BN, torch.Tensor) or tokens_BN.dim() != 2:
        raise ValueError(f"tokens must be a (batch, n) tensor of token ids, got {getattr(tokens_BN, 'shape', tokens_BN)}")
    segments = tokens_BN.size(1) // length
    if segments < 1:
        raise ValueError(f"tracing the memory needs at least one whole segment of {length} tokens, got "
                         f"{tokens_BN.size(1)}")
    if int(tokens_BN.min()) < 0 or int(tokens_BN.max()) >= model.config.vocab_size:
        raise ValueError(f"token ids must lie in 0..{model.config.vocab_size - 1}; check the tokenizer matches the model")
    tokens_BN = tokens_BN.long()
    with torch.no_grad():
        memory_BSD = model.initial_memory().expand(tokens_BN.size(0), -1, -1)
        keeps = []
        for p in range(segments):
            hidden_BLD = model.encode(tokens_BN[:, p * length:(p + 1) * length], memory_BSD)
            attention = writer_attention(model, memory_BSD, hidden_BLD)
            keeps.append(attention.keep_BHS)
            memory_BSD = attention.next_memory_BSD
    return MemoryTrace(keep_BPHS=torch.stack(keeps, dim=1), memory_BSD=memory_BSD)
