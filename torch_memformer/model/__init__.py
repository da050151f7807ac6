"""The Memformer architecture: attention, memory, encoder, decoder, the stream, generation, and the
stream contract (``stream_lm.py``) that the baselines share."""

from .generation import GenerationOutput
from .memformer import Memformer, MemformerOutput
from .state import MemformerState
from .stream_lm import StreamLM, StreamOutput

__all__ = ["GenerationOutput", "Memformer", "MemformerOutput", "MemformerState", "StreamLM", "StreamOutput"]
