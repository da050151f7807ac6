"""The Memformer model, in two halves.

The architecture, read top to bottom (spec 1): ``attention.py``, ``blocks.py``, ``encoder.py``,
``memory.py``, ``decoder.py``, ``memformer.py`` (the segment step), sized by ``../config.py``.
Beside it, the stream: ``segment_stream.py`` (Memformer's state, restarts and walk over
segments), ``state.py``, ``decoder_cache.py`` and ``cursor.py`` (cached generation), and the
contract shared with the baselines: ``stream_lm.py``, ``checks.py``, ``loss.py``,
``generation.py``."""

from .generation import GenerationOutput
from .memformer import Memformer, MemformerOutput
from .state import MemformerState
from .stream_lm import StreamLM, StreamOutput

__all__ = ["GenerationOutput", "Memformer", "MemformerOutput", "MemformerState", "StreamLM", "StreamOutput"]
