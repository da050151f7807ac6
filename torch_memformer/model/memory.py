"""The external memory: the slot-attention writer (spec 1.2) and Biased Memory Normalization (spec 1.3).

Shape legend: B batch, H heads, S slots, T tokens, D d_model, K head dim.

Reading the memory is ordinary cross-attention and lives in ``encoder.py``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .attention import merge_heads, split_heads


class MemoryWriter(nn.Module):
    """Memory slot attention: each slot attends to itself and to the segment's tokens, never to
    another slot, and takes a mixture of its own raw vector and the tokens' values.

        q_i = LN(m_i) W_Q,  k_i = LN(m_i) W_K,  K_x = x W_K,  V_x = x W_V
        a_i = softmax([q_i . k_i / (sqrt(K) tau) + b_h ; q_i . K_x / (sqrt(K) tau)])
        m'_i = a_i[0] * m_i + sum_j a_i[j] V_x[j]

    b_h is our optional learned per-head keep bias (absent when ``keep_init`` is None, the
    default). The self term's value is the slot's *raw* vector and there is no output projection,
    so a slot that attends only to itself is left exactly as it was (spec 1.2, decision 4). W_K is shared
    by slot and token keys (decision 4). The LayerNorm on the slots before W_Q / W_K is ours:
    slots are unit vectors and would give logits far smaller than the token keys' otherwise (the
    same reason the reader normalises them, decision 3).
    """

    def __init__(
        self, d_model: int, num_heads: int, temperature: float, impl: str, eps: float, *, keep_init: float | None,
        segment_len: int,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.temperature = temperature
        self.impl = impl
        self.slot_norm = nn.LayerNorm(d_model, eps=eps)
        self.query = nn.Linear(d_model, d_model)
        self.key = nn.Linear(d_model, d_model)
        self.value = nn.Linear(d_model, d_model)
        # An optional learned per-head bias on the self logit (ours; decisions 13 and 16 in
        # docs/architecture.md), started so that, with equal token logits, a slot keeps a chosen
        # share of itself at each write: ``keep_init`` in every head, or spread over timescales.
        self.self_bias_H = None
        if keep_init is not None:
            shares = spread_keep_shares(num_heads) if keep_init == "spread" else [keep_init] * num_heads
            self.self_bias_H = nn.Parameter(torch.tensor([keep_bias(share, segment_len) for share in shares]))

    def forward(self, memory_BSD: torch.Tensor, tokens_BTD: torch.Tensor) -> torch.Tensor:
        """Return the written slots m' (B, S, D), before forgetting.

        The self term keeps the carried slot's own dtype (float32 under autocast): a kept slot is
        then never rounded to bfloat16 on its way through a write (decision 11).
        """
        q_BHSK, k_slot_BHSK, k_tok_BHTK, raw_BHSK, v_tok_BHTK = self._operands(memory_BSD, tokens_BTD)
        # Under autocast the raw slot (float32) and the token values (low precision) differ in
        # dtype; one SDPA call would round the kept slot, so the written-out path mixes them.
        if self.impl == "sdpa" and raw_BHSK.dtype == v_tok_BHTK.dtype:
            written_BHSK = _write_sdpa(q_BHSK, k_slot_BHSK, k_tok_BHTK, raw_BHSK, v_tok_BHTK, self.scale(q_BHSK),
                                       self.self_bias_H)
        else:
            keep_BHS1, take_BHST = self._weights(q_BHSK, k_slot_BHSK, k_tok_BHTK)
            written_BHSK = mix_slots(keep_BHS1, take_BHST, raw_BHSK, v_tok_BHTK)
        return merge_heads(written_BHSK)

    def weights(self, memory_BSD: torch.Tensor, tokens_BTD: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The write attention written out (the reference path, and what ``analysis`` reads):
        a_i[0] as keep (B, H, S, 1) and a_i[1:] as take (B, H, S, T); they sum to 1 per slot."""
        q_BHSK, k_slot_BHSK, k_tok_BHTK, _, _ = self._operands(memory_BSD, tokens_BTD)
        return self._weights(q_BHSK, k_slot_BHSK, k_tok_BHTK)

    def _weights(self, q_BHSK, k_slot_BHSK, k_tok_BHTK) -> tuple[torch.Tensor, torch.Tensor]:
        scale = self.scale(q_BHSK)
        self_logit_BHS1 = (q_BHSK * k_slot_BHSK).sum(-1, keepdim=True) * scale
        if self.self_bias_H is not None:
            self_logit_BHS1 = self_logit_BHS1 + self.self_bias_H.view(-1, 1, 1).to(self_logit_BHS1.dtype)
        token_logits_BHST = (q_BHSK @ k_tok_BHTK.transpose(-1, -2)) * scale
        weights_BHS1T = torch.cat([self_logit_BHS1, token_logits_BHST], dim=-1).softmax(dim=-1)
        return weights_BHS1T[..., :1], weights_BHS1T[..., 1:]

    def scale(self, q_BHSK: torch.Tensor) -> float:
        return 1.0 / (math.sqrt(q_BHSK.size(-1)) * self.temperature)

    def _operands(self, memory_BSD: torch.Tensor, tokens_BTD: torch.Tensor) -> tuple[torch.Tensor, ...]:
        normed_BSD = self.slot_norm(memory_BSD)
        q_BHSK = split_heads(self.query(normed_BSD), self.num_heads)
        k_slot_BHSK = split_heads(self.key(normed_BSD), self.num_heads)
        k_tok_BHTK = split_heads(self.key(tokens_BTD), self.num_heads)
        v_tok_BHTK = split_heads(self.value(tokens_BTD), self.num_heads)
        # The raw slot is its own value, cut into head-sized chunks like the projected values.
        raw_BHSK = split_heads(memory_BSD, self.num_heads)
        return q_BHSK, k_slot_BHSK, k_tok_BHTK, raw_BHSK, v_tok_BHTK


