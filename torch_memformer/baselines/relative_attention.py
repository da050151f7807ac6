"""Transformer-XL's relative multi-head attention (Dai et al. 2019, section 3.3).

Shape legend: B batch, H heads, T query (new) positions, C cached positions, U = C + T keys,
K head dim, D d_model.

The score of query i against key j, with R the sinusoidal encoding of the distance i - j, is the
paper's four terms

    A_rel[i, j] = q_i . k_j          (a) content          q_i = W_q x_i,  k_j = W_kE x_j
                + q_i . W_kR R_{i-j} (b) content-position
                + u   . k_j          (c) global content bias
                + v   . W_kR R_{i-j} (d) global position bias
                = (q_i + u) . k_j + (q_i + v) . W_kR R_{i-j}

so the attention is ordinary attention of (q + u) against k, plus a bias matrix
BD[i, j] = (q_i + v) . W_kR R_{i-j}. Computing BD naively needs one R row per (i, j) pair
(``reference_position_scores``: a gather, written out). The fast path (``relative_shift``) is
the paper's appendix B trick: multiply (q + v) by W_kR R for every distance U-1 .. 0 once, a
(T, U) matrix whose column c holds distance U-1-c, then shift row i left by T-1-i so that entry
(i, j) holds distance C + i - j. ``tests/baselines/test_baselines_attention.py`` checks the two agree.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..model.attention import merge_heads, split_heads
from .windowed_attention import reference_windowed_attention, windowed_attention

# The sinusoid base of Vaswani et al., which Transformer-XL's R reuses.
SINUSOID_BASE = 10000.0


def sinusoid_table(num_distances: int, d_model: int, *, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """R: (num_distances, D), row d the encoding of distance d = [sin(d w), cos(d w)].

    Computed in float64 and then cast, so long distances keep their precision.
    """
    inv_freq = 1.0 / (SINUSOID_BASE ** (torch.arange(0, d_model, 2, dtype=torch.float64, device=device) / d_model))
    angles = torch.outer(torch.arange(num_distances, dtype=torch.float64, device=device), inv_freq)
    return torch.cat([angles.sin(), angles.cos()], dim=-1).to(dtype)


def relative_shift(x_BHTU: torch.Tensor) -> torch.Tensor:
    """Turn scores by descending distance into scores by key (the fast path).

    Input column c holds distance U-1-c for every query. Output entry (i, j) holds distance
    (U - T) + i - j for j <= (U - T) + i; entries to the right of that (future keys) hold
    unrelated values and must be masked. Pad one zero column on the left, reread the same
    memory as (U + 1, T), drop the first row and reread as (T, U): row i ends up shifted left by
    T - 1 - i.
    """
    b, h, t, u = x_BHTU.shape
    padded_BHTU1 = F.pad(x_BHTU, (1, 0))
    return padded_BHTU1.view(b, h, u + 1, t)[:, :, 1:].reshape(b, h, t, u)


def reference_position_scores(qv_BHTK: torch.Tensor, r_by_distance_HUK: torch.Tensor) -> torch.Tensor:
    """BD[b, h, i, j] = qv[b, h, i] . r[h, distance(i, j)], written out with a gather.

    ``r_by_distance`` row d is W_kR R_d. Distance(i, j) = (U - T) + i - j; negative distances
    (future keys) are clamped to 0 and must be masked by the caller.
    """
    t, u = qv_BHTK.size(2), r_by_distance_HUK.size(1)
    query_T1 = torch.arange(t, device=qv_BHTK.device).view(t, 1)
    key_1U = torch.arange(u, device=qv_BHTK.device).view(1, u)
    distance_TU = ((u - t) + query_T1 - key_1U).clamp(min=0)
    r_HTUK = r_by_distance_HUK[:, distance_TU]
    return torch.einsum("bhtk,htuk->bhtu", qv_BHTK, r_HTUK)


class RelativeSelfAttention(nn.Module):
    """Multi-head attention of new positions over [cache, new positions] with relative positions.

    Bias-free projections as in the paper (W_q, W_kE, W_v, W_kR, W_o are plain matrices; u and v
    are the only biases); u and v belong to each layer (Transformer-XL's "untied" variant).
    """

    def __init__(self, d_model: int, num_heads: int, dropout: float, impl: str) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = d_model // num_heads
        self.dropout = dropout
        self.impl = impl
        self.query = nn.Linear(d_model, d_model, bias=False)
        self.key_value = nn.Linear(d_model, 2 * d_model, bias=False)
        self.position_key = nn.Linear(d_model, d_model, bias=False)
        self.content_bias = nn.Parameter(torch.zeros(num_heads, self.head_dim))
        self.position_bias = nn.Parameter(torch.zeros(num_heads, self.head_dim))
        self.out = nn.Linear(d_model, d_model, bias=False)

    def forward(self, x_BUD: torch.Tensor, *, num_new: int, r_UD: torch.Tensor, allowed_B1TU: torch.Tensor) -> torch.Tensor:
        """Attention output (B, T, D) for the last ``num_new`` positions of ``x``.

        Args:
            x_BUD: normalised layer inputs at [cached positions, new positions].
            num_new: T, the new positions (the queries).
            r_UD: R for distances 0 .. U - 1 (row d = distance d).
            allowed_B1TU: the window (``windowed_attention.window_mask``).
        """
        u = x_BUD.size(1)
        k_BHUK, v_BHUK = self.project_keys(x_BUD)
        return self.attend(x_BUD[:, u - num_new :], k_BHUK, v_BHUK, self.project_positions(r_UD), allowed_B1TU)

    def project_keys(self, x_BUD: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Content keys W_kE x and values W_v x (B, H, U, K): a function of each position alone,
        so a cached decoding step can keep them instead of recomputing them from the states."""
        k_BUD, v_BUD = self.key_value(x_BUD).chunk(2, dim=-1)
        return split_heads(k_BUD, self.num_heads), split_heads(v_BUD, self.num_heads)

    def project_positions(self, r_UD: torch.Tensor) -> torch.Tensor:
        """W_kR R (H, U, K), row d the projected encoding of distance d."""
        return split_heads(self.position_key(r_UD).unsqueeze(0), self.num_heads)[0]

    def attend(
        self,
        x_BTD: torch.Tensor,
        k_BHUK: torch.Tensor,
        v_BHUK: torch.Tensor,
        r_by_distance_HUK: torch.Tensor,
        allowed_B1TU: torch.Tensor,
    ) -> torch.Tensor:
        """Queries from x (the last T of the U positions) against the given keys and values."""
        q_BHTK = split_heads(self.query(x_BTD), self.num_heads)
        qu_BHTK = q_BHTK + self.content_bias.unsqueeze(1)
        qv_BHTK = q_BHTK + self.position_bias.unsqueeze(1)
        scale = 1.0 / math.sqrt(self.head_dim)
        dropout_p = self.dropout if self.training else 0.0
        if self.impl == "sdpa":
            # Column c of the unshifted product is distance U-1-c: R in descending order.
            bd_BHTU = relative_shift(qv_BHTK @ r_by_distance_HUK.flip(1).transpose(-1, -2))
            out_BHTK = windowed_attention(
                qu_BHTK, k_BHUK, v_BHUK, allowed_B1TU=allowed_B1TU, bias_BHTU=bd_BHTU * scale, dropout_p=dropout_p
            )
        else:
            bd_BHTU = reference_position_scores(qv_BHTK, r_by_distance_HUK)
            out_BHTK = reference_windowed_attention(
                qu_BHTK, k_BHUK, v_BHUK, allowed_B1TU=allowed_B1TU, bias_BHTU=bd_BHTU * scale, dropout_p=dropout_p
            )
        return self.out(merge_heads(out_BHTK))
