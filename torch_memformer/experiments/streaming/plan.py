"""What one streaming run measures: the models' sizes, the stream positions and the timed windows."""

from __future__ import annotations

import dataclasses

from ..common.models import ModelSizes

MODELS = ("memformer", "transformer")


@dataclasses.dataclass(frozen=True)
class Plan:
    """What one run measures; ``DEFAULT`` and ``QUICK`` below, flags override the rest."""

    sizes: ModelSizes
    positions: tuple[int, ...]
    repeats: int
    transformer_tokens: int
    # Memformer's timed window, in whole segments (each brings exactly one encoder + write step).
    memformer_segments: int
    advance_limit: int
    # Tokens per model.advance call while carrying a stream forward.
    advance_chunk: int


DEFAULT = Plan(sizes=ModelSizes(), positions=(1024, 4096, 16384, 65536, 262144), repeats=3, transformer_tokens=8,
               memformer_segments=16, advance_limit=16384, advance_chunk=4096)
QUICK = Plan(
    sizes=ModelSizes(d_model=32, num_heads=4, d_ff=64, num_encoder_layers=1, num_decoder_layers=1, num_slots=4,
                     segment_len=16, baseline_layers=2),
    positions=(32, 128),
    repeats=1,
    transformer_tokens=4,
    memformer_segments=1,
    advance_limit=64,  # so the quick run also grows a cache by repetition
    advance_chunk=64,
)