# The longest retention timescale of ``write_keep_init="spread"``, in segments (decision 16).
SPREAD_LONGEST_SEGMENTS = 64.0


def spread_keep_shares(num_heads: int) -> list[float | None]:
    """The starting keep shares of ``write_keep_init="spread"`` (decision 16), one per head.

    Head h keeps 1 - 1 / tau_h of each slot per write, with timescales tau_h spread geometrically
    from 1 to 64 segments (the multi-timescale decays of RetNet's heads, Sun et al. 2023, applied to
    slot attention): for 4 heads tau = 1, 4, 16, 64, keep 0, 0.75, 0.94, 0.98. Head 0 (tau 1) gets
    None: no bias, the paper's writer, which a fresh model starts as anyway (it keeps about
    1 / (L + 1)); so every segment is still written with full strength by one head while the
    others carry what was written further.
    """
    shares: list[float | None] = [None]
    for head in range(1, num_heads):
        tau = SPREAD_LONGEST_SEGMENTS ** (head / (num_heads - 1))
        shares.append(1.0 - 1.0 / tau)
    return shares


def keep_bias(share: float | None, segment_len: int) -> float:
    """The self-logit bias with which a slot keeps ``share`` of itself when its L token logits
    are all equal to its self logit: logit(share) + ln L (0 for None: no bias)."""
    if share is None:
        return 0.0
    return math.log(share / (1.0 - share)) + math.log(segment_len)


def mix_slots(keep_BHS1, take_BHST, raw_BHSK, v_tok_BHTK) -> torch.Tensor:
    """m' = a[0] m + sum_j a[j] V_x[j] (spec 1.2). The kept share of the raw slot is added in the
    raw slot's dtype, so under autocast a slot that keeps itself stays float32 exactly; only the
    new content is computed in low precision."""
    taken_BHSK = take_BHST @ v_tok_BHTK
    return keep_BHS1.to(raw_BHSK.dtype) * raw_BHSK + taken_BHSK.to(raw_BHSK.dtype)


