"""Multi-head attention: the fast path (scaled_dot_product_attention) and a written-out reference.

Shape legend used in this file and the rest of ``model/``:
    B batch, H heads, T query tokens, U key/value positions, S memory slots, D d_model, K head dim.

Both paths compute softmax(q k^T / sqrt(K) + mask) v; ``tests/model/test_attention.py`` checks that
they agree, and ``MemformerConfig(attention_impl="reference")`` runs a whole model on the
reference so the model-level tests can compare the two end to end.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def attention(
    q_BHTK: torch.Tensor,
    k_BHUK: torch.Tensor,
    v_BHUK: torch.Tensor,
    *,
    causal: bool = False,
    dropout_p: float = 0.0,
    impl: str = "sdpa",
    logit_bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """softmax(q k^T / sqrt(K) + logit_bias) v over the last two axes; returns (B, H, T, K).

    ``causal`` masks key u for query t when u > t (queries and keys start at the same position,
    T == U). Cached decoding passes only the keys a query may see, so it needs no mask.
    ``logit_bias`` is added to the scaled logits (broadcast to (B, H, T, U); it may be learned:
    both paths pass its gradient). Not combined with ``causal``.
    """
    if causal and logit_bias is not None:
        raise ValueError("attention takes causal or a logit bias, not both")
    if impl == "sdpa" and not _slow_low_precision_cpu(q_BHTK):
        mask = None if logit_bias is None else logit_bias.to(q_BHTK.dtype)
        return F.scaled_dot_product_attention(q_BHTK, k_BHUK, v_BHUK, attn_mask=mask, dropout_p=dropout_p,
                                              is_causal=causal)
    return reference_attention(q_BHTK, k_BHUK, v_BHUK, causal=causal, dropout_p=dropout_p, logit_bias=logit_bias)


def _slow_low_precision_cpu(x: torch.Tensor) -> bool:
    """True for bfloat16/float16 on a CPU, where torch's fused attention kernel is the slow choice.

    Measured on an AMD EPYC (Zen 4, avx512_bf16) with torch 2.13, heads of 32, 64 tokens: the CPU
    flash kernel's forward + backward takes 4.9 ms in bfloat16 against 1.1 ms for the same
    attention written out as two batched matmuls (1.3 ms vs 1.4 ms in float32, where SDPA stays).
    """
    return x.device.type == "cpu" and x.dtype in (torch.bfloat16, torch.float16)


def reference_attention(
    q_BHTK: torch.Tensor,
    k_BHUK: torch.Tensor,
    v_BHUK: torch.Tensor,
    *,
    causal: bool = False,
    dropout_p: float = 0.0,
    logit_bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """The plain formula, written out: the reference the fast path is tested against."""
    scores_BHTU = q_BHTK @ k_BHUK.transpose(-1, -2) / math.sqrt(q_BHTK.size(-1))
    if logit_bias is not None:
        scores_BHTU = scores_BHTU + logit_bias.to(scores_BHTU.dtype)
    if causal:
        t, u = scores_BHTU.shape[-2:]
        future_TU = torch.ones(t, u, dtype=torch.bool, device=scores_BHTU.device).triu(1)
        scores_BHTU = scores_BHTU.masked_fill(future_TU, float("-inf"))
    weights_BHTU = scores_BHTU.softmax(dim=-1)
    if dropout_p > 0.0:
        weights_BHTU = F.dropout(weights_BHTU, p=dropout_p)
    return weights_BHTU @ v_BHUK


class Rotary(nn.Module):
    """Rotary position embeddings (RoPE) for positions 0 .. max_len - 1.

    Spec decision 1: positions restart at 0 in every segment, so ``max_len`` is the segment
    length (two segments when the decoder's cross-attention is rotated too: the previous
    segment at 0..L-1, the decoder at L..2L-1) and the table never grows with the stream.
    """

    def __init__(self, head_dim: int, max_len: int, base: float) -> None:
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
        angles_TK2 = torch.outer(torch.arange(max_len, dtype=torch.float64), inv_freq)
        angles_TK = torch.cat([angles_TK2, angles_TK2], dim=-1)
        # Buffers, not parameters: not trained, not saved (rebuilt from the config).
        self.register_buffer("cos_TK", angles_TK.cos().float(), persistent=False)
        self.register_buffer("sin_TK", angles_TK.sin().float(), persistent=False)

    def forward(self, x_BHTK: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Rotate x whose token axis holds positions start .. start + T - 1."""
        t = x_BHTK.size(-2)
        cos_TK = self.cos_TK[start : start + t].to(x_BHTK.dtype)
        sin_TK = self.sin_TK[start : start + t].to(x_BHTK.dtype)
        first, second = x_BHTK.chunk(2, dim=-1)
        rotated_BHTK = torch.cat([-second, first], dim=-1)
        return x_BHTK * cos_TK + rotated_BHTK * sin_TK


