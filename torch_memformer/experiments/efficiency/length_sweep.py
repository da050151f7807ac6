"""Sweep 1: FLOPs and time per token of one batch-1 forward over N tokens, the models interleaved."""

from __future__ import annotations

import logging
import statistics

import torch

from ..common.flops import count_flops
from ..common.models import build_model
from ..common.timing import Stopwatch
from .plan import Plan

logger = logging.getLogger(__name__)


def length_sweep(plan: Plan, *, seed: int) -> list[dict]:
    """FLOPs and median wall and CPU time of one batch-1 forward over N tokens, per model and N."""
    models = {
        # One chunk of the longest length: the whole sequence under one causal attention.
        "transformer": build_model("transformer", plan.sizes, seed=seed, segment_len=max(plan.lengths)),
        "transformer-xl": build_model("transformer-xl", plan.sizes, seed=seed),
        "memformer": build_model("memformer", plan.sizes, seed=seed),
    }
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for length in plan.lengths:
        ids = torch.randint(0, plan.sizes.vocab_size, (1, length), generator=generator)
        # The counted run is also each model's warm-up at this length.
        flops = {name: count_flops(lambda: model(ids)) for name, model in models.items()}
        seconds: dict[str, list[float]] = {name: [] for name in models}
        cpu_seconds: dict[str, list[float]] = {name: [] for name in models}
        for _ in range(plan.repeats):
            for name, model in models.items():  # interleaved, so load changes hit every model alike
                with Stopwatch() as watch:
                    model(ids)
                seconds[name].append(watch.wall)
                cpu_seconds[name].append(watch.cpu)
        row = {"length": length}
        for name in models:
            median = statistics.median(seconds[name])
            row[name] = {
                "flops": flops[name],
                "flops_per_token": flops[name] / length,
                "seconds": median,
                "seconds_all": seconds[name],
                "us_per_token": 1e6 * median / length,
                # The process's CPU time: leaves out the time other jobs held the core.
                "cpu_seconds_all": cpu_seconds[name],
                "cpu_us_per_token": 1e6 * statistics.median(cpu_seconds[name]) / length,
            }
        rows.append(row)
        logger.info("length %d: %s", length, ", ".join(
            f"{name} {row[name]['flops_per_token'] / 1e6:.1f} MFLOP/token {row[name]['us_per_token']:.0f} us/token"
            for name in models))
    return rows
