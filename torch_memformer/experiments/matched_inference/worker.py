"""Inside a model's process: the loaded model and its stream stay in one module global of the
process between the parent's calls (``common.processes.FreshProcess``)."""

from __future__ import annotations

import dataclasses
import gc
from typing import Any

import torch
import torch.nn.functional as F

from ...checkpoint import load_model
from ..common.machine import current_rss_bytes, peak_rss_bytes, reset_peak_rss
from ..common.timing import Stopwatch, generation_seconds

LN2 = 0.6931471805599453


@dataclasses.dataclass
class _Loaded:
    model: torch.nn.Module
    ids_BN: torch.Tensor
    state_after_read: Any
    generator: torch.Generator


_loaded: _Loaded | None = None


def _open(checkpoint: str, ids: list[int], batch: int, threads: int | None, warmup_generate: int) -> _Loaded:
    if threads is not None:
        torch.set_num_threads(threads)
    model = load_model(checkpoint).model.eval()
    ids_BN = torch.tensor(ids, dtype=torch.long).unsqueeze(0).expand(batch, -1).contiguous()
    generator = torch.Generator().manual_seed(0)
    # Warm-up: two segments read and a few tokens sampled, so first-call allocations, thread pools
    # and kernel choices are done before anything is measured.
    length = model.config.segment_len
    with torch.no_grad():
        state = _read(model, ids_BN[:, : 2 * length])[1]
        model.generate(ids_BN[:, :1], warmup_generate, state=state, generator=generator)
    return _Loaded(model=model, ids_BN=ids_BN, state_after_read=None, generator=generator)


def _read(model: torch.nn.Module, ids_BN: torch.Tensor) -> tuple[dict, Any, float]:
    """Stream ``ids_BN`` chunk by chunk (one segment each) from a fresh state. Returns the wall
    and CPU seconds spent in the model calls, the final state and the loss summed in nats over
    the tokens predicted (every one but the first)."""
    length = model.config.segment_len
    state = model.init_state(ids_BN.size(0))
    seconds, loss, previous_B1V = {"wall_seconds": 0.0, "cpu_seconds": 0.0}, 0.0, None
    with torch.no_grad():
        for start in range(0, ids_BN.size(1), length):
            chunk_BT = ids_BN[:, start:start + length]
            with Stopwatch() as watch:
                out = model(chunk_BT, state=state)
            seconds["cpu_seconds"] += watch.cpu
            seconds["wall_seconds"] += watch.wall
            state = out.state
            # forward's logits[:, i] predict token i + 1; the previous chunk's last one predicts token 0.
            logits_BTV = out.logits if previous_B1V is None else torch.cat([previous_B1V, out.logits], dim=1)
            targets_BT = chunk_BT[:, 1:] if previous_B1V is None else chunk_BT
            loss += float(F.cross_entropy(logits_BTV[:, :-1].flatten(0, 1), targets_BT.flatten(), reduction="sum"))
            previous_B1V = out.logits[:, -1:]
    return seconds, state, loss


def open_model(*, checkpoint: str, ids: list[int], batch: int, threads: int | None, warmup_generate: int) -> dict:
    """Load the model in this (timing) process and keep it, with the stream, in a global."""
    global _loaded
    _loaded = _open(checkpoint, ids, batch, threads, warmup_generate)
    model = _loaded.model
    return {"parameters": sum(p.numel() for p in model.parameters()), "threads": torch.get_num_threads(),
            "parameter_bytes": sum(p.numel() * p.element_size() for p in model.parameters())}


def time_read() -> dict:
    """One timed read of the whole stream from a fresh state; keeps the final state for generation."""
    loaded = _require_loaded()
    seconds, state, loss = _read(loaded.model, loaded.ids_BN)
    loaded.state_after_read = state
    predicted = loaded.ids_BN.numel() - loaded.ids_BN.size(0)
    return {**seconds, "bits_per_token": loss / LN2 / predicted}


def time_generate(*, tokens: int) -> dict:
    """Wall and CPU seconds to sample ``tokens`` tokens per row after the stream (the time of
    reading the one-token prompt subtracted)."""
    loaded = _require_loaded()
    return generation_seconds(loaded.model, loaded.ids_BN[:, -1:], tokens, state=loaded.state_after_read,
                              generator=loaded.generator)


def memory_point(*, checkpoint: str, ids: list[int], batch: int, threads: int | None, generate_tokens: int,
                 warmup_generate: int) -> dict:
    """Peak RSS above the warmed-up model while reading the stream, then while generating."""
    loaded = _open(checkpoint, ids, batch, threads, warmup_generate)
    model = loaded.model
    gc.collect()
    start_peak = peak_rss_bytes()
    baseline = current_rss_bytes()
    reset = reset_peak_rss()
    _, state, _ = _read(model, loaded.ids_BN)
    read_peak = peak_rss_bytes()
    gc.collect()
    reset_peak_rss()
    generate_baseline = current_rss_bytes()
    with torch.no_grad():
        model.generate(loaded.ids_BN[:, -1:], generate_tokens, state=state, generator=loaded.generator)
    generate_peak = peak_rss_bytes()
    return {
        "state_bytes_per_row": state.num_bytes() // batch,
        "baseline_rss_bytes": baseline,
        "peak_rss_reset": reset,
        "start_peak_rss_bytes": start_peak,
        "read_peak_rss_bytes": read_peak,
        "read_peak_growth_bytes": max(read_peak - baseline, 0),
        "generate_peak_growth_bytes": max(generate_peak - generate_baseline, 0),
        "process_peak_rss_bytes": max(read_peak, generate_peak),
    }


def _require_loaded() -> _Loaded:
    assert _loaded is not None, "open_model must run first in this process"
    return _loaded
