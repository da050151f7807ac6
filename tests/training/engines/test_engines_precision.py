"""Mixed precision: the engines run under autocast and stay close to float32.

Stated tolerances (bfloat16 keeps 8 mantissa bits, so about 3 significant digits per op):
the window loss within 2e-3 of float32's, and the whole gradient within 2e-2 relative
(||g - g32|| / ||g32||). Float16 with a GradScaler: the unscaled gradient within 5e-3.
On CUDA (other kernels, e.g. fused attention in half precision) the loss bound is 1e-2.
"""

from __future__ import annotations

import pytest
import torch

from torch_memformer import Memformer, MemformerConfig
from torch_memformer.training.engines import backward_window

SEGMENT = 8
VOCAB = 32


def make_model(device: str = "cpu") -> Memformer:
    torch.manual_seed(0)
    config = MemformerConfig(
        vocab_size=VOCAB,
        d_model=32,
        num_heads=4,
        d_ff=64,
        num_encoder_layers=2,
        num_decoder_layers=2,
        num_slots=4,
        segment_len=SEGMENT,
    )
    return Memformer(config).to(device)


def flat_grad(model: Memformer, input_ids: torch.Tensor, method: str, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    result = backward_window(model, input_ids, method=method, **kwargs)
    return result.loss, torch.cat([p.grad.flatten() for p in model.parameters()])


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


@pytest.fixture(scope="module")
def reference():
    model = make_model()
    input_ids = torch.randint(0, VOCAB, (4, 4 * SEGMENT + 3), generator=torch.Generator().manual_seed(1))
    loss, grad = flat_grad(model, input_ids, "bptt")
    return model, input_ids, loss, grad


@pytest.mark.parametrize("method", ["bptt", "checkpoint", "mrbp"])
def test_bfloat16_autocast_on_cpu_stays_close_to_float32(reference, method: str) -> None:
    model, input_ids, loss32, grad32 = reference
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, grad = flat_grad(model, input_ids, method)
    assert abs(float(loss - loss32)) < 2e-3
    assert relative(grad, grad32) < 2e-2
    # The carried memory stays float32 (forgetting normalises in the parameters' dtype).
    with torch.autocast("cpu", dtype=torch.bfloat16):
        result = backward_window(model, input_ids, method=method)
    assert result.state.memory.dtype == torch.float32


def test_float16_with_grad_scaler_on_cpu(reference) -> None:
    model, input_ids, loss32, grad32 = reference
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    with torch.autocast("cpu", dtype=torch.float16):
        loss, grad = flat_grad(model, input_ids, "mrbp", grad_scaler=scaler)
    # The scaled gradient arrives in .grad; dividing by the scale recovers float32's.
    assert relative(grad / 2.0**10, grad32) < 5e-3
    assert abs(float(loss - loss32)) < 2e-3


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_autocast_matches_float32(dtype: torch.dtype) -> None:
    model = make_model("cuda")
    input_ids = torch.randint(0, VOCAB, (4, 4 * SEGMENT + 3), generator=torch.Generator().manual_seed(1)).cuda()
    loss32, grad32 = flat_grad(model, input_ids, "bptt")
    scale = 2.0**10 if dtype == torch.float16 else 1.0
    scaler = torch.amp.GradScaler("cuda", init_scale=scale) if dtype == torch.float16 else None
    for method in ("checkpoint", "mrbp"):
        with torch.autocast("cuda", dtype=dtype):
            loss, grad = flat_grad(model, input_ids, method, grad_scaler=scaler)
        assert abs(float(loss - loss32)) < 1e-2, method
        assert relative(grad / scale, grad32) < 2e-2, method
