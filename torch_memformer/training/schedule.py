"""The learning-rate schedule: linear warmup, then cosine decay to ``min_lr_ratio * lr``.

A pure function of the step, so a resumed run needs nothing but the step to continue it.
"""

from __future__ import annotations

import math


def learning_rate(step: int, *, lr: float, warmup_steps: int, total_steps: int, min_lr_ratio: float) -> float:
    """The learning rate of optimizer step ``step`` (1-based: the first update is step 1).

    Steps 1 .. warmup_steps rise linearly to ``lr`` (step w gets lr * w / warmup_steps); the
    remaining steps follow half a cosine from ``lr`` down to ``min_lr_ratio * lr``, reached at
    ``total_steps``. Past ``total_steps`` the rate stays at the minimum.
    """
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    if warmup_steps and step <= warmup_steps:
        return lr * step / warmup_steps
    floor = lr * min_lr_ratio
    decay_steps = total_steps - warmup_steps
    if decay_steps <= 0:
        return lr
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return floor + 0.5 * (lr - floor) * (1.0 + math.cos(math.pi * progress))
