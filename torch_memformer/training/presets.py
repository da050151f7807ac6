"""Named starting points for ``memformer train --preset NAME``: training settings plus, per model,
the model's config fields. The training settings are written here; each model's fields come from
its own package through the registry (``registry.spec(name).presets``: ``model/presets.py``,
``baselines/presets.py``), so a new model brings its sizes with it.

Precedence (``config.py``): TrainConfig defaults < preset < ``--config FILE`` < command-line flags.
Without ``--preset`` the ``quickstart`` preset applies. Sizes are matched across models so that
``--model transformer-xl`` under a preset trains a baseline of about the same width and depth
(issue 5 compares them; its own experiments choose their exact sizes).

Speeds quoted below were measured on the 2-core shared CPU this project is developed on
(``docs/results.md``); a GPU is one to two orders of magnitude faster.
"""

from __future__ import annotations

from typing import Any

from .. import registry

# One dict per preset: "train" holds TrainConfig fields; "models" (added below from the
# registry) the model config fields of each registry model; vocab_size always comes from the
# tokenizer. Every registry model has fields for every preset (tests/baselines/test_baselines_registry.py).
_TRAINING: dict[str, dict[str, Any]] = {
    # A few seconds; for tests and for checking an installation. Learns almost nothing.
    "tiny": {
        "description": "a 30k-parameter model and 8 steps: checks that everything runs (seconds)",
        "train": {
            "steps": 8, "batch_size": 2, "window": 2, "lr": 3e-3, "warmup_steps": 2,
            "eval_every": 4, "eval_batches": 2, "eval_batch_size": 2, "log_every": 1,
            "checkpoint_every": 4, "keep_checkpoints": 2,
        },
    },
    # The README's first command: the stdlib corpus, bytes, a 1M-parameter Memformer, MRBP over
    # windows of 4 segments of 64 bytes. About 5 minutes on 2 shared CPU cores (~9k tokens/s);
    # the loss goes from 8 to ~2 bits per byte and samples look like Python (docs/results.md).
    "quickstart": {
        "description": "a 1M-parameter Memformer on the stdlib corpus, about 5 minutes on 2 CPU cores",
        "train": {
            "steps": 1200, "batch_size": 8, "window": 4, "lr": 2e-3, "warmup_steps": 200,
            "eval_every": 400, "eval_batches": 8, "eval_batch_size": 8, "log_every": 100,
            "checkpoint_every": 400, "keep_checkpoints": 2,
        },
    },
    # The debtext benchmark (docs/results.md): about 20 minutes of a 2-core CPU (~4k tokens/s).
    "cpu-20min": {
        "description": "a 3.7M-parameter Memformer for ~20 minutes of a 2-core CPU (the debtext benchmark)",
        "train": {
            "steps": 2400, "batch_size": 8, "window": 4, "lr": 1.5e-3, "warmup_steps": 100,
            "eval_every": 600, "eval_batches": 16, "eval_batch_size": 8, "log_every": 50,
            "checkpoint_every": 300, "keep_checkpoints": 2,
        },
    },
    # The paper's WikiText-103 sizes (spec 3: hidden 512, FFN 2048, heads of 64, Memformer 4 + 16
    # layers, Transformer-XL 16 layers; the models' presets files): for a GPU.
    "paper-base": {
        "description": "the paper's language-model sizes (Memformer 4+16 layers, d 512): for a GPU",
        "train": {
            "steps": 200_000, "batch_size": 32, "window": 4, "lr": 2.5e-4, "warmup_steps": 4000,
            "eval_every": 2000, "eval_batches": 200, "eval_batch_size": 16, "log_every": 100,
            "checkpoint_every": 2000, "keep_checkpoints": 3, "precision": "auto",
        },
    },
}

PRESETS: dict[str, dict[str, Any]] = {
    name: {**preset, "models": {model: spec.presets.get(name, {}) for model, spec in registry.MODELS.items()}}
    for name, preset in _TRAINING.items()
}

DEFAULT_PRESET = "quickstart"


def preset(name: str) -> dict[str, Any]:
    """The preset ``name``; ValueError listing the known ones otherwise."""
    if not isinstance(name, str) or name not in PRESETS:  # a list from JSON is unhashable
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]
