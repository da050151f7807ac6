"""The Memformer architecture: attention, memory, encoder, decoder, the stream, generation."""

from .generation import GenerationOutput
from .memformer import Memformer, MemformerOutput
from .state import MemformerState

__all__ = ["GenerationOutput", "Memformer", "MemformerOutput", "MemformerState"]
