"""Measuring the models on one stream of real text: speed in one long-lived process per model
(runs interleaved), memory in a fresh process per model under ``MALLOC_MMAP_THRESHOLD_``."""

from __future__ import annotations

import contextlib
import os
import statistics
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ...checkpoint import load_model
from ..common.processes import FreshProcess
from .plan import Plan
from .worker import memory_point, open_model, time_generate, time_read

MMAP_THRESHOLD = "65536"


def stream_tokens(data: str, *, checkpoint: str, n: int, cache_dir: Path) -> list[int]:
    """The first ``n`` tokens of the longest document of the valid split (continuing from the
    split's start if it is shorter), with the checkpoint's tokenizer: real text, the same for
    every model."""
    from ...data import DataSpec, tokenized_split

    corpus = tokenized_split(DataSpec(source=data), "valid", load_model(checkpoint).tokenizer, cache_dir=cache_dir)
    longest = int(np.argmax(corpus.doc_lengths))
    start = int(corpus.doc_offsets[longest])
    tokens = np.asarray(corpus.tokens, dtype=np.int64)
    ordered = np.concatenate([tokens[start:], tokens[:start]])
    if len(ordered) < n:
        raise ValueError(f"the valid split of {data} holds {len(ordered):,} tokens, fewer than --tokens {n:,}")
    return ordered[:n].tolist()


def measure_speed(checkpoints: dict[str, str], ids: list[int], plan: Plan, *, threads: int | None) -> dict[str, dict]:
    """Every model in its own process; their reads and generations interleaved, ``repeats`` rounds."""
    keys = list(checkpoints)
    with contextlib.ExitStack() as stack:
        processes = {key: stack.enter_context(FreshProcess()) for key in keys}
        opened = {key: processes[key].call(open_model, checkpoint=checkpoints[key], ids=ids, batch=plan.batch,
                                           threads=threads, warmup_generate=plan.warmup_generate) for key in keys}
        reads: dict[str, list[dict]] = {key: [] for key in keys}
        generations: dict[str, list[dict]] = {key: [] for key in keys}
        for _ in range(plan.repeats):
            for key in keys:
                reads[key].append(processes[key].call(time_read))
            for key in keys:
                generations[key].append(processes[key].call(time_generate, tokens=plan.generate_tokens))
    results = {}
    for key in keys:
        read_tokens, generate_tokens = plan.batch * len(ids), plan.batch * plan.generate_tokens
        results[key] = {**opened[key], "stream_bits_per_byte": reads[key][0]["bits_per_token"]}
        for what, runs_, tokens in (("read", reads[key], read_tokens), ("generate", generations[key], generate_tokens)):
            for clock in ("wall", "cpu"):
                seconds = [r[f"{clock}_seconds"] for r in runs_]
                results[key][f"{what}_{clock}_seconds"] = seconds
                suffix = "" if clock == "wall" else "_cpu"
                results[key][f"{what}_tokens_per_second{suffix}"] = tokens / statistics.median(seconds)
    return results


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Set environment variables for the processes started inside the block (spawned children
    inherit the environment at their start), then restore them."""
    before = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def measure_memory(checkpoints: dict[str, str], ids: list[int], plan: Plan, *, threads: int | None) -> dict[str, dict]:
    """Each model's peak memory in a fresh process of its own (glibc returning large frees)."""
    results = {}
    for key, checkpoint in checkpoints.items():
        with _environment(MALLOC_MMAP_THRESHOLD_=MMAP_THRESHOLD), FreshProcess() as process:
            results[key] = process.call(memory_point, checkpoint=checkpoint, ids=ids, batch=plan.memory_batch,
                                        threads=threads, generate_tokens=plan.generate_tokens,
                                        warmup_generate=plan.warmup_generate)
    return results
