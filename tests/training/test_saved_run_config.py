"""A run folder's ``train_config.json``, as written today, still loads, resumes and builds the model
it describes: the file format is part of the resume contract, so it is pinned here as text."""

from __future__ import annotations

from torch_memformer.config import MemformerConfig
from torch_memformer.training.resume import RUN_CONFIG_FILE, load_run_config, plan_run, save_run_config

# Written by ``save_run_config`` for ``memformer train --preset tiny --model-config '{"num_slots": 3}'``.
TODAYS_FILE = """\
{
  "ablation": null,
  "allow_binary": false,
  "batch_size": 2,
  "beta1": 0.9,
  "beta2": 0.95,
  "checkpoint_every": 4,
  "compile": false,
  "data": "stdlib",
  "data_format": "auto",
  "device": "auto",
  "eval_batch_size": 2,
  "eval_batches": 2,
  "eval_every": 4,
  "grad_clip": 1.0,
  "hf_config": null,
  "keep_checkpoints": 2,
  "log_every": 1,
  "lr": 0.003,
  "method": null,
  "min_lr_ratio": 0.1,
  "model": "memformer",
  "model_config": {
    "d_ff": 64,
    "d_model": 32,
    "num_decoder_layers": 1,
    "num_encoder_layers": 1,
    "num_heads": 2,
    "num_slots": 3,
    "segment_len": 16
  },
  "precision": "auto",
  "preset": "tiny",
  "seed": 0,
  "shuffle": true,
  "steps": 8,
  "test_fraction": 0.05,
  "text_field": "text",
  "threads": 0,
  "tokenizer": "byte",
  "valid_fraction": 0.05,
  "warmup_steps": 2,
  "weight_decay": 0.1,
  "window": 2
}
"""


def test_todays_train_config_json_loads_resumes_and_is_written_back_unchanged(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / RUN_CONFIG_FILE).write_text(TODAYS_FILE)

    loaded = load_run_config(run)
    assert loaded.model_config == {"d_ff": 64, "d_model": 32, "num_decoder_layers": 1, "num_encoder_layers": 1,
                                   "num_heads": 2, "num_slots": 3, "segment_len": 16}
    # The typed model config: the fields given over the class defaults; the vocabulary comes later.
    assert isinstance(loaded.model_settings, MemformerConfig)
    assert (loaded.model_settings.num_slots, loaded.model_settings.d_model) == (3, 32)
    built = loaded.build_model_config(vocab_size=300)
    assert built == MemformerConfig(vocab_size=300, **loaded.model_config)

    # --resume of a folder killed before its first checkpoint continues from this file, and a
    # resumable setting may change.
    config, resume_point = plan_run(out_dir=run, file_values={}, flag_values={"steps": 9}, resume=True)
    assert resume_point is None and config == loaded.replace(steps=9)

    # Saving the loaded config gives back the same bytes: nothing derived is added to the file.
    save_run_config(run, loaded)
    assert (run / RUN_CONFIG_FILE).read_text() == TODAYS_FILE
