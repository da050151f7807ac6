"""What one digits run trains and scores: the variants (models and ablations) and the sizes."""

from __future__ import annotations

import dataclasses

from ..common.comparison_plan import ComparisonPlan


@dataclasses.dataclass(frozen=True)
class Variant:
    """One row of the table: a registry model, or Memformer with one ablation switched."""

    label: str
    model: str
    ablation: str | None = None
    # The paper's per-pixel perplexity on MNIST for the matching row (spec section 3), for context.
    paper: str = "-"


VARIANTS: dict[str, Variant] = {
    "memformer": Variant("Memformer (full)", "memformer",
                         paper="1.555 (4+8); 1.594 (2+6, 64 slots)"),
    "transformer-xl": Variant("Transformer-XL (same state bytes)", "transformer-xl",
                              paper="1.650 / 1.618 / 1.611 (memory 56 / 224 / 784)"),
    "transformer": Variant("Transformer (whole image)", "transformer", paper="1.569"),
    "no-memory": Variant("without memory", "memformer", "no-memory", paper="1.745"),
    "slots-1": Variant("1 slot", "memformer", "slots-1", paper="1.627"),
    "slots-16": Variant("16 slots", "memformer", "slots-16", paper="1.604"),
    "slots-32": Variant("32 slots", "memformer", "slots-32", paper="1.600"),
    "temperature-1": Variant("write temperature 1", "memformer", "temperature-1", paper="1.612"),
    "no-forgetting": Variant("without forgetting", "memformer", "no-forgetting", paper="1.630"),
    "single-head-write": Variant("single-head write", "memformer", "single-head-write", paper="1.626"),
}
SLOT_SWEEP = ("slots-1", "slots-16", "slots-32", "memformer")  # 1, 16, 32, 64 slots
WORSE_THAN_FULL = ("temperature-1", "no-forgetting", "single-head-write")


@dataclasses.dataclass(frozen=True)
class Plan(ComparisonPlan):
    """What one run trains and scores; ``DEFAULT`` and ``QUICK`` below, flags override some. The
    sizes and the training recipe are ``ComparisonPlan``'s."""

    segment_len: int
    held_out: int
    # Train on the first this-many training images (None: all); the quick run uses a few.
    train_images: int | None
    eval_batch_size: int
    variants: tuple[str, ...]

    def __post_init__(self) -> None:
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown:
            raise ValueError(f"unknown variant(s) {', '.join(unknown)}; choose among {', '.join(VARIANTS)}")


DEFAULT = Plan(d_model=64, num_heads=4, d_ff=128, encoder_layers=2, decoder_layers=4, num_slots=64,
               baseline_layers=6, segment_len=8, held_out=261, train_images=None, steps=500, batch_size=16,
               window=8, lr=2e-3, warmup_steps=50, eval_batch_size=64, seeds=(0, 1, 2), variants=tuple(VARIANTS), jobs=2)
QUICK = Plan(d_model=16, num_heads=2, d_ff=32, encoder_layers=1, decoder_layers=1, num_slots=4, baseline_layers=2,
             segment_len=8, held_out=16, train_images=32, steps=2, batch_size=4, window=8, lr=2e-3, warmup_steps=1,
             eval_batch_size=16, seeds=(0,), variants=("memformer", "transformer-xl", "transformer", "no-memory"), jobs=1)
