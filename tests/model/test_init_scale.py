"""Decision 20: the starting weights scale with the width (std d_model ** -0.5 unless init_std says
otherwise), in Memformer and in both baselines alike."""

import pytest
import torch

from torch_memformer import Memformer, MemformerConfig
from torch_memformer.baselines.config import TransformerConfig, TransformerXLConfig
from torch_memformer.baselines.transformer import TransformerLM
from torch_memformer.baselines.transformer_xl import TransformerXL


def _fresh(kind: str, **changes) -> torch.nn.Module:
    torch.manual_seed(0)
    sizes = dict(vocab_size=512, d_model=64, num_heads=4, d_ff=128, segment_len=8)
    if kind == "memformer":
        return Memformer(MemformerConfig(**sizes, num_encoder_layers=1, num_decoder_layers=1, num_slots=4, **changes))
    if kind == "transformer":
        return TransformerLM(TransformerConfig(**sizes, num_layers=2, **changes))
    return TransformerXL(TransformerXLConfig(**sizes, num_layers=2, mem_len=8, **changes))


def _std(weight: torch.Tensor) -> float:
    return weight.detach().float().std().item()


@pytest.mark.parametrize("kind", ["memformer", "transformer", "transformer-xl"])
def test_weights_start_at_the_width_scaled_std(kind):
    model = _fresh(kind)
    # 512 x 64 embedding entries: the sample std is within 2% of the true one.
    assert _std(model.embedding.weight) == pytest.approx(64 ** -0.5, rel=0.03)
    projections = [m for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)
                   and not name.endswith((".out", ".down")) and not name.startswith("writer.")]
    assert projections and all(_std(m.weight) == pytest.approx(64 ** -0.5, rel=0.15) for m in projections)


@pytest.mark.parametrize("kind", ["memformer", "transformer", "transformer-xl"])
def test_an_explicit_init_std_is_used_as_given(kind):
    model = _fresh(kind, init_std=0.02)
    assert _std(model.embedding.weight) == pytest.approx(0.02, rel=0.03)


def _writer_stds(model: torch.nn.Module) -> list[float]:
    return [_std(m.weight) for m in (model.writer.query, model.writer.key, model.writer.value)]


def test_the_writer_value_starts_small_and_its_query_and_key_at_the_width_scaled_std():
    # Decision 21: a small W_V keeps what the memory holds from fading; W_Q and W_K at the model's
    # std take the write's attention off the all-small saddle.
    query, key, value = _writer_stds(_fresh("memformer"))
    assert query == pytest.approx(64 ** -0.5, rel=0.15) and key == pytest.approx(64 ** -0.5, rel=0.15)
    assert value == pytest.approx(0.02, rel=0.15)


def test_the_whole_writer_starts_small_with_scope_all_and_follows_init_std_without_writer_init_std():
    assert all(std == pytest.approx(0.02, rel=0.15) for std in _writer_stds(_fresh("memformer", writer_init_scope="all")))
    following = _fresh("memformer", writer_init_std=None)
    assert all(std == pytest.approx(64 ** -0.5, rel=0.15) for std in _writer_stds(following))
    # The reader and every other projection keep the width-scaled std either way.
    assert _std(following.encoder.layers[0].memory_read.query.weight) == pytest.approx(64 ** -0.5, rel=0.15)
