"""The model configuration: one validated dataclass, saved as JSON next to the weights.

Defaults follow the spec (``docs/architecture.md`` lists where the paper is silent and what we
chose). Every field is checked in ``__post_init__`` so a bad value fails where it is written, with
a message that names the field and the fix. The validators and the JSON round trip are the ones
every config shares (``config_base.py``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal

from .config_base import JsonConfig, check_bool, check_choice, check_float, check_init_std, check_int, initial_std

WriteHeads = Literal["multi", "single"]
AttentionImpl = Literal["sdpa", "reference"]
ContextPositions = Literal["rotary", "none"]
ForgettingForm = Literal["polar", "vector"]
WriterInitScope = Literal["value", "all"]

# What a checkpoint saved before a field existed meant by it: the behaviour it was trained with.
# ``registry.config_from_saved`` fills these in for saved configs that lack the field, so old
# checkpoints load and compute exactly as before; a config written by hand gets the defaults.
LEGACY_VALUES: dict[str, Any] = {"write_keep_init": None, "forgetting_init_norm": 1.0, "context_positions": "none",
                                  "forgetting_form": "vector", "read_null_slot": False,
                                  "read_null_logit_init": None, "init_std": 0.02,
                                  "writer_init_std": None, "writer_init_scope": "all"}


@dataclasses.dataclass(frozen=True)
class MemformerConfig(JsonConfig):
    """Hyper-parameters of a Memformer language model.

    The defaults are a small model that trains on a laptop CPU; the paper's sizes are in
    ``docs/architecture.md``.
    """

    config_name: ClassVar[str] = "Memformer config"

    vocab_size: int = 256
    d_model: int = 256
    num_heads: int = 8
    d_ff: int = 1024
    num_encoder_layers: int = 4
    num_decoder_layers: int = 4
    num_slots: int = 32
    segment_len: int = 64
    dropout: float = 0.0
    # tau in the writer's softmax (spec 1.2); < 1 sharpens keep-vs-take, the paper's ablation is 1.
    write_temperature: float = 0.5
    # Biased Memory Normalization's learned per-slot bias (spec 1.3); False is the paper's ablation.
    forgetting: bool = True
    # False removes the memory (no read, no write): the paper's "without memory" ablation.
    use_memory: bool = True
    # "single" writes with one head spanning d_model: the paper's single-head ablation.
    write_heads: WriteHeads = "multi"
    # A learned bias on the writer's self logit per write head, started so that a fresh writer
    # keeps this share of each slot per write (decision 13): a number for every head (measured: it
    # slows learning to write so much that recall stays near chance), or "spread": head 0 without
    # a bias, the others kept over timescales spread geometrically up to 64 segments (decision 16).
    # None: no such bias, the paper's equations.
    write_keep_init: float | str | None = None
    # ||v_i|| at initialisation: how far a kept slot turns towards its blank state per write
    # (decision 5). Only the initialisation; the norms are learned.
    forgetting_init_norm: float = 0.02
    # How v_i is learned (decision 15): "polar" holds a direction and a log-norm, so the
    # forgetting rate ||v_i|| moves only where the gradient pushes it; "vector" holds v_i itself.
    forgetting_form: ForgettingForm = "polar"
    # One learned vector, never written, that every encoder layer's memory read may attend to
    # besides the slots (decision 17): a token can read "nothing" without the writer having to
    # keep a slot constant for it. False (the default) is the paper's read: measured, the null
    # slot helps copy and the quickstart but loses recall seeds and short debtext runs.
    # Ignored without memory.
    read_null_slot: bool = False
    # A learned per-head offset on the null slot's logit, started at this value (decision 18):
    # -4 starts the null slot at e^-4 of one slot's weight, so the read begins as the paper's.
    # None: no offset (the null slot competes as one more slot). Ignored without the null slot.
    read_null_logit_init: float | None = None
    # Positions between the decoder and the previous segment it attends to: "rotary" rotates the
    # decoder's cross-attention with encoder positions 0..L-1 and decoder positions L..2L-1
    # (decision 1); "none" leaves it position-free (the models before it).
    context_positions: ContextPositions = "rotary"
    tie_embeddings: bool = True
    rope_base: float = 10000.0
    # "reference" runs the written-out attention instead of scaled_dot_product_attention.
    attention_impl: AttentionImpl = "sdpa"
    layer_norm_eps: float = 1e-5
    # The weights' starting standard deviation (embeddings and projections; residual outputs are
    # further scaled by depth). None: d_model ** -0.5 (decision 20: at GPT-2's fixed 0.02, models of
    # d_model 64-192 start with near-zero attention logits and never learn a key lookup).
    init_std: float | None = None
    # The starting std of the memory writer's projections named by writer_init_scope (decisions 20,
    # 21): GPT-2's 0.02 at every width, so a fresh write adds little to each slot; with the value
    # projection at init_std's larger scale what the memory keeps fades past the gaps seen in
    # training. None: init_std's value.
    writer_init_std: float | None = 0.02
    # Which writer projections start at writer_init_std (decision 21): "value" only W_V, so the
    # write's query and key start at init_std and the write can tell tokens apart from the start
    # (with all three small it sits at a saddle and stores only the set of what it saw); "all"
    # W_Q, W_K and W_V (decision 20 as first adopted).
    writer_init_scope: WriterInitScope = "value"

    def __post_init__(self) -> None:
        check_int(self, "vocab_size", minimum=2)
        check_int(self, "d_model", minimum=2)
        check_int(self, "num_heads", minimum=1)
        check_int(self, "d_ff", minimum=1)
        check_int(self, "num_encoder_layers", minimum=1)
        check_int(self, "num_decoder_layers", minimum=1)
        check_int(self, "num_slots", minimum=1)
        check_int(self, "segment_len", minimum=1)
        if self.d_model % self.num_heads:
            raise ValueError(
                f"d_model ({self.d_model}) must be divisible by num_heads ({self.num_heads}); "
                "pick num_heads among the divisors of d_model"
            )
        if (self.d_model // self.num_heads) % 2:
            raise ValueError(
                f"the head size d_model / num_heads ({self.d_model // self.num_heads}) must be even "
                "for rotary position embeddings; change d_model or num_heads"
            )
        check_float(self, "dropout", low=0.0, high=1.0, high_open=True)
        check_float(self, "write_temperature", low=0.0, low_open=True)
        check_float(self, "rope_base", low=1.0, low_open=True)
        check_float(self, "layer_norm_eps", low=0.0, low_open=True)
        check_init_std(self)
        if self.writer_init_std is not None:
            check_float(self, "writer_init_std", low=0.0, low_open=True)
        if isinstance(self.write_keep_init, str):
            check_choice(self, "write_keep_init", ("spread",))
        elif self.write_keep_init is not None:
            check_float(self, "write_keep_init", low=0.0, high=1.0, low_open=True, high_open=True)
        check_float(self, "forgetting_init_norm", low=0.0, low_open=True)
        if self.read_null_logit_init is not None:
            check_float(self, "read_null_logit_init", low=-30.0, high=30.0)
        check_choice(self, "context_positions", ("rotary", "none"))
        check_choice(self, "forgetting_form", ("polar", "vector"))
        check_choice(self, "writer_init_scope", ("value", "all"))
        for name in ("forgetting", "use_memory", "read_null_slot", "tie_embeddings"):
            check_bool(self, name)
        check_choice(self, "write_heads", ("multi", "single"))
        check_choice(self, "attention_impl", ("sdpa", "reference"))

    @property
    def head_dim(self) -> int:
        return self.d_model // self.num_heads

    @property
    def initial_std(self) -> float:
        """``init_std``, or d_model ** -0.5 when it is None (decision 20)."""
        return initial_std(self)

    @property
    def bos_token_id(self) -> int:
        """The decoder's begin-of-segment token: one embedding row past the vocabulary."""
        return self.vocab_size

