"""The model configuration: one validated dataclass, saved as JSON next to the weights.

Defaults follow the spec (``docs/architecture.md`` lists where the paper is silent and what we
chose). Every field is checked in ``__post_init__`` so a bad value fails where it is written, with
a message that names the field and the fix.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Literal

from . import json_input

WriteHeads = Literal["multi", "single"]
AttentionImpl = Literal["sdpa", "reference"]
ContextPositions = Literal["rotary", "none"]
ForgettingForm = Literal["polar", "vector"]

# What a checkpoint saved before a field existed meant by it: the behaviour it was trained with.
# ``registry.config_from_saved`` fills these in for saved configs that lack the field, so old
# checkpoints load and compute exactly as before; a config written by hand gets the defaults.
LEGACY_VALUES: dict[str, Any] = {"write_keep_init": None, "forgetting_init_norm": 1.0, "context_positions": "none",
                                  "forgetting_form": "vector"}


@dataclasses.dataclass(frozen=True)
class MemformerConfig:
    """Hyper-parameters of a Memformer language model.

    The defaults are a small model that trains on a laptop CPU; the paper's sizes are in
    ``docs/architecture.md``.
    """

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
    # A learned bias on the writer's self logit, started so that a fresh writer keeps this share of
    # each slot per write (decision 13). None (the default): no such bias, the paper's equations.
    # Measured: it slows learning to write so much that recall stays near chance (docs/results.md).
    write_keep_init: float | None = None
    # ||v_i|| at initialisation: how far a kept slot turns towards its blank state per write
    # (decision 5). Only the initialisation; the norms are learned.
    forgetting_init_norm: float = 0.02
    # How v_i is learned (decision 15): "polar" holds a direction and a log-norm, so the
    # forgetting rate ||v_i|| moves only where the gradient pushes it; "vector" holds v_i itself.
    forgetting_form: ForgettingForm = "polar"
    # Positions between the decoder and the previous segment it attends to: "rotary" rotates the
    # decoder's cross-attention with encoder positions 0..L-1 and decoder positions L..2L-1
    # (decision 1); "none" leaves it position-free (the models before it).
    context_positions: ContextPositions = "rotary"
    tie_embeddings: bool = True
    rope_base: float = 10000.0
    # "reference" runs the written-out attention instead of scaled_dot_product_attention.
    attention_impl: AttentionImpl = "sdpa"
    layer_norm_eps: float = 1e-5
    init_std: float = 0.02

    def __post_init__(self) -> None:
        _check_int(self, "vocab_size", minimum=2)
        _check_int(self, "d_model", minimum=2)
        _check_int(self, "num_heads", minimum=1)
        _check_int(self, "d_ff", minimum=1)
        _check_int(self, "num_encoder_layers", minimum=1)
        _check_int(self, "num_decoder_layers", minimum=1)
        _check_int(self, "num_slots", minimum=1)
        _check_int(self, "segment_len", minimum=1)
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
        _check_float(self, "dropout", low=0.0, high=1.0, high_open=True)
        _check_float(self, "write_temperature", low=0.0, low_open=True)
        _check_float(self, "rope_base", low=1.0, low_open=True)
        _check_float(self, "layer_norm_eps", low=0.0, low_open=True)
        _check_float(self, "init_std", low=0.0, low_open=True)
        if self.write_keep_init is not None:
            _check_float(self, "write_keep_init", low=0.0, high=1.0, low_open=True, high_open=True)
        _check_float(self, "forgetting_init_norm", low=0.0, low_open=True)
        _check_choice(self, "context_positions", ("rotary", "none"))
        _check_choice(self, "forgetting_form", ("polar", "vector"))
        for name in ("forgetting", "use_memory", "tie_embeddings"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        _check_choice(self, "write_heads", ("multi", "single"))
        _check_choice(self, "attention_impl", ("sdpa", "reference"))

    @property
    def head_dim(self) -> int:
        return self.d_model // self.num_heads

    @property
    def bos_token_id(self) -> int:
        """The decoder's begin-of-segment token: one embedding row past the vocabulary."""
        return self.vocab_size

    def replace(self, **changes: Any) -> "MemformerConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "MemformerConfig":
        if not isinstance(values, dict):
            raise ValueError(f"a Memformer config must be a JSON object, got {type(values).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown config field(s) {field_names(unknown)}; known fields: {', '.join(sorted(known))}"
            )
        return cls(**values)

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_json(cls, path_or_text: str | Path) -> "MemformerConfig":
        """Read a config from a JSON file path, or from JSON text."""
        text = str(path_or_text)
        if not text.lstrip().startswith("{"):
            path = Path(path_or_text)
            try:
                text = path.read_text()
            except OSError as error:
                raise ValueError(f"cannot read config file {path}: {error.strerror}") from None
            except UnicodeDecodeError:
                raise ValueError(f"config file {path} is not valid JSON (not UTF-8 text)") from None
        try:
            values = json_input.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"config is not valid JSON ({error.msg} at line {error.lineno})") from None
        return cls.from_dict(values)


def field_names(names: list[str]) -> str:
    """Names from a user's JSON for a message: as they are, or quoted and escaped when they would
    not show (empty, or holding a newline or a control character that would break the one-line error)."""
    return ", ".join(name if name and name.isprintable() else repr(name) for name in names)


def _check_int(config: Any, name: str, *, minimum: int) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def _check_float(
    config: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if low is not None and (value <= low if low_open else value < low):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and (value >= high if high_open else value > high):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {value}")


def _check_choice(config: Any, name: str, choices: tuple[str, ...]) -> None:
    value = getattr(config, name)
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
