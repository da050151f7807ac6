"""Baselines with Memformer's stream contract: Transformer-XL and a plain Transformer LM.

See ``docs/baselines.md``. Both take ``forward(input_ids, state=None, labels=None, reset=None)``
and offer ``init_state``, ``predict``, ``advance`` and ``generate`` like ``Memformer``.
"""

from .config import TransformerConfig, TransformerXLConfig
from .state import TransformerState, TransformerXLState
from .streaming import StreamingLM, StreamOutput
from .transformer import TransformerLM
from .transformer_xl import TransformerXL

__all__ = [
    "StreamOutput",
    "StreamingLM",
    "TransformerConfig",
    "TransformerLM",
    "TransformerState",
    "TransformerXL",
    "TransformerXLConfig",
    "TransformerXLState",
]
