"""``torch.export`` and ONNX of a Memformer's segment step: state in, state out.

Shape legend: B batch, L segment length, S slots, D d_model, V vocabulary.

A served stream is read one full segment at a time, and everything it carries between segments
is two tensors, the memory M_t and the encoding H_{t-1} the decoder reads (``MemformerState``'s
``memory`` and ``context`` at a segment boundary). ``SegmentStep`` is that step as a module with
plain tensor inputs and outputs, so it exports whole:

    step = SegmentStep(model)
    memory_BSD, context_BLD = start_tensors(model, batch_size=B)        # fresh streams
    logits_BLV, memory_BSD, context_BLD = step(tokens_BL, memory_BSD, context_BLD)

``logits_BLV[:, i]`` is the distribution of ``tokens_BL[:, i]`` given the state and the tokens
before it (``Memformer.predict``'s convention); the outputs are the state after the segment
(``Memformer.advance``'s). The full ``forward`` does not export (it reads tensors on the host to
check its input and to walk calls that start or end inside a segment; ``compile_step.py``), and a
server needs only this step: buffer a stream's tokens until a segment is full. Tested against the
native views in ``tests/model/test_export_step.py``.
"""

from __future__ import annotations

import torch
from torch import nn

from .model import Memformer


class SegmentStep(nn.Module):
    """One full segment: (tokens_BL, memory_BSD, context_BLD) -> (logits_BLV, memory_BSD, context_BLD)."""

    def __init__(self, model: Memformer) -> None:
        super().__init__()
        if not isinstance(model, Memformer):
            raise TypeError(f"SegmentStep takes a Memformer, got {type(model).__name__}")
        self.model = model

    def forward(
        self, tokens_BL: torch.Tensor, memory_BSD: torch.Tensor, context_BLD: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # Decoder inputs [BOS, tokens 0 .. L - 2] against H_{t-1}: output i predicts token i.
        logits_BLV = self.model.logits_from_hidden(self.model.decode(tokens_BL[:, :-1], context_BLD))
        context_BLD, memory_BSD = self.model.encode_and_write(tokens_BL, memory_BSD)
        return logits_BLV, memory_BSD, context_BLD


def start_tensors(model: Memformer, *, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(memory_BSD, context_BLD) of ``batch_size`` fresh streams: the initial memory M_0 and, as the
    context of the first segment, the encoding of a lone BOS read with M_0 (decision 6)."""
    with torch.no_grad():
        memory_SD = model.initial_memory()
        bos_11 = torch.full((1, 1), model.config.bos_token_id, dtype=torch.long, device=memory_SD.device)
        bos_D = model.encode(bos_11, memory_SD.unsqueeze(0))[0, 0]
    length, d = model.config.segment_len, model.config.d_model
    return (memory_SD.expand(batch_size, -1, -1).clone(), bos_D.expand(batch_size, length, d).clone())


def export_segment_step(model: Memformer, *, batch_size: int) -> torch.export.ExportedProgram:
    """``torch.export`` of ``SegmentStep(model)`` (in eval mode) for batches of ``batch_size`` rows.

    Run it with ``program.module()(tokens_BL, memory_BSD, context_BLD)``; save it with
    ``torch.export.save``. The shapes are static (a stream's segments all have one shape).
    """
    step = SegmentStep(model).eval()
    memory_BSD, context_BLD = start_tensors(model, batch_size=batch_size)
    tokens_BL = torch.zeros(batch_size, model.config.segment_len, dtype=torch.long, device=memory_BSD.device)
    with torch.no_grad():
        return torch.export.export(step, (tokens_BL, memory_BSD, context_BLD))