def split_heads(x_BTD: torch.Tensor, num_heads: int) -> torch.Tensor:
    b, t, d = x_BTD.shape
    return x_BTD.view(b, t, num_heads, d // num_heads).transpose(1, 2)


def merge_heads(x_BHTK: torch.Tensor) -> torch.Tensor:
    b, h, t, k = x_BHTK.shape
    return x_BHTK.transpose(1, 2).reshape(b, t, h * k)


class SelfAttention(nn.Module):
    """Multi-head self-attention with rotary positions; bidirectional or causal."""

    def __init__(self, d_model: int, num_heads: int, dropout: float, impl: str) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.dropout = dropout
        self.impl = impl
        # One fused projection: a single larger matmul is faster than three small ones.
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def project(self, x_BTD: torch.Tensor, rotary: Rotary, start: int = 0) -> tuple[torch.Tensor, ...]:
        """Queries, keys and values for tokens at positions start .. start + T - 1, rotated."""
        qk_BTD, v_BTD = self.qkv(x_BTD).split([2 * x_BTD.size(-1), x_BTD.size(-1)], dim=-1)
        # Queries and keys rotate together: one set of rotary ops instead of two.
        qk_BHTK = rotary(split_heads(qk_BTD, 2 * self.num_heads), start)
        q_BHTK, k_BHTK = qk_BHTK.chunk(2, dim=1)
        return q_BHTK, k_BHTK, split_heads(v_BTD, self.num_heads)

    def forward(self, x_BTD: torch.Tensor, rotary: Rotary, *, causal: bool) -> torch.Tensor:
        q_BHTK, k_BHTK, v_BHTK = self.project(x_BTD, rotary)
        return self.finish(q_BHTK, k_BHTK, v_BHTK, causal=causal)

    def finish(
        self, q_BHTK: torch.Tensor, k_BHUK: torch.Tensor, v_BHUK: torch.Tensor, *, causal: bool
    ) -> torch.Tensor:
        dropout_p = self.dropout if self.training else 0.0
        out_BHTK = attention(q_BHTK, k_BHUK, v_BHUK, causal=causal, dropout_p=dropout_p, impl=self.impl)
        return self.out(merge_heads(out_BHTK))


class CrossAttention(nn.Module):
    """Multi-head attention from tokens to a source (memory slots or encoder states).

    The memory read has no positions: slots are a set (spec 1.1). The decoder's attention to the
    previous segment passes ``rotary`` (decision 1): source position u is rotated as u and query
    t as ``query_start + t``, so the decoder sees how far back each encoder state is, as
    Transformer-XL sees its cache through relative positions.
    """

    def __init__(self, d_model: int, num_heads: int, dropout: float, impl: str) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.dropout = dropout
        self.impl = impl
        self.query = nn.Linear(d_model, d_model)
        self.key_value = nn.Linear(d_model, 2 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def project_source(
        self, source_BUD: torch.Tensor, rotary: Rotary | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of the source: computed once per segment when decoding with a cache."""
        k_BUD, v_BUD = self.key_value(source_BUD).chunk(2, dim=-1)
        k_BHUK = split_heads(k_BUD, self.num_heads)
        if rotary is not None:
            k_BHUK = rotary(k_BHUK)
        return k_BHUK, split_heads(v_BUD, self.num_heads)

    def forward(
        self,
        x_BTD: torch.Tensor,
        source_BUD: torch.Tensor,
        rotary: Rotary | None = None,
        query_start: int = 0,
        logit_bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        k_BHUK, v_BHUK = self.project_source(source_BUD, rotary)
        return self.attend(x_BTD, k_BHUK, v_BHUK, rotary=rotary, query_start=query_start, logit_bias=logit_bias)

    def attend(
        self,
        x_BTD: torch.Tensor,
        k_BHUK: torch.Tensor,
        v_BHUK: torch.Tensor,
        *,
        rotary: Rotary | None = None,
        query_start: int = 0,
        logit_bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        q_BHTK = split_heads(self.query(x_BTD), self.num_heads)
        if rotary is not None:
            q_BHTK = rotary(q_BHTK, query_start)
        dropout_p = self.dropout if self.training else 0.0
        out_BHTK = attention(q_BHTK, k_BHUK, v_BHUK, dropout_p=dropout_p, impl=self.impl, logit_bias=logit_bias)
        return self.out(merge_heads(out_BHTK))
