"""Running measurements in a fresh process, so what it measures about memory is its own.

A process's peak RSS only ever goes up, and two models in one process share it. A measurement of
peak memory therefore runs in a ``FreshProcess`` (or ``call_each_in_fresh_process``): spawned (not forked: a fork would inherit the
parent's memory and its OpenMP threads), running module-level functions one call at a time, and
keeping whatever those functions keep in module globals between calls (a model, a stream state).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class FreshProcess:
    """A spawned Python process that runs picklable (module-level) functions, one call at a time.

        with FreshProcess() as process:
            peak = process.call(measure_peak, size=64)

    Exceptions raised in the process are raised again by ``call``.
    """

    def __init__(self) -> None:
        self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))

    def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        return self._pool.submit(fn, *args, **kwargs).result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> "FreshProcess":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def call_each_in_fresh_process(
    fn: Callable[..., T], calls: Sequence[dict[str, Any]], *, parallel: int = 1
) -> list[T]:
    """``[fn(**kwargs) for kwargs in calls]``, each call in its own newly spawned process, up to
    ``parallel`` at a time (fine for memory, not for timing: parallel calls share the CPU)."""

    def call_one(kwargs: dict[str, Any]) -> T:
        with FreshProcess() as process:
            return process.call(fn, **kwargs)

    # One FreshProcess per call rather than a pool with max_tasks_per_child=1, whose worker
    # replacement took seconds per task (Python 3.11).
    with ThreadPoolExecutor(max_workers=parallel) as threads:
        return list(threads.map(call_one, calls))
