"""Sweep 2: state bytes, peak RSS growth and FLOPs per token against the memory size, each point
in a fresh process (``measure_memory_point`` runs there), so the peak it reads is its own."""

from __future__ import annotations

import logging
import math
import os

import torch

from ..common import report
from ..common.flops import count_flops
from ..common.machine import current_rss_bytes, peak_rss_bytes, reset_peak_rss
from ..common.models import ModelSizes, build_model
from ..common.processes import call_each_in_fresh_process
from .plan import MEMORY_MODELS, Plan

logger = logging.getLogger(__name__)


def memory_sweep(plan: Plan, *, seed: int, threads: int | None) -> list[dict]:
    """State bytes, peak memory growth and FLOPs per token against memory size, each point in a
    fresh process (two at a time: nothing here is timed, and each process's peak is its own)."""
    points = [(memory_size, name) for memory_size in plan.memory_sizes for name in MEMORY_MODELS]
    results = call_each_in_fresh_process(
        measure_memory_point,
        [dict(name=name, sizes=plan.sizes, memory_size=memory_size, batch=plan.batch, seed=seed, threads=threads)
         for memory_size, name in points],
        parallel=min(2, os.cpu_count() or 1),
    )
    rows = []
    for memory_size in plan.memory_sizes:
        row = {"memory_size": memory_size}
        row.update({name: result for (size, name), result in zip(points, results) if size == memory_size})
        rows.append(row)
        logger.info("memory size %d: %s", memory_size, ", ".join(
            f"{name} state {report.format_bytes(row[name]['state_bytes_per_row'])}/row, training peak "
            f"+{report.format_bytes(row[name]['training_peak_growth_bytes'])}" for name in MEMORY_MODELS))
    return rows


def measure_memory_point(*, name: str, sizes: ModelSizes, memory_size: int, batch: int, seed: int,
                         threads: int | None) -> dict:
    """One model at one memory size; runs in a fresh process, so the peak RSS is this workload's."""
    if threads is not None:
        torch.set_num_threads(threads)
    field = "mem_len" if name == "transformer-xl" else "num_slots"
    model = build_model(name, sizes, seed=seed, **{field: memory_size})
    length = sizes.segment_len
    fill = math.ceil(memory_size / length) * length  # enough whole segments to fill a mem_len cache
    window = 2 * length
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, sizes.vocab_size, (batch, fill + window), generator=generator)
    fill_BN, window_BN = ids[:, :fill], ids[:, fill:]
    # Warm up on one segment of one row first, so the baseline already holds what the first
    # forward and backward allocate once per process (thread pools, kernel workspaces).
    model(ids[:1, :length], labels=ids[:1, :length]).loss.backward()
    model.zero_grad(set_to_none=True)
    peak_before = peak_rss_bytes()
    peak_reset = reset_peak_rss()
    baseline = current_rss_bytes()
    with torch.no_grad():
        state = model.advance(fill_BN, state=model.init_state(batch))
        model(window_BN, state=state)
    inference_peak = peak_rss_bytes()
    model(window_BN, state=state, labels=window_BN).loss.backward()
    training_peak = peak_rss_bytes()
    model.zero_grad(set_to_none=True)
    with torch.no_grad():
        flops = count_flops(lambda: model(window_BN, state=state))
    return {
        "state_bytes_per_row": state.num_bytes() // batch,
        "baseline_rss_bytes": baseline,
        # The process peak before the workload (imports, model, warm-up); unless it could be
        # reset, a workload peak below it does not show.
        "peak_rss_before_bytes": peak_before,
        "peak_rss_reset": peak_reset,
        "inference_peak_rss_bytes": inference_peak,
        "training_peak_rss_bytes": training_peak,
        "inference_peak_growth_bytes": max(inference_peak - baseline, 0),
        "training_peak_growth_bytes": max(training_peak - baseline, 0),
        "flops_per_token": flops / window_BN.numel(),
        "batch": batch,
        "fill_tokens": fill,
        "window_tokens": window,
    }
