"""Which tokens of a padded batch are real: a Memformer row is one stream, so padding may only sit
at its ends (zeros, then ones, then zeros in ``attention_mask``)."""

from __future__ import annotations

import torch


def real_spans(attention_mask: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """(B, 2) [start, end) of each row's ones; ValueError unless every row is zeros, ones, zeros."""
    if not isinstance(attention_mask, torch.Tensor) or tuple(attention_mask.shape) != shape:
        got = tuple(attention_mask.shape) if isinstance(attention_mask, torch.Tensor) else type(attention_mask).__name__
        raise ValueError(f"attention_mask must have the shape of input_ids {shape}, got {got}")
    mask_BN = attention_mask.to(torch.bool)
    count_B = mask_BN.sum(dim=1)
    start_B = torch.where(count_B > 0, mask_BN.to(torch.int8).argmax(dim=1), 0)
    end_B = start_B + count_B
    positions_N = torch.arange(shape[1], device=mask_BN.device)
    expected_BN = (positions_N >= start_B[:, None]) & (positions_N < end_B[:, None])
    if not bool((expected_BN == mask_BN).all()):
        raise ValueError(
            "attention_mask may only pad rows on the left or the right (zeros, then ones, then zeros): a "
            "Memformer reads each row as one stream, so a row cannot have gaps"
        )
    return torch.stack([start_B, end_B], dim=1)
