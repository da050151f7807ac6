"""Inside a model's process: the model and its stream live in the worker process (a growing KV
cache of gigabytes cannot travel between processes), so these functions keep them in one module
global of that process, and the parent calls them by name (``common.processes.FreshProcess``).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import torch

from ..common.machine import current_rss_bytes, peak_rss_bytes, reset_peak_rss
from ..common.models import ModelSizes, build_model, parameter_count
from ..common.timing import generation_seconds


@dataclasses.dataclass
class _Stream:
    name: str
    model: torch.nn.Module
    state: Any
    position: int
    generator: torch.Generator
    vocab_size: int
    # Memformer's state at every position reached (96.5 KiB each), for the flatness round.
    kept: dict[int, Any] = dataclasses.field(default_factory=dict)


_stream: _Stream | None = None


def open_stream(*, name: str, sizes: ModelSizes, seed: int, threads: int | None, warmup_tokens: int) -> dict:
    """Build the model in this process and start an empty stream; warm the generation path up."""
    global _stream
    if threads is not None:
        torch.set_num_threads(threads)
    # The Transformer reads what advance gives it in chunks of 512: the values never depend on
    # the chunk (docs/baselines.md), and fewer, larger chunks copy the growing cache less often.
    overrides = {"segment_len": 512} if name == "transformer" else {}
    model = build_model(name, sizes, seed=seed, **overrides)
    generator = torch.Generator().manual_seed(seed)
    _stream = _Stream(name=name, model=model, state=model.init_state(1), position=0, generator=generator,
                      vocab_size=sizes.vocab_size)
    with torch.no_grad():
        model.generate(torch.zeros(1, 1, dtype=torch.long), warmup_tokens, state=model.init_state(1),
                       generator=generator)
    return {"parameters": parameter_count(model), "threads": torch.get_num_threads(), "overrides": overrides}


def advance_stream(*, to: int, advance_limit: int, chunk: int) -> dict:
    """Carry the stream to ``to`` tokens: ``advance`` over random tokens, or (the Transformer past
    ``advance_limit``) repeat its cache. Returns how, and how long it took."""
    stream = _require_stream()
    start = time.perf_counter()
    grown_by_repetition = 0
    with torch.no_grad():
        real_target = to if stream.name != "transformer" else min(to, max(advance_limit, stream.position))
        while stream.position < real_target:
            n = min(chunk, real_target - stream.position)
            ids = torch.randint(0, stream.vocab_size, (1, n), generator=stream.generator)
            stream.state = stream.model.advance(ids, state=stream.state)
            stream.position += n
        if stream.position < to:
            grown_by_repetition = to - stream.position
            stream.state = _repeat_cache(stream.state, to)
            stream.position = to
    if stream.name == "memformer":
        stream.kept[to] = stream.state
    return {"advance_seconds": time.perf_counter() - start, "cache_positions_repeated": grown_by_repetition}


def _repeat_cache(state: Any, length: int) -> Any:
    """A full-cache Transformer state of ``length`` positions: the cache repeated along positions.

    The step's cost and memory depend on the cache's shape only; its values (keys of real tokens,
    rotated at other positions) are as good as any for timing and no longer a faithful stream.
    """
    cached = state.keys.size(3)
    copies = -(-length // cached)
    keys = state.keys.repeat(1, 1, 1, copies, 1)[:, :, :, -length:].contiguous()
    values = state.values.repeat(1, 1, 1, copies, 1)[:, :, :, -length:].contiguous()
    return state.replace(keys=keys, values=values, position=torch.full_like(state.position, length))


def reset_peak() -> bool:
    return reset_peak_rss()


def time_window(*, tokens: int, at: int | None = None) -> dict:
    """Wall and CPU seconds to sample ``tokens`` tokens from the current state (or the kept state
    at position ``at``), which stays where it is (every window starts from the same position);
    the time of reading the one-token prompt is subtracted (``common.timing.generation_seconds``).
    """
    stream = _require_stream()
    state = stream.state if at is None else stream.kept[at]
    prompt = torch.randint(0, stream.vocab_size, (1, 1), generator=stream.generator)
    return generation_seconds(stream.model, prompt, tokens, state=state, generator=stream.generator)


def memory_now() -> dict:
    stream = _require_stream()
    return {"rss_bytes": current_rss_bytes(), "peak_rss_bytes": peak_rss_bytes(),
            "state_bytes": stream.state.num_bytes()}


def _require_stream() -> _Stream:
    assert _stream is not None, "open_stream must run first in this process"
    return _stream
