"""The exported segment step (state in, state out) gives the native views' logits and states:
``SegmentStep`` itself, its ``torch.export`` program, and its ONNX graph in onnxruntime."""

from __future__ import annotations

import pytest
import torch

from conftest import tiny_model
from torch_memformer.export import SegmentStep, export_segment_step, start_tensors

SEGMENT = 8  # tiny_model's segment_len


def ids_of(batch: int, segments: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, 50, (batch, segments * SEGMENT), generator=torch.Generator().manual_seed(seed))


def native_segments(model, ids):
    """(logits, memory, context) of each segment by the native predict and advance: the reference."""
    state, out = None, []
    with torch.no_grad():
        for start in range(0, ids.size(1), SEGMENT):
            piece = ids[:, start : start + SEGMENT]
            logits = model.predict(piece, state=state)
            state = model.advance(piece, state=state)
            out.append((logits, state.memory, state.context))
    return out


def run_stream(step, model, ids):
    memory, context = start_tensors(model, batch_size=ids.size(0))
    out = []
    with torch.no_grad():
        for start in range(0, ids.size(1), SEGMENT):
            logits, memory, context = step(ids[:, start : start + SEGMENT], memory, context)
            out.append((logits, memory, context))
    return out


def assert_same(actual, expected, atol):
    for t, (got, want) in enumerate(zip(actual, expected, strict=True)):
        for name, a, b in zip(("logits", "memory", "context"), got, want):
            torch.testing.assert_close(torch.as_tensor(a), b, rtol=0, atol=atol, msg=f"segment {t} {name}")


def test_the_segment_step_from_fresh_streams_is_the_native_stream():
    model = tiny_model(seed=6).double()
    ids = ids_of(3, 4)
    assert_same(run_stream(SegmentStep(model), model, ids), native_segments(model, ids), atol=1e-12)


def test_the_exported_program_gives_eager_outputs_on_every_segment():
    model = tiny_model(seed=7)
    ids = ids_of(2, 4, seed=2)
    program = export_segment_step(model, batch_size=2)
    assert_same(run_stream(program.module(), model, ids), native_segments(model, ids), atol=1e-5)


@pytest.mark.slow  # the ONNX export takes ~15 s on a CPU
@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning", "ignore::FutureWarning")
def test_the_onnx_graph_in_onnxruntime_gives_eager_outputs(tmp_path):
    pytest.importorskip("onnxscript", reason="ONNX export needs onnxscript (pip install onnx onnxscript)")
    ort = pytest.importorskip("onnxruntime", reason="the check runs the graph in onnxruntime")
    model = tiny_model(seed=8)
    ids = ids_of(2, 4, seed=3)
    memory, context = start_tensors(model, batch_size=2)
    path = tmp_path / "segment_step.onnx"
    torch.onnx.export(SegmentStep(model).eval(), (ids[:, :SEGMENT], memory, context), path, dynamo=True,
                      input_names=["tokens", "memory", "context"], output_names=["logits", "next_memory", "next_context"])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def onnx_step(tokens, memory, context):
        feeds = {"tokens": tokens.numpy(), "memory": memory.numpy(), "context": context.numpy()}
        return [torch.from_numpy(array) for array in session.run(None, feeds)]

    assert_same(run_stream(onnx_step, model, ids), native_segments(model, ids), atol=1e-5)
