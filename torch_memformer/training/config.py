"""``TrainConfig``: everything a training run is made of, validated early and saved as JSON.

Config flows one way (style principle 4):

    TrainConfig defaults  <  preset (``presets.py``)  <  --config FILE  <  command-line flags

``resolve_config`` merges those layers; ``model_config`` holds fields of the chosen model's own
config class and merges key by key. The result is saved in every checkpoint
(``trainer_state.json``), so ``--resume`` rebuilds the same run. On resume flags may change only
the fields in ``RESUMABLE_FIELDS``: where the run trains and how it reports, and the optimiser's
settings (lowering the learning rate after a divergence is the usual reason to resume with a
change). The model, the data, the stream layout and the seed make the run what it is: a flag
that changes them is refused.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Literal

from .. import json_input, registry
from ..config import field_names
from ..data import DATA_FORMATS, DataSpec
from .presets import DEFAULT_PRESET, preset

Method = Literal["mrbp", "bptt", "checkpoint"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
METHODS: tuple[str, ...] = ("mrbp", "bptt", "checkpoint")
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")

# Fields a resumed run may change. The first set decides where it runs and how it reports, not
# what it computes (``steps`` extends or shortens the run; the cosine schedule follows the new
# length). The second changes the optimisation from the resumed step on (the run then no longer
# matches an uninterrupted one, which the trainer logs); the model and data stay as saved.
RUNTIME_FIELDS = frozenset({
    "steps", "device", "precision", "threads", "log_every", "eval_every", "eval_batches", "eval_batch_size",
    "checkpoint_every", "keep_checkpoints",
})
OPTIMISER_FIELDS = frozenset({
    "lr", "min_lr_ratio", "warmup_steps", "weight_decay", "beta1", "beta2", "grad_clip", "method",
})
RESUMABLE_FIELDS = RUNTIME_FIELDS | OPTIMISER_FIELDS


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One training run. Field names match the ``memformer train`` flags (``--batch-size`` ->
    ``batch_size``); ``docs/cli.md`` describes each."""

    # --- the model
    model: str = "memformer"
    ablation: str | None = None
    # Fields of the model's config class (``MemformerConfig``, ``TransformerXLConfig``, ...).
    # vocab_size defaults to the tokenizer's.
    model_config: dict[str, Any] = dataclasses.field(default_factory=dict)
    tokenizer: str = "byte"
    preset: str | None = None
    # --- the data (``DataSpec``)
    data: str = "stdlib"
    data_format: str = "auto"
    text_field: str = "text"
    hf_config: str | None = None
    valid_fraction: float = 0.05
    test_fraction: float = 0.05
    allow_binary: bool = False  # read files that look binary instead of skipping / refusing them
    shuffle: bool = True
    # --- optimisation
    steps: int = 1200
    batch_size: int = 8
    # Segments per training window: MRBP (or BPTT) trains through K segments, the memory is
    # carried detached from one window to the next (spec decision 9).
    window: int = 4
    method: Method | None = None  # None: mrbp for Memformer, bptt for the baselines
    lr: float = 2e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 50
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    seed: int = 0
    precision: Precision = "auto"
    device: str = "auto"
    # CPU threads for PyTorch's kernels (0: PyTorch's default, one per core). ``memformer train``
    # without --threads picks the idle cores (``precision.idle_cpu_threads``): on a machine shared
    # with other jobs, oversubscribed cores are several times slower than fewer threads.
    threads: int = 0
    # --- reporting
    log_every: int = 100
    eval_every: int = 400
    eval_batches: int = 8  # batches of the valid split per validation; 0 = the whole split
    eval_batch_size: int = 8
    checkpoint_every: int = 400
    keep_checkpoints: int = 2

    def __post_init__(self) -> None:
        registry.spec(self.model)
        if self.ablation is not None:
            if self.model != "memformer":
                raise ValueError(
                    f"--ablation {self.ablation} applies to Memformer only, but the model is {self.model!r}; "
                    "drop --ablation or use --model memformer"
                )
            if not isinstance(self.ablation, str) or self.ablation not in registry.ABLATIONS:
                raise ValueError(f"unknown ablation {self.ablation!r}; choose one of {', '.join(registry.ABLATIONS)}")
        if not isinstance(self.model_config, dict):
            raise ValueError(f"model_config must be a JSON object of model fields, got {self.model_config!r}")
        # Check the model's fields now, before any data is read (vocab_size comes from the tokenizer
        # later; a stand-in of 256 checks everything else).
        registry.config_from_dict(self.model, {"vocab_size": 256, **self.model_config})
        if not isinstance(self.tokenizer, str) or not self.tokenizer:
            raise ValueError(f"tokenizer must be 'byte' or a tokenizer directory, got {self.tokenizer!r}")
        if self.data_format not in DATA_FORMATS:
            raise ValueError(f"data_format must be one of {', '.join(DATA_FORMATS)}, got {self.data_format!r}")
        self.data_spec()  # validates the data fields
        for name in ("shuffle",):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        for name, minimum in (("steps", 1), ("batch_size", 1), ("window", 1), ("warmup_steps", 0), ("seed", 0),
                              ("threads", 0), ("log_every", 1), ("eval_every", 0), ("eval_batches", 0),
                              ("eval_batch_size", 1),
                              ("checkpoint_every", 0), ("keep_checkpoints", 1)):
            _check_int(self, name, minimum)
        if self.seed >= 2**63:  # torch.manual_seed(seed + rank) must fit in 64 bits
            raise ValueError(f"seed must be < 2**63, got {self.seed}")
        if self.method is not None and self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.model != "memformer" and self.method in ("mrbp", "checkpoint"):
            raise ValueError(
                f"--method {self.method} trains a Memformer's memory; the {self.model} baseline trains with "
                "truncated BPTT over the window: use --method bptt (or leave it out)"
            )
        _check_float(self, "lr", low=0.0, low_open=True)
        _check_float(self, "min_lr_ratio", low=0.0, high=1.0)
        _check_float(self, "weight_decay", low=0.0)
        _check_float(self, "beta1", low=0.0, high=1.0, high_open=True)
        _check_float(self, "beta2", low=0.0, high=1.0, high_open=True)
        _check_float(self, "grad_clip", low=0.0)
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if not isinstance(self.device, str) or not self.device:
            raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")

    # ------------------------------------------------------------------ derived values

    @property
    def resolved_method(self) -> str:
        """The training method: the one asked for, or MRBP for Memformer and BPTT for baselines."""
        if self.method is not None:
            return self.method
        return "mrbp" if self.model == "memformer" else "bptt"

    def data_spec(self) -> DataSpec:
        return DataSpec(source=self.data, format=self.data_format, text_field=self.text_field,
                        hf_config=self.hf_config, valid_fraction=self.valid_fraction,
                        test_fraction=self.test_fraction, allow_binary=self.allow_binary)

    def build_model_config(self, *, vocab_size: int) -> Any:
        """The model's validated config: ``model_config`` over the class defaults, the ablation
        applied, and ``vocab_size`` from the tokenizer unless given (it may only be larger)."""
        values = dict(self.model_config)
        given = values.setdefault("vocab_size", vocab_size)
        config = registry.config_from_dict(self.model, values)
        if given < vocab_size:
            raise ValueError(
                f"model_config sets vocab_size {given}, smaller than the tokenizer's {vocab_size}: token ids "
                f"{given}..{vocab_size - 1} would be outside the model's vocabulary; drop vocab_size from the "
                "model config (it is taken from the tokenizer)"
            )
        if self.ablation is not None:
            config = registry.apply_ablation(config, self.ablation)
        return config

    # ------------------------------------------------------------------ JSON

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        _check_known(values, "training config")
        return cls(**values)

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The fields of a ``--config`` JSON file (unknown fields are refused, naming the known ones)."""
    path = Path(path)
    try:
        values = json_input.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"config file {path} does not exist") from None
    except OSError as error:
        raise ValueError(f"cannot read config file {path}: {error.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"config file {path} is not valid JSON ({error})") from None
    if not isinstance(values, dict):
        raise ValueError(f"config file {path} must hold a JSON object of training fields")
    _check_known(values, f"config file {path}")
    return values


def parse_model_config(text_or_path: str) -> dict[str, Any]:
    """``--model-config``: JSON text (``'{"d_model": 64}'``) or a JSON file of model fields."""
    text = text_or_path
    if not text.lstrip().startswith("{"):
        try:
            text = Path(text_or_path).read_text()
        except OSError as error:
            raise ValueError(f"--model-config {text_or_path!r} is neither a JSON object nor a readable file "
                             f"({error.strerror})") from None
        except UnicodeDecodeError:
            raise ValueError(f"--model-config file {text_or_path!r} is not valid JSON (not UTF-8 text)") from None
    try:
        values = json_input.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"--model-config is not valid JSON ({error.msg} at line {error.lineno})") from None
    if not isinstance(values, dict):
        raise ValueError("--model-config must be a JSON object of model config fields")
    return values


def resolve_config(
    *, file_values: dict[str, Any] | None = None, flag_values: dict[str, Any] | None = None
) -> TrainConfig:
    """Merge defaults < preset < config file < flags into a validated ``TrainConfig``.

    ``flag_values`` holds only the flags given on the command line. The preset is the one named
    by the flags, else by the file, else ``quickstart``; its model fields are those of the chosen
    model. ``model_config`` dicts merge key by key, later layers winning.
    """
    file_values = dict(file_values or {})
    flag_values = dict(flag_values or {})
    name = flag_values.get("preset") or file_values.get("preset") or DEFAULT_PRESET
    chosen = preset(name)
    model = flag_values.get("model") or file_values.get("model") or TrainConfig.model
    registry.spec(model)
    merged: dict[str, Any] = {**chosen["train"], "preset": name}
    model_config = dict(chosen["models"].get(model, {}))
    for layer in (file_values, flag_values):
        for key, value in layer.items():
            if key == "model_config":
                if not isinstance(value, dict):
                    raise ValueError(f"model_config must be a JSON object of model fields, got {value!r}")
                model_config.update(value)
            else:
                merged[key] = value
    merged["model_config"] = model_config
    return TrainConfig.from_dict(merged)


def resume_config(saved: TrainConfig, flag_values: dict[str, Any]) -> TrainConfig:
    """The saved run's config with the ``RESUMABLE_FIELDS`` the flags change; any other flag that
    disagrees with the saved run is a contradiction (ValueError naming it)."""
    changes: dict[str, Any] = {}
    for key, value in flag_values.items():
        if key == "model_config":
            differ = {k: v for k, v in value.items() if saved.model_config.get(k) != v}
            if differ:
                raise ValueError(
                    f"--resume continues the saved run, whose model config differs on {', '.join(sorted(differ))}; "
                    "drop those settings or start a new run with another --out"
                )
            continue
        if key in ("preset",):
            if value != saved.preset:
                raise ValueError(f"--preset {value} contradicts the run being resumed (preset {saved.preset}); "
                                 "drop --preset when resuming")
            continue
        current = getattr(saved, key)
        if key in RESUMABLE_FIELDS:
            changes[key] = value
        elif value != current:
            flag = "--" + key.replace("_", "-")
            raise ValueError(
                f"{flag} {value} contradicts the run being resumed ({key} = {current!r}); --resume continues "
                f"exactly the saved run, so drop {flag} or start a new run with another --out"
            )
    return saved.replace(**changes)


def _check_known(values: dict[str, Any], where: str) -> None:
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {field_names(unknown)}; known fields: {', '.join(sorted(known))}")


def _check_int(config: Any, name: str, minimum: int) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def _check_float(config: Any, name: str, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if low is not None and (value <= low if low_open else value < low):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and (value >= high if high_open else value > high):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {value}")
