"""Transformer-XL samplers, the generation benchmark's baselines: x-transformers' and this project's.

Both get Memformer's width, heads, FFN and vocabulary and a memory of one segment (64 positions),
and start each timed window from a full memory, as mid-stream.

x-transformers is an optional benchmark dependency (``pip install x-transformers``); nothing in
the package or the test suite needs it. ``load()`` returns None when it is missing, so the
benchmark can say so and go on without the baseline.

The baseline is a ``TransformerWrapper`` over a ``Decoder`` with rotary positions (which x-transformers'
KV cache needs beyond ``max_seq_len``), segments of Memformer's ``segment_len`` and memory of one
segment (``max_mem_len``), sampled by ``XLAutoregressiveWrapper.generate``: inside a segment each
token is one cached step; at a segment end the segment's hidden states become the memory. It
keeps the memory as hidden states, so every step projects the memory's keys and values again
(64 positions per layer) and rotates them: at batch 32 that, not attention, is most of its time.

``ProjectXL`` is ``torch_memformer.baselines.TransformerXL`` (relative positions, a cache of each
layer's last 64 inputs) sampled by the same ``generate`` as Memformer.
"""

from __future__ import annotations

import dataclasses
from types import ModuleType

import torch

from torch_memformer import MemformerConfig
from torch_memformer.baselines import TransformerXL, TransformerXLConfig

MISSING = "x-transformers is not installed (pip install x-transformers): the Transformer-XL baseline is skipped"


def load() -> ModuleType | None:
    """The x_transformers module, or None when the optional dependency is missing."""
    try:
        import x_transformers
        import x_transformers.xl_autoregressive_wrapper  # noqa: F401 (the sampler lives here)
    except ImportError:
        return None
    return x_transformers


@dataclasses.dataclass
class XLBaseline:
    """A Transformer-XL sampler and a full memory of one segment to start each window from."""

    sampler: torch.nn.Module
    mems: list[torch.Tensor]
    depth: int
    parameters: int

    @classmethod
    def build(cls, x_transformers: ModuleType, config: MemformerConfig, *, depth: int, batch: int,
              device: torch.device, seed: int) -> "XLBaseline":
        """Memformer's width, heads, FFN and vocabulary, ``depth`` layers; a random segment read
        first, so that every window attends to a full memory as it would mid-stream."""
        torch.manual_seed(seed)
        net = x_transformers.TransformerWrapper(
            num_tokens=config.vocab_size, max_seq_len=config.segment_len, max_mem_len=config.segment_len,
            attn_layers=x_transformers.Decoder(dim=config.d_model, depth=depth, heads=config.num_heads,
                                               ff_mult=config.d_ff // config.d_model, rotary_pos_emb=True),
        ).to(device).eval()
        sampler = x_transformers.xl_autoregressive_wrapper.XLAutoregressiveWrapper(net)
        segment = torch.randint(0, config.vocab_size, (batch, config.segment_len), device=device)
        with torch.no_grad():
            _, mems = net(segment, return_mems=True)
        return cls(sampler, mems, depth, sum(p.numel() for p in net.parameters()))

    def generate(self, prompt_B1: torch.Tensor, tokens: int) -> torch.Tensor:
        """``tokens`` new tokens per row at temperature 1 with no filter, as Memformer samples
        in the benchmark (x-transformers' default filter is top-k, an extra sort per step)."""
        return self.sampler.generate(prompt_B1, tokens, mems=self.mems, temperature=1.0,
                                     filter_logits_fn=lambda logits: logits)


@dataclasses.dataclass
class ProjectXL:
    """This project's Transformer-XL and a state whose cache holds one full segment."""

    model: TransformerXL
    state: object
    depth: int
    parameters: int

    @classmethod
    def build(cls, config: MemformerConfig, *, depth: int, batch: int, device: torch.device, seed: int) -> "ProjectXL":
        torch.manual_seed(seed)
        xl_config = TransformerXLConfig(vocab_size=config.vocab_size, d_model=config.d_model,
                                        num_heads=config.num_heads, d_ff=config.d_ff, num_layers=depth,
                                        mem_len=config.segment_len, segment_len=config.segment_len)
        model = TransformerXL(xl_config).to(device).eval()
        segment = torch.randint(0, config.vocab_size, (batch, config.segment_len), device=device)
        with torch.no_grad():
            state = model.advance(segment)
        return cls(model, state, depth, sum(p.numel() for p in model.parameters()))

    def generate(self, prompt_B1: torch.Tensor, tokens: int, generator: torch.Generator) -> torch.Tensor:
        return self.model.generate(prompt_B1, tokens, state=self.state, temperature=1.0, generator=generator).tokens
