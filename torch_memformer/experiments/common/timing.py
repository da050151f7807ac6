"""Wall and CPU time of what an experiment times.

Both are recorded: the wall time is what a user waits; the process's CPU time leaves out the time
other jobs held the core (on one torch thread it is the work itself), so on the shared machine it
varies less with the load (docs/experiments.md, "Measuring on a shared 2-core machine").
"""

from __future__ import annotations

import time
from typing import Any

import torch


class Stopwatch:
    """Wall and CPU seconds of a block.

        with Stopwatch() as watch:
            model(ids)
        watch.wall, watch.cpu
    """

    wall: float
    cpu: float

    def __enter__(self) -> "Stopwatch":
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu


def generation_seconds(model: Any, prompt_B1: torch.Tensor, tokens: int, *, state: Any,
                       generator: torch.Generator) -> dict[str, float]:
    """Wall and CPU seconds to sample ``tokens`` tokens per row (temperature 1) from ``state``.

    ``generate`` first reads the one-token prompt, which costs a Transformer one more step over its
    cache (and Memformer next to nothing); the time of reading that prompt alone
    (``max_new_tokens=0``) is subtracted, so every model is charged for the tokens it generates.
    """

    def timed(max_new_tokens: int) -> Stopwatch:
        with Stopwatch() as watch:
            model.generate(prompt_B1, max_new_tokens, state=state, temperature=1.0, generator=generator)
        return watch

    prompt, generation = timed(0), timed(tokens)
    return {"wall_seconds": generation.wall - prompt.wall, "cpu_seconds": generation.cpu - prompt.cpu}
