"""Scores by how far back the state was last reset: what the memory is worth deep into a document.

A Memformer's memory can only matter from the third segment of a document on: segment 0 is read
from a fresh state, and segment 1 is predicted from segment 0's encoding, which read the initial
memory M_0 too. Past that, whether the memory keeps helping hundreds of segments in (far past the
few segments a training window spans) is the natural-text form of length generalisation. The
evaluator sums each segment's loss into a bucket of its distance d (in segments) from the last
state reset (a document's start, or a row's start in the contiguous layout):

    bucket 0: d = 0,  bucket 1: d = 1,  bucket 2: d = 2..3,  bucket 3: d = 4..7,  ...  (powers of 2)

    profile = DistanceProfile.empty()                 # then profile.add(...) per segment
    evaluate(model, corpus, by_distance=True).by_distance   # the buckets of one evaluation

The buckets of a whole evaluation sum to its totals exactly (same losses, only split up).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

# Bucket 63 starts at 2^62 segments: no corpus reaches past it.
MAX_BUCKETS = 64


def bucket_of(distance: torch.Tensor) -> torch.Tensor:
    """The bucket of each distance (int64 tensor, >= 0): 0 for 0, else floor(log2(d)) + 1."""
    # Exact integer log2 (float log2 can round 2^k - 1 up): the bit length of d.
    bucket = torch.zeros_like(distance)
    rest = distance.clone()
    while bool((rest > 0).any()):
        bucket += (rest > 0).long()
        rest = rest // 2
    return bucket


def bucket_range(bucket: int) -> tuple[int, int]:
    """The first and last distance (in segments) of a bucket."""
    return (0, 0) if bucket == 0 else (2 ** (bucket - 1), 2**bucket - 1)


@dataclasses.dataclass(frozen=True)
class DistanceBucket:
    """The sums of one bucket: segments first_segment..last_segment after the last state reset."""

    first_segment: int
    last_segment: int
    loss_sum: float
    num_targets: int
    num_target_bytes: int

    @property
    def bits_per_byte(self) -> float:
        return self.loss_sum / math.log(2) / self.num_target_bytes if self.num_target_bytes else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "bits_per_byte": self.bits_per_byte}


class DistanceProfile:
    """Running float64 sums per bucket (loss, targets, bytes), on the evaluator's device."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.sums_3N = torch.zeros(3, MAX_BUCKETS, dtype=torch.float64, device=device)

    def add(self, distance_B: torch.Tensor, token_loss_BL: torch.Tensor, labels_BL: torch.Tensor,
            token_bytes_V: torch.Tensor, ignore_index: int) -> None:
        """Add one segment: each row's per-token losses (0 where unscored) at its distance."""
        scored_BL = labels_BL != ignore_index
        bytes_BL = token_bytes_V[labels_BL.clamp(min=0)] * scored_BL
        rows_3B = torch.stack([token_loss_BL.double().sum(1), scored_BL.sum(1).double(), bytes_BL.sum(1).double()])
        self.sums_3N.index_add_(1, bucket_of(distance_B), rows_3B)

    def buckets(self) -> tuple[DistanceBucket, ...]:
        """The buckets that scored anything, nearest first."""
        sums = self.sums_3N.cpu()
        return tuple(
            DistanceBucket(*bucket_range(b), float(sums[0, b]), int(sums[1, b]), int(sums[2, b]))
            for b in range(MAX_BUCKETS) if sums[1, b] > 0
        )
