"""What one matched-inference run measures: the tokens streamed and generated, the batches and
the repeats."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Plan:
    tokens: int
    generate_tokens: int
    repeats: int
    batch: int
    # Rows streamed together in the memory measurement (see the module doc).
    memory_batch: int
    # Measure every Transformer-XL (True), or only the matched one.
    all_txl: bool
    warmup_generate: int = 8


DEFAULT = Plan(tokens=16384, generate_tokens=512, repeats=5, batch=1, memory_batch=16, all_txl=True)
QUICK = Plan(tokens=192, generate_tokens=16, repeats=1, batch=1, memory_batch=2, all_txl=False, warmup_generate=2)
