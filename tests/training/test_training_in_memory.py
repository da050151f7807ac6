"""The trainer on corpora held in memory (``training.InMemoryData``, what the digits and recall
experiments use), and the baselines sized against Memformer's state bytes."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from torch_memformer import registry, runs
from torch_memformer.checkpoint import load_model
from torch_memformer.data import TokenizedCorpus
from torch_memformer.experiments.common.matching import matched_mem_len, state_bytes_per_row
from torch_memformer.runs import latest_checkpoint
from torch_memformer.training import InMemoryData, TrainConfig, train
from torch_memformer.training.resume import plan_run

from train_support import train_losses

MODEL = {"d_model": 16, "num_heads": 2, "d_ff": 32, "num_encoder_layers": 1, "num_decoder_layers": 1,
         "num_slots": 4, "segment_len": 8}


def _corpus(seed: int, documents: int) -> TokenizedCorpus:
    rng = np.random.default_rng(seed)
    return TokenizedCorpus.from_documents([rng.integers(0, 17, size=40) for _ in range(documents)], vocab_size=17)


def _config(steps: int) -> TrainConfig:
    return TrainConfig(model_config=MODEL, data="in-memory: test", steps=steps, batch_size=2, window=2, lr=3e-3,
                       warmup_steps=1, precision="fp32", threads=1, log_every=1, eval_every=2, eval_batches=1,
                       eval_batch_size=2, checkpoint_every=2, keep_checkpoints=3)


def test_in_memory_corpora_train_validate_and_resume_like_any_run(tmp_path):
    data = InMemoryData(train=_corpus(0, 12), valid=_corpus(1, 3))
    whole = train(_config(4), out_dir=tmp_path / "whole", data=data)
    assert whole.step == 4 and whole.valid is not None and whole.valid.num_targets > 0
    checkpoint = latest_checkpoint(tmp_path / "whole")
    loaded = load_model(checkpoint)
    # The vocabulary is the corpus's, and no tokenizer is saved with the weights.
    assert loaded.model.config.vocab_size == 17 and loaded.tokenizer is None
    assert not list(checkpoint.glob("tokenizer*"))

    # Resume a copy of the run from its step-2 checkpoint: the same losses as the whole run.
    part = tmp_path / "part"
    shutil.copytree(tmp_path / "whole", part)
    shutil.rmtree(runs.checkpoint_dir(part, 4))
    runs.write_latest(part, runs.checkpoint_dir(part, 2))
    config, resume = plan_run(out_dir=part, file_values={}, flag_values={}, resume=True)
    assert resume.state.step == 2
    train(config, out_dir=part, resume=resume, data=data)
    assert train_losses(part) == train_losses(tmp_path / "whole")


def test_transformer_xl_matched_to_memformer_state_bytes():
    memformer = registry.config_from_dict("memformer", {"vocab_size": 40, **MODEL, "num_slots": 16})
    txl = registry.config_from_dict("transformer-xl", {"vocab_size": 40, "d_model": 16, "num_heads": 2,
                                                       "d_ff": 32, "num_layers": 2, "segment_len": 8})
    mem_len = matched_mem_len(memformer, txl)
    target = state_bytes_per_row("memformer", memformer)
    assert state_bytes_per_row("transformer-xl", txl.replace(mem_len=mem_len)) <= target
    assert state_bytes_per_row("transformer-xl", txl.replace(mem_len=mem_len + 1)) > target
    # Memory (16 slots) plus one segment of context (8), over 2 layers: about 12 positions each.
    assert mem_len == pytest.approx((16 + 8) / 2, abs=1)
