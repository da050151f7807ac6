"""Attention over [a cache of earlier positions, the new chunk] with a sliding causal window.

Shape legend: B batch, H heads, T new (query) positions, C cached positions, U = C + T keys,
K head dim.

Both baselines lay keys out the same way: the C cached positions (right-aligned, oldest first,
a row's real entries being its last ``valid`` ones) followed by the T new positions. Query i is
at key index C + i, so the distance from query i to key u is C + i - u. A query attends to key u
when 0 <= distance <= max_distance and u is a real entry. The window is a function of the
distance only, so it does not matter how a stream was cut into calls: this is what makes
streaming in pieces equal one call.

``windowed_attention`` runs scaled_dot_product_attention (``impl="sdpa"``) or the written-out
formula (``impl="reference"``); ``tests/baselines/test_baselines_attention.py`` checks they agree.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def window_mask(
    *, valid_B: torch.Tensor, num_cached: int, num_new: int, max_distance: int | None
) -> torch.Tensor:
    """Which keys each query may see: (B, 1, T, U) bool, True = attend.

    Args:
        valid_B: (B,) int64, how many of the C cached entries of each row are real (its last ones).
        num_cached: C. num_new: T.
        max_distance: the farthest key a query sees (``mem_len`` for Transformer-XL,
            ``context_len - 1`` for the plain Transformer); None = unbounded.
    """
    c, t = num_cached, num_new
    device = valid_B.device
    query_T1 = torch.arange(t, device=device).view(t, 1)
    key_1U = torch.arange(c + t, device=device).view(1, c + t)
    distance_TU = c + query_T1 - key_1U
    allowed_TU = distance_TU >= 0
    if max_distance is not None:
        allowed_TU = allowed_TU & (distance_TU <= max_distance)
    # Cached entries before a row's real ones are padding (a fresh or recently reset row).
    real_BU = key_1U >= (c - valid_B).view(-1, 1)
    return (allowed_TU.unsqueeze(0) & real_BU.unsqueeze(1)).unsqueeze(1)


def windowed_attention(
    q_BHTK: torch.Tensor,
    k_BHUK: torch.Tensor,
    v_BHUK: torch.Tensor,
    *,
    allowed_B1TU: torch.Tensor,
    bias_BHTU: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    impl: str = "sdpa",
) -> torch.Tensor:
    """softmax(q k^T / sqrt(K) + bias, over allowed keys) v; returns (B, H, T, K).

    ``bias`` is added to the already scaled scores (Transformer-XL's position terms). Every query
    must be allowed at least one key (each sees itself, distance 0).
    """
    if impl == "sdpa":
        if bias_BHTU is None:
            mask = allowed_B1TU
        else:
            mask = bias_BHTU.masked_fill(~allowed_B1TU, float("-inf"))
        return F.scaled_dot_product_attention(q_BHTK, k_BHUK, v_BHUK, attn_mask=mask, dropout_p=dropout_p)
    return reference_windowed_attention(
        q_BHTK, k_BHUK, v_BHUK, allowed_B1TU=allowed_B1TU, bias_BHTU=bias_BHTU, dropout_p=dropout_p
    )


def reference_windowed_attention(
    q_BHTK: torch.Tensor,
    k_BHUK: torch.Tensor,
    v_BHUK: torch.Tensor,
    *,
    allowed_B1TU: torch.Tensor,
    bias_BHTU: torch.Tensor | None = None,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """The plain formula, written out: the reference the fast path is tested against."""
    scores_BHTU = q_BHTK @ k_BHUK.transpose(-1, -2) / math.sqrt(q_BHTK.size(-1))
    if bias_BHTU is not None:
        scores_BHTU = scores_BHTU + bias_BHTU
    scores_BHTU = scores_BHTU.masked_fill(~allowed_B1TU, float("-inf"))
    weights_BHTU = scores_BHTU.softmax(dim=-1)
    if dropout_p > 0.0:
        weights_BHTU = F.dropout(weights_BHTU, p=dropout_p)
    return weights_BHTU @ v_BHUK
