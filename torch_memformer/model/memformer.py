"""Memformer: the segment step. Encoder, memory writer, forgetting, decoder (spec 1).

Shape legend: B batch, T tokens in a segment (<= L), U context positions, L segment length,
S slots, D d_model, V vocabulary.

The stream is cut into segments of L tokens, s_0, s_1, ... For segment s_t (spec 1):

    H_t     = Encoder(s_t, M_t)           encode: every layer reads M_t (spec 1.1)
    M_{t+1} = BMN(Write(M_t, H_t))        encode_and_write: slot attention (1.2), forgetting (1.3)
    P(s_{t+1}) = head(Decoder([BOS, s_{t+1}[:-1]], context=H_t))      decode, logits_from_hidden

The first two lines are the "critical path" that carries the memory; the decoder hangs off it and
never sees the memory (spec 1). Before s_0 the context is the encoding of a lone BOS token read
with M_0 = initial_memory() (decision 6).

Read the architecture top to bottom in this order: ``config.py`` (the sizes and ablation
switches), ``attention.py``, ``blocks.py``, ``encoder.py``, ``memory.py``, ``decoder.py``, then
this file. What turns the step into a stream (the state, the walk over segments, restarts and
resets, embedded inputs) is ``segment_stream.py``; the public views and their input checks are
the stream contract's (``stream_lm.py``, ``checks.py``), shared with the baselines.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import MemformerConfig
from .attention import Rotary
from .decoder import Decoder
from .encoder import Encoder
from .memory import BiasedMemoryNormalization, MemoryWriter
from .segment_stream import SegmentStream
from .stream_lm import StreamOutput

# The public name of ``forward``'s result; the class is the stream contract's, shared with the baselines.
MemformerOutput = StreamOutput


class Memformer(SegmentStream):
    """A Memformer language model. See the module docstring for the segment step.

    One model serves any number of streams: nothing of a stream is stored on the module, the
    caller passes the state in and gets the next one back (``forward``, ``predict``, ``advance``,
    ``generate``, ``init_state``, ``forward_embeds``: ``stream_lm.py`` and ``segment_stream.py``).
    """

    def __init__(self, config: MemformerConfig) -> None:
        super().__init__()
        if not isinstance(config, MemformerConfig):
            raise TypeError(f"Memformer needs a MemformerConfig, got {type(config).__name__}")
        self.config = config
        d = config.d_model
        # One table for encoder and decoder inputs; the extra last row is the decoder's BOS.
        self.embedding = nn.Embedding(config.vocab_size + 1, d)
        # Two segments of positions when the decoder's cross-attention is rotated (decision 1).
        positions = config.segment_len * (2 if config.context_positions == "rotary" else 1)
        self.rotary = Rotary(config.head_dim, positions, config.rope_base)
        self.encoder = Encoder(config)
        if config.use_memory:
            write_heads = config.num_heads if config.write_heads == "multi" else 1
            self.writer = MemoryWriter(
                d, write_heads, config.write_temperature, config.attention_impl, config.layer_norm_eps,
                keep_init=config.write_keep_init, segment_len=config.segment_len,
            )
            self.memory_norm = BiasedMemoryNormalization(
                config.num_slots, d, forgetting=config.forgetting, init_norm=config.forgetting_init_norm,
                form=config.forgetting_form,
            )
        self.decoder = Decoder(config)
        if not config.tie_embeddings:
            self.lm_head = nn.Linear(d, config.vocab_size, bias=False)
        self._init_weights()

    @property
    def num_slots(self) -> int:
        """Memory slots in the state (0 for the no-memory ablation)."""
        return self.config.num_slots if self.config.use_memory else 0

    def initial_memory(self) -> torch.Tensor:
        """M_0 = v / ||v|| (decision 5 / spec 1.3): (S, D), a function of the parameters."""
        if not self.config.use_memory:
            return self.embedding.weight.new_zeros(0, self.config.d_model)
        return self.memory_norm.initial_memory()

    # ------------------------------------------------------------------ the segment step, for engines

    def encode(self, tokens_BT: torch.Tensor, memory_BSD: torch.Tensor) -> torch.Tensor:
        """Encoder states H (B, T, D) of a segment read with memory M (no write). ``tokens_BT``
        is token ids (B, T) or their embeddings (B, T, D) (``forward_embeds``)."""
        memory_BSD = memory_BSD if self.config.use_memory else None
        return self.encoder(self._embed(tokens_BT), memory_BSD, self.rotary)

    def encode_and_write(
        self, tokens_BT: torch.Tensor, memory_BSD: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The critical path for one segment: H_t (B, T, D) and M_{t+1} (B, S, D)."""
        h_BTD = self.encode(tokens_BT, memory_BSD)
        if self.config.use_memory:  # slot attention (spec 1.2), then forgetting (spec 1.3)
            memory_BSD = self.memory_norm(self.writer(memory_BSD, h_BTD))
        return h_BTD, memory_BSD

    def decode(self, prefix_BT: torch.Tensor, context_BUD: torch.Tensor) -> torch.Tensor:
        """Decoder hidden states (B, T + 1, D) for inputs [BOS, prefix]: output i predicts
        prefix[:, i] (and output T the token after the prefix). ``prefix_BT`` is token ids
        (B, T) or their embeddings (B, T, D)."""
        # Teacher forcing (spec 1): the decoder reads [BOS, prefix]; the BOS vector is always the
        # model's own, also when the prefix comes as vectors.
        bos_B1 = torch.full((prefix_BT.size(0), 1), self.config.bos_token_id, device=prefix_BT.device)
        if prefix_BT.dim() == 3:
            inputs_BTD = torch.cat([self.embedding(bos_B1).to(prefix_BT.dtype), prefix_BT], dim=1)
        else:
            inputs_BTD = self.embedding(torch.cat([bos_B1, prefix_BT], dim=1))
        return self.decoder(inputs_BTD, context_BUD, self.rotary)

    def logits_from_hidden(self, hidden_BTD: torch.Tensor) -> torch.Tensor:
        """The head (spec 1): logits (B, T, V) of decoder states already through their final
        LayerNorm. Tied to the embedding by default; the BOS row is never scored (decision 9)."""
        if self.config.tie_embeddings:
            return F.linear(hidden_BTD, self.embedding.weight[: self.config.vocab_size])
        return self.lm_head(hidden_BTD)

    # ------------------------------------------------------------------ internals

    def _embed(self, tokens_BT: torch.Tensor) -> torch.Tensor:
        """(B, T, D) vectors of ids (B, T); embeddings (B, T, D) pass through (``forward_embeds``)."""
        return tokens_BT if tokens_BT.dim() == 3 else self.embedding(tokens_BT)

    def _small_writer_projections(self) -> tuple[str, ...]:
        """Names of the writer's linears that start at ``writer_init_std`` instead of the model's std."""
        if self.config.writer_init_std is None:
            return ()
        if self.config.writer_init_scope == "value":
            return ("writer.value",)
        return ("writer.query", "writer.key", "writer.value")

    def _init_weights(self) -> None:
        """GPT-2's layout (N(0, std) weights and embeddings, zero biases, residual outputs scaled by
        depth) with std = ``config.initial_std``: d_model ** -0.5 by default, not GPT-2's 0.02; the
        memory writer's value projection (all three with ``writer_init_scope="all"``) at
        ``config.writer_init_std`` (0.02 by default; decisions 20 and 21)."""
        std = self.config.initial_std
        residual_std = std / (2 * (self.config.num_encoder_layers + self.config.num_decoder_layers)) ** 0.5
        small_writer_projections = self._small_writer_projections()
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear):
                is_residual_out = name.endswith((".out", ".down"))
                if name in small_writer_projections:
                    nn.init.normal_(module.weight, std=self.config.writer_init_std)
                else:
                    nn.init.normal_(module.weight, std=residual_std if is_residual_out else std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=std)

