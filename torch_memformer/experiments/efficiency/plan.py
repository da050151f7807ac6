"""What one efficiency run measures: the models' sizes, the lengths and memory sizes swept, the
batch of the memory sweep and the timed repeats."""

from __future__ import annotations

import dataclasses

from ..common.models import ModelSizes

# The two models with a memory size to sweep (Transformer-XL's mem_len, Memformer's slots).
MEMORY_MODELS = ("transformer-xl", "memformer")


@dataclasses.dataclass(frozen=True)
class Plan:
    """What one run measures; ``DEFAULT`` and ``QUICK`` below, flags override the sweeps."""

    sizes: ModelSizes
    lengths: tuple[int, ...]
    memory_sizes: tuple[int, ...]
    batch: int
    repeats: int


DEFAULT = Plan(
    sizes=ModelSizes(),
    lengths=(128, 256, 512, 1024, 2048, 4096, 8192, 16384),
    memory_sizes=(64, 128, 256, 512, 1024, 2048),
    batch=8,
    repeats=3,
)
QUICK = Plan(
    sizes=ModelSizes(d_model=32, num_heads=4, d_ff=64, num_encoder_layers=1, num_decoder_layers=1, num_slots=4,
                     segment_len=16, baseline_layers=2, mem_len=16),
    lengths=(32, 64),
    memory_sizes=(16, 32),
    batch=2,
    repeats=1,
)
