"""Baselines with Memformer's stream contract: Transformer-XL and a plain Transformer LM.

See ``docs/baselines.md``. Both take ``forward(input_ids, state=None, labels=None, reset=None)``
and offer ``init_state``, ``predict``, ``advance`` and ``generate`` like ``Memformer``: the stream
contract of ``model/stream_lm.py``, whose ``StreamOutput`` they return.
"""

from ..model.stream_lm import StreamOutput
from .config import TransformerConfig, TransformerXLConfig
from .state import TransformerState, TransformerXLState
from .streaming import StreamingLM
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
