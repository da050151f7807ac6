"""Shared fixtures: tiny seeded models that run in milliseconds on a CPU."""

from __future__ import annotations

import pytest
import torch

from torch_memformer import Memformer, MemformerConfig


def tiny_config(**changes) -> MemformerConfig:
    base = dict(
        vocab_size=50,
        d_model=32,
        num_heads=4,
        d_ff=64,
        num_encoder_layers=2,
        num_decoder_layers=2,
        num_slots=6,
        segment_len=8,
    )
    base.update(changes)
    return MemformerConfig(**base)


def tiny_model(seed: int = 0, **changes) -> Memformer:
    torch.manual_seed(seed)
    return Memformer(tiny_config(**changes)).eval()


@pytest.fixture
def model() -> Memformer:
    return tiny_model()


@pytest.fixture
def ids() -> torch.Tensor:
    return torch.randint(0, 50, (3, 45), generator=torch.Generator().manual_seed(1))


def pytest_collection_modifyitems(config, items) -> None:
    """The ``gpu`` marker alone skips a test where no CUDA device is present (pyproject.toml), so a
    GPU test cannot fail on a CPU machine for want of a ``skipif``."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
