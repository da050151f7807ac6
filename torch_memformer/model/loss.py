"""The language-model loss of the stream contract, shared by every model and training engine.

Shape legend: B batch, N tokens in a call, V vocabulary.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def shifted_cross_entropy(logits_BNV: torch.Tensor, labels_BN: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of logits[:, i] against labels[:, i + 1], ignoring -100.

    Returns 0 (not NaN) when nothing is labelled, so a one-token call adds nothing to a sum.
    """
    logits_BNV = logits_BNV[:, :-1]
    targets_BN = labels_BN[:, 1:]
    total = F.cross_entropy(
        logits_BNV.reshape(-1, logits_BNV.size(-1)), targets_BN.reshape(-1), ignore_index=-100, reduction="sum"
    )
    return total / (targets_BN != -100).sum().clamp(min=1)
