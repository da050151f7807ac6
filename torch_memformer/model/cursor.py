"""The decoding cursor: where generation stands in a stream, with the decoder's KV cache.

Shape legend: B batch, S slots, L segment length, D d_model, V vocabulary.

A cursor is the working form of a ``MemformerState`` for rows that share one in-segment position
p: the memory M_t, the previous segment's encoding H_{t-1}, this segment's tokens 0 .. p - 1, and
the decoder's keys and values for its inputs [BOS, tokens 0 .. p - 1] at positions 0 .. p, whose
output at position p predicts token p. Reading one more token (``push``) costs one cached decoder
step; once every L tokens the finished segment goes through the encoder and the writer and the
cache starts again on the new context (spec 1: the decoder sees only H_{t-1}, never the memory).

The decoder runs lazily, when ``logits`` asks for the next distribution: a sampler that stops
after its last token never pays for a decoder step it does not read, and a cursor built from a
state (``start``) computes nothing until it is asked.

Unlike ``MemformerState`` a cursor is mutable (its KV cache is written in place, one position at
a time): it is the private working object of one generation, whether the native sampler
(``StreamLM.generate``, ``stream_lm.py``) or the Hugging Face cache
(``integrations/hf/cache.py``); ``state()`` turns it back into an immutable state. The model is passed to each call rather than kept, so a cursor is
plain data that can be copied or row-selected.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from .decoder_cache import LayerCache
from .state import MemformerState

if TYPE_CHECKING:
    from .memformer import Memformer


@dataclasses.dataclass
class DecodingCursor:
    """Rows of a stream at one in-segment position; see the module docstring.

    Attributes:
        memory_BSD: the memory that will encode the current segment.
        context_BLD: the previous segment's encoder states (the decoder's cross-attention source).
        tokens_BL: the current segment's tokens; entries at and after ``position`` are not read.
        position: p, how many tokens of the current segment have been read (0 .. L - 1).
        started_B: carried into ``state()`` unchanged.
        layers: the decoder's KV cache (None until the first decoder call of the segment).
        decoded: decoder positions in ``layers`` (0 .. p + 1); p + 1 means ``hidden_BD`` is current.
        hidden_BD: the decoder's output at position ``decoded - 1``.
    """

    memory_BSD: torch.Tensor
    context_BLD: torch.Tensor
    tokens_BL: torch.Tensor
    position: int
    started_B: torch.Tensor
    layers: list[LayerCache] | None = None
    decoded: int = 0
    hidden_BD: torch.Tensor | None = None

    @classmethod
    def start(cls, state: MemformerState) -> "DecodingCursor":
        """A cursor at the end of ``state`` (every row at the same position; nothing computed yet)."""
        position = int(state.position[0])
        assert bool((state.position == position).all()), "a cursor holds rows at one in-segment position"
        return cls(
            memory_BSD=state.memory,
            context_BLD=state.context,
            # A copy: push writes into it, and the state it came from must not change (state.py).
            tokens_BL=state.tokens.clone(),
            position=position,
            started_B=state.started,
        )

    @property
    def batch_size(self) -> int:
        return self.tokens_BL.size(0)

    def logits(self, model: "Memformer") -> torch.Tensor:
        """(B, V) the distribution of the token at ``position`` (runs the decoder if it has not)."""
        return model.logits_from_hidden(self._hidden(model))

    def push(self, model: "Memformer", token_B: torch.Tensor) -> None:
        """Read one token per row at ``position``; a segment that completes is encoded and written."""
        self.tokens_BL[:, self.position] = token_B
        self.position += 1
        if self.position == self.tokens_BL.size(1):
            # The segment is complete: encode it, write the memory, restart the cache on H_t.
            self.context_BLD, self.memory_BSD = model.encode_and_write(self.tokens_BL, self.memory_BSD)
            self.position, self.layers, self.decoded, self.hidden_BD = 0, None, 0, None

    def state(self) -> MemformerState:
        """The immutable state after every token pushed (what a forward over them would return)."""
        length = self.tokens_BL.size(1)
        return MemformerState(
            memory=self.memory_BSD,
            context=self.context_BLD,
            tokens=F.pad(self.tokens_BL[:, : self.position], (0, length - self.position)),
            position=torch.full_like(self.started_B, self.position, dtype=torch.long),
            started=self.started_B,
        )

    def select(self, rows_R: torch.Tensor) -> "DecodingCursor":
        """A new cursor holding rows ``rows_R`` (a 1-D index tensor; repeats allowed), cache included."""

        def pick(t: torch.Tensor) -> torch.Tensor:
            return t.index_select(0, rows_R)

        layers = None
        if self.layers is not None:
            layers = [LayerCache(*(pick(getattr(layer, f.name)) for f in dataclasses.fields(LayerCache)))
                      for layer in self.layers]
        return DecodingCursor(
            memory_BSD=pick(self.memory_BSD),
            context_BLD=pick(self.context_BLD),
            tokens_BL=pick(self.tokens_BL),
            position=self.position,
            started_B=pick(self.started_B),
            layers=layers,
            decoded=self.decoded,
            hidden_BD=None if self.hidden_BD is None else pick(self.hidden_BD),
        )

    def _hidden(self, model: "Memformer") -> torch.Tensor:
        """Bring the decoder up to position p: a prefill of [BOS, tokens 0 .. p - 1] from an empty
        cache, else one cached step per position still missing (token i - 1 is the input at i)."""
        p = self.position
        if self.decoded == p + 1:
            return self.hidden_BD
        rotary = model.rotary
        if self.layers is None or self.decoded == 0:
            self.layers = model.decoder.new_cache(self.context_BLD, rotary)
            bos_B1 = self.tokens_BL.new_full((self.batch_size, 1), model.config.bos_token_id)
            inputs_BT = torch.cat([bos_B1, self.tokens_BL[:, :p]], dim=1)
            self.hidden_BD = model.decoder.forward_cached(model.embedding(inputs_BT), 0, self.layers, rotary)[:, -1]
        else:
            for i in range(self.decoded, p + 1):
                x_B1D = model.embedding(self.tokens_BL[:, i - 1 : i])
                self.hidden_BD = model.decoder.forward_cached(x_B1D, i, self.layers, rotary)[:, -1]
        self.decoded = p + 1
        return self.hidden_BD
