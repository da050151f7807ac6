"""A window cut at segment boundaries, with the labels each piece is scored against.

Shape legend: B batch, N tokens in the window, n tokens in one chunk, L segment length, V vocabulary.

Every training engine sees a window the same way. The window's tokens are cut where a segment
of the stream ends, so chunk j is the part of segment j that lies in the window: the first chunk
may start mid-segment (the incoming state already holds the segment's first tokens) and the last
may end mid-segment (its tokens go into the outgoing state). A reset may only fall at a chunk
start, so each chunk carries one (B,) reset vector.

The window loss is the token mean of Hugging Face's shifted loss (spec decision 8): the sum over
positions q >= 1 of CE(prediction of token q, labels[q]), divided by the number of labels[1:]
that are not -100. With decoder-centric logits (``Memformer.predict``), the prediction of a
token of chunk j comes from chunk j's own decoder, so the loss splits exactly into one local
term per chunk: ``local_loss(logits of chunk j, j) = CE_sum(chunk j) / count``.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


@dataclasses.dataclass(frozen=True)
class WindowPlan:
    """A validated window, cut into chunks (built by ``memformer_window.py``; the engines only read
    it).

    Attributes:
        input_ids: (B, N) the window's tokens.
        labels: (B, N) the labels with the never-predicted tokens masked to -100: the first token
            after a reset (decision 6). Feeding them to the shifted loss gives the window loss.
        chunks: the window cut at segment boundaries, each (B, n_j).
        resets: per chunk, (B,) bool rows that restart before it, or None when none does.
        targets: per chunk, (B, n_j) what chunk j's decoder-centric logits are scored against:
            ``labels`` with the window's first token masked too (the shifted loss never scores it).
        count: 0-dim tensor, the number of scored tokens in the window (at least 1, so an all-padding
            window has loss 0, as in ``Memformer.forward``).
    """

    input_ids: torch.Tensor
    labels: torch.Tensor
    chunks: tuple[torch.Tensor, ...]
    resets: tuple[torch.Tensor | None, ...]
    targets: tuple[torch.Tensor, ...]
    count: torch.Tensor

    @property
    def num_chunks(self) -> int:
        return len(self.chunks)

    @property
    def has_inner_resets(self) -> bool:
        """Whether some row restarts after the window's first token."""
        return any(reset is not None for reset in self.resets[1:])

    def local_loss(self, logits_BnV: torch.Tensor, j: int) -> torch.Tensor:
        """Chunk j's share of the window loss, from its decoder-centric logits (B, n_j, V)."""
        targets_Bn = self.targets[j]
        total = F.cross_entropy(
            logits_BnV.reshape(-1, logits_BnV.size(-1)),
            targets_Bn.reshape(-1),
            ignore_index=IGNORE_INDEX,
            reduction="sum",
        )
        return total / self.count


def cut_window(
    input_ids_BN: torch.Tensor,
    labels_BN: torch.Tensor,
    reset_BN: torch.Tensor | None,
    *,
    position: int,
    segment_len: int,
) -> WindowPlan:
    """Cut a window whose first token sits at in-segment ``position`` (0 .. L - 1).

    ``reset_BN`` (B, N) bool marks the tokens a row restarts before; it must already be checked
    to be set only at chunk starts (``memformer_window.py`` does, with a message for the user).
    """
    n = input_ids_BN.size(1)
    starts = [0] + list(range(segment_len - position, n, segment_len))
    ends = starts[1:] + [n]
    labels_BN = labels_BN.clone()
    if reset_BN is not None:
        # Decision 6: the first token of a restarted row is the first of a new stream, never predicted.
        labels_BN[:, 1:].masked_fill_(reset_BN[:, 1:], IGNORE_INDEX)
    targets_BN = labels_BN.clone()
    targets_BN[:, 0] = IGNORE_INDEX
    count = (targets_BN != IGNORE_INDEX).sum().clamp(min=1)
    if reset_BN is None:
        resets = [None] * len(starts)
    else:
        # One host sync for all chunks: which chunk starts have a restarting row at all.
        used = reset_BN[:, starts].any(dim=0).tolist()
        resets = [reset_BN[:, start] if use else None for start, use in zip(starts, used)]
    return WindowPlan(
        input_ids=input_ids_BN,
        labels=labels_BN,
        chunks=tuple(input_ids_BN[:, a:b] for a, b in zip(starts, ends)),
        resets=tuple(resets),
        targets=tuple(targets_BN[:, a:b] for a, b in zip(starts, ends)),
        count=count,
    )
