"""MRBP holds one unit's graph at a time and allocates nothing for good (issue 14).

MRBP's memory is the stored memories plus one unit's activations (spec 2) only if each unit's
autograd graph is gone before the next unit is built, and its measured peak stays flat in K only
if no backward pulls in a one-time allocation. Both are checked here without measuring RSS,
which a busy test machine makes noisy: the first by tracking every tensor autograd saves, the
second by the import that used to cost 34 MiB.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import weakref
from pathlib import Path

import pytest
import torch

from engine_support import tiny_memformer
from torch_memformer import Memformer
from torch_memformer.training.engines import backward_window

SEGMENT = 4
BATCH = 2
VOCAB = 13


def make_model() -> Memformer:
    return tiny_memformer(vocab_size=VOCAB, segment_len=SEGMENT)


class _Saved:
    """What autograd keeps instead of a saved tensor; it dies when the graph that saved it is freed.

    It holds the tensor detached: a node that saves its own output would otherwise form a cycle
    (node -> _Saved -> output -> grad_fn node) through C++ that no collector breaks, and a node
    that no backward visits (the writer of the newest unit) would then look alive for good.
    """

    def __init__(self, tensor: torch.Tensor) -> None:
        self.tensor = tensor.detach()


def test_no_earlier_unit_graph_is_alive_when_the_next_unit_is_built(monkeypatch) -> None:
    model = make_model()
    segments = 5
    input_ids = torch.randint(0, VOCAB, (BATCH, segments * SEGMENT), generator=torch.Generator().manual_seed(1))
    alive: weakref.WeakSet[_Saved] = weakref.WeakSet()

    def pack(tensor: torch.Tensor) -> _Saved:
        saved = _Saved(tensor)
        alive.add(saved)
        return saved

    # Every unit j >= 0 starts with the encoder's advance under grad (the replay pass runs it
    # without grad and saves nothing); by then the graphs of units -1 .. j + 1 must be freed.
    advance = model.advance
    saved_at_unit_start = []

    def checked_advance(*args, **kwargs):
        if torch.is_grad_enabled():
            saved_at_unit_start.append(len(alive))
        return advance(*args, **kwargs)

    monkeypatch.setattr(model, "advance", checked_advance)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda saved: saved.tensor):
        backward_window(model, input_ids, method="mrbp")
    assert saved_at_unit_start == [0] * (segments - 1)
    assert len(alive) == 0


def test_a_window_with_a_memory_gradient_allocates_nothing_for_good() -> None:
    # torch.autograd.backward(..., grad_tensors) imports torch.fx.experimental.symbolic_shapes
    # (sympy, mpmath: 34 MiB resident) the first time it is given a gradient tensor; the engine
    # must hand the memory gradient in another way. Run in a fresh interpreter, as this test
    # session may have imported it already.
    script = textwrap.dedent(
        f"""
        import sys
        import torch
        from torch_memformer import Memformer, MemformerConfig
        from torch_memformer.training.engines import backward_window
        NAME = "torch.fx.experimental.symbolic_shapes"
        config = MemformerConfig(vocab_size={VOCAB}, d_model=16, num_heads=2, d_ff=32, num_encoder_layers=1,
                                 num_decoder_layers=1, num_slots=3, segment_len={SEGMENT})
        model = Memformer(config)
        if NAME in sys.modules:
            print("already imported")
            sys.exit()
        # Three segments: unit 0 receives the memory gradient of unit 1.
        backward_window(model, torch.randint(0, {VOCAB}, ({BATCH}, {3 * SEGMENT})), method="mrbp")
        print("imported" if NAME in sys.modules else "not imported")
        """
    )
    # The child imports this checkout's package, not whichever one the environment installed.
    root = str(Path(__file__).resolve().parents[3])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    verdict = result.stdout.strip().splitlines()[-1]
    if verdict == "already imported":
        pytest.skip("this torch imports symbolic_shapes before any training: nothing to guard")
    assert verdict == "not imported"
