"""``torch.compile`` of a Memformer's segment step, with the stream's bookkeeping left eager.

Shape legend: B batch, L segment length, T tokens, S slots, D d_model.

Compiling the whole ``forward`` breaks its graph seven times (``torch._dynamo.explain``): the input
checks and the walk read tensors on the host (``check_ids``' bounds, ``_begin``'s "any row to
restart?", the row groups, the in-segment position), and every new call length retraces it. Those
checks must stay (style principle 12), and they run once per call, not once per segment. So only
what runs per segment is compiled, the two pure tensor functions every view calls:

    encode_and_write(tokens_BL, memory_BSD) -> H_t (B, L, D), M_{t+1} (B, S, D)
    decode(prefix_BT, context_BLD)          -> decoder states (B, T + 1, D)

Each compiles to one graph with no break (``fullgraph=True`` turns a break into an error) and
static shapes: the segments of a stream all have one shape, so one compile serves every segment;
another shape (a partial segment at the start or end of a call, another batch size) compiles
once more. The plain reference is the same model uncompiled (``tests/model/test_compile_step.py``).
"""

from __future__ import annotations

import torch

from .model import Memformer


def compile_segment_step(model: Memformer, *, mode: str | None = None, backend: str = "inductor") -> Memformer:
    """Compile ``model``'s per-segment functions in place and return it.

    ``model.encode_and_write`` and ``model.decode`` become compiled versions of themselves (an
    instance attribute over the method: the weights, the state dict and every view are
    unchanged, and the training engines and ``evaluate`` pick them up with no change). ``mode``
    and ``backend`` are ``torch.compile``'s. Compiling happens at the first call of each shape.
    """
    if not isinstance(model, Memformer):
        raise TypeError(f"compile_segment_step compiles a Memformer's segment step, got {type(model).__name__}")
    # dynamic=False: a stream's segments share one shape, and static shapes give the faster code.
    options = dict(fullgraph=True, dynamic=False, mode=mode, backend=backend)
    model.encode_and_write = torch.compile(model.encode_and_write, **options)
    model.decode = torch.compile(model.decode, **options)
    return model