def _write_sdpa(
    q_BHSK, k_slot_BHSK, k_tok_BHTK, raw_BHSK, v_tok_BHTK, scale: float, self_bias_H: torch.Tensor | None
) -> torch.Tensor:
    """The same write as one scaled_dot_product_attention call.

    Keys are [all slot keys ; token keys] and values [raw slots ; token values]; an additive mask
    lets slot i see only slot key i (the diagonal, plus the self bias) and every token, which is
    exactly the reference's 1 + T logits per slot.
    """
    s, t = q_BHSK.size(-2), k_tok_BHTK.size(-2)
    keys_BHUK = torch.cat([k_slot_BHSK, k_tok_BHTK], dim=-2)
    values_BHUK = torch.cat([raw_BHSK, v_tok_BHTK], dim=-2)
    own_slot_SS = torch.eye(s, dtype=torch.bool, device=q_BHSK.device)
    if self_bias_H is None:
        all_tokens_ST = torch.ones(s, t, dtype=torch.bool, device=q_BHSK.device)
        mask = torch.cat([own_slot_SS, all_tokens_ST], dim=-1)
    else:
        dtype = q_BHSK.dtype
        other_slots_SS = torch.zeros(s, s, dtype=dtype, device=q_BHSK.device).masked_fill(~own_slot_SS, float("-inf"))
        slots_HSS = other_slots_SS + own_slot_SS.to(dtype) * self_bias_H.to(dtype).view(-1, 1, 1)
        tokens_HST = q_BHSK.new_zeros(self_bias_H.size(0), s, t)
        mask = torch.cat([slots_HSS, tokens_HST], dim=-1)
    return F.scaled_dot_product_attention(q_BHSK, keys_BHUK, values_BHUK, attn_mask=mask, scale=scale)


DIRECTION_INIT_NORM = 0.1


class BiasedMemoryNormalization(nn.Module):
    """Forgetting (spec 1.3): add a learned per-slot bias v_i, then L2-normalise each slot.

    A slot that takes nothing new drifts, write after write, to v_i / ||v_i||: its terminal state
    and also its blank initial state, so unused slots fade back to blank. With
    ``forgetting=False`` (the paper's ablation) the bias is not added when writing; slots are still
    normalised and still start from the normalised learned vector.

    How v_i is held (decision 15), the same v_i in the forward pass either way:

    - ``"polar"`` (default): a direction u_i and a log-norm s_i, v_i = exp(s_i) u_i / ||u_i||.
      ||v_i|| is the forgetting rate (a kept slot turns about ||v_i|| radians towards v_i per
      write), and in log space an optimizer changes it only where the gradient keeps pushing it.
    - ``"vector"``: v_i itself is the parameter (the models before decision 15). Adam then moves
      each of its d coordinates by about the learning rate per step whatever the gradient's size,
      and that noise alone grows ||v_i|| (measured 0.1 -> 0.18 in 600 steps), enough to erase a
      kept slot within ~12 writes.
    """

    def __init__(
        self, num_slots: int, d_model: int, *, forgetting: bool, init_norm: float = 1.0, form: str = "vector",
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.forgetting = forgetting
        self.form = form
        self.eps = eps
        # Decision 5: random directions (so the slots differ), norm ``init_norm``.
        direction_SD = torch.randn(num_slots, d_model)
        direction_SD = direction_SD / direction_SD.norm(dim=-1, keepdim=True)
        if form == "polar":
            # The direction's own length is free (only u / ||u|| is used) and sets how fast an
            # optimizer turns it: Adam moves each coordinate by about lr per step, so m_0 = u / ||u||
            # turns at about lr sqrt(d) / ||u|| per step. 0.1 turns it as fast as the vector form
            # from norm 0.1, which learned text best (decision 15).
            self.direction_SD = nn.Parameter(DIRECTION_INIT_NORM * direction_SD)
            if forgetting:  # without forgetting no rate is ever added, so none is learned
                self.log_norm_S = nn.Parameter(torch.full((num_slots,), math.log(init_norm)))
        else:  # the name checkpoints written before decision 15 hold it under
            self.bias_SD = nn.Parameter(init_norm * direction_SD)

    def _direction_or_vector(self) -> torch.Tensor:
        return self.direction_SD if self.form == "polar" else self.bias_SD

    def bias(self) -> torch.Tensor:
        """v (S, D), whichever way it is held (zero for the polar form without forgetting)."""
        if self.form == "vector":
            return self.bias_SD
        if not self.forgetting:
            return torch.zeros_like(self.direction_SD)
        return self.log_norm_S.exp().unsqueeze(-1) * F.normalize(self.direction_SD, dim=-1, eps=self.eps)

    def initial_memory(self) -> torch.Tensor:
        """m_0 = v / ||v||: (S, D)."""
        return F.normalize(self._direction_or_vector(), dim=-1, eps=self.eps)

    def forward(self, written_BSD: torch.Tensor) -> torch.Tensor:
        # Kept in the parameters' dtype (float32 under autocast) so the carried state never
        # degrades to bfloat16 segment after segment.
        written_BSD = written_BSD.to(self._direction_or_vector().dtype)
        if self.forgetting:
            written_BSD = written_BSD + self.bias()
        return F.normalize(written_BSD, dim=-1, eps=self.eps)
