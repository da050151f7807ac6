"""FLOP counting with ``torch.utils.flop_counter``, the CPU attention kernel included.

``FlopCounterMode`` has formulas for the CUDA attention kernels but not for the CPU one
(``aten._scaled_dot_product_flash_attention_for_cpu``, torch 2.13), so without them a CPU count
silently leaves attention out. ``register_cpu_attention_flops`` counts it as torch counts the
CUDA kernels: both matmuls of attention, a mask (causal or any other) not discounted.

Only matrix products are counted (mm, bmm, addmm, attention, convolutions), the usual convention:
softmax, LayerNorm and other elementwise work add nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils.flop_counter import (
    FlopCounterMode,
    flop_registry,
    register_flop_formula,
    sdpa_backward_flop_count,
    sdpa_flop_count,
)

_aten = torch.ops.aten


def _cpu_sdpa_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _cpu_sdpa_backward_flop(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


def register_cpu_attention_flops() -> None:
    """Teach ``FlopCounterMode`` the CPU attention kernel (forward and backward). Idempotent:
    torch refuses a second registration of the same op, so this registers only what is missing."""
    formulas = {
        _aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flop,
        _aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_sdpa_backward_flop,
    }
    for op, formula in formulas.items():
        if op not in flop_registry:
            register_flop_formula(op)(formula)


def count_flops(fn: Callable[[], Any]) -> int:
    """The FLOPs of calling ``fn()`` once (it really runs, on the real tensors)."""
    register_cpu_attention_flops()
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()
