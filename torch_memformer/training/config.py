"""``TrainConfig``: everything a training run is made of, validated early and saved as JSON.

Config flows one way (style principle 4):

    TrainConfig defaults  <  preset (``presets.py``)  <  --config FILE  <  command-line flags

``resolve_config`` merges those layers; ``model_config`` holds fields of the chosen model's own
config class and merges key by key (saved as given, so a resumed run keeps taking its vocabulary
from the tokenizer); ``TrainConfig.model_settings`` is those fields as that class, typed and
validated once, when the ``TrainConfig`` is made. The result is saved in every checkpoint
(``trainer_state.json``), so ``--resume`` rebuilds the same run. On resume flags may change only
the fields in ``RESUMABLE_FIELDS``: where the run trains and how it reports, and the optimiser's
settings (lowering the learning rate after a divergence is the usual reason to resume with a
change). The model, the data, the stream layout and the seed make the run what it is: a flag
that changes them is refused.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

from .. import json_input, registry
from ..config_base import JsonConfig, check_bool, check_float, check_int, setting
from ..data import DATA_FORMATS, DataSpec
from .presets import DEFAULT_PRESET, PRESETS, preset

Method = Literal["mrbp", "bptt", "checkpoint"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
METHODS: tuple[str, ...] = get_args(Method)
PRECISIONS: tuple[str, ...] = get_args(Precision)

# Fields a resumed run may change. The first set decides where it runs and how it reports, not
# what it computes (``steps`` extends or shortens the run; the cosine schedule follows the new
# length). The second changes the optimisation from the resumed step on (the run then no longer
# matches an uninterrupted one, which the trainer logs); the model and data stay as saved.
RUNTIME_FIELDS = frozenset({
    "steps", "device", "precision", "threads", "compile", "log_every", "eval_every", "eval_batches", "eval_batch_size",
    "checkpoint_every", "keep_checkpoints",
})
OPTIMISER_FIELDS = frozenset({
    "lr", "min_lr_ratio", "warmup_steps", "weight_decay", "beta1", "beta2", "grad_clip", "method",
})
RESUMABLE_FIELDS = RUNTIME_FIELDS | OPTIMISER_FIELDS

# The group of the data fields: their flags are the ones every command that reads a corpus shares
# (``commands/_data_args.py`` adds them, with their help), so ``memformer train`` adds no flags for
# this group from the fields.
DATA_GROUP = "data"


@dataclasses.dataclass(frozen=True)
class TrainConfig(JsonConfig):
    """One training run. Each field is a ``memformer train`` flag (``--batch-size`` ->
    ``batch_size``) whose type, help and group the field states (``config_base.setting``), so a new
    setting is one edit here; ``docs/cli.md`` describes each."""

    config_name: ClassVar[str] = "training config"

    # --- the model
    model: str = setting("memformer", group="model", choices=registry.model_names(),
                         help="architecture (default: memformer)")
    ablation: str | None = setting(None, group="model", choices=list(registry.ABLATIONS),
                                   help="one of the paper's Memformer ablations")
    # Fields of the model's config class (``MemformerConfig``, ``TransformerXLConfig``, ...).
    # vocab_size defaults to the tokenizer's. No flag of its own: ``--model-config JSON_OR_FILE``
    # and ``--segment-len`` fill it.
    model_config: dict[str, Any] = setting(default_factory=dict, flag=False)
    tokenizer: str = setting("byte", group="model", metavar="byte|DIR",
                             help="'byte' (default) or a directory from 'memformer tokenizer train'")
    preset: str | None = setting(
        None, group="run", choices=list(PRESETS),
        help="starting settings: " + "; ".join(f"{k}: {v['description']}" for k, v in PRESETS.items())
             + " (default: quickstart)")
    # --- the data (``DataSpec``); their flags and help are shared (DATA_GROUP)
    data: str = setting("stdlib", group=DATA_GROUP)
    data_format: str = setting("auto", group=DATA_GROUP)
    text_field: str = setting("text", group=DATA_GROUP)
    hf_config: str | None = setting(None, group=DATA_GROUP)
    valid_fraction: float = setting(0.05, group=DATA_GROUP)
    test_fraction: float = setting(0.05, group=DATA_GROUP)
    # read files that look binary instead of skipping / refusing them
    allow_binary: bool = setting(False, group=DATA_GROUP)
    shuffle: bool = setting(True, help="shuffle the document order every epoch (default: on)")
    # --- optimisation
    steps: int = setting(1200, group="optimisation", help="optimizer steps in the whole run")
    batch_size: int = setting(8, group="optimisation", help="stream rows per step, per process")
    # Segments per training window: MRBP (or BPTT) trains through K segments, the memory is
    # carried detached from one window to the next (spec decision 9).
    window: int = setting(
        4, group="optimisation", metavar="K",
        help="segments per training window (MRBP/BPTT horizon); the memory is carried between windows")
    # None: mrbp for Memformer, bptt for the baselines
    method: Method | None = setting(
        None, group="optimisation", help="gradient engine (default: mrbp for Memformer, bptt for the baselines)")
    lr: float = setting(2e-3, group="optimisation", help="peak learning rate")
    min_lr_ratio: float = setting(0.1, group="optimisation", help="final learning rate / peak (cosine)")
    warmup_steps: int = setting(50, group="optimisation", aliases=("--warmup",), help="linear warmup steps")
    weight_decay: float = setting(0.1, group="optimisation", help="AdamW weight decay (weight matrices only)")
    beta1: float = setting(0.9, group="optimisation")
    beta2: float = setting(0.95, group="optimisation")
    grad_clip: float = setting(1.0, group="optimisation", help="max gradient norm (0: no clipping)")
    seed: int = setting(0, group="optimisation")
    precision: Precision = setting(
        "auto", group="optimisation",
        help="auto (bf16 autocast where the hardware has it, else fp32), fp32, bf16, fp16 (CUDA)")
    device: str = setting("auto", group="optimisation", help="auto, cpu, cuda or cuda:N (default: auto)")
    # CPU threads for PyTorch's kernels (0: PyTorch's default, one per core). ``memformer train``
    # without --threads picks the idle cores (``precision.idle_cpu_threads``): on a machine shared
    # with other jobs, oversubscribed cores are several times slower than fewer threads.
    threads: int = setting(
        0, group="optimisation",
        help="CPU threads for PyTorch (default: the idle cores, by the load average; 0: PyTorch's default, one "
             "per core)")
    # Compiles only the per-segment functions (``compile_step.py``): the stream's input checks read
    # tensors on the host and stay eager, so the compiled graphs have no break and one compile
    # serves every segment. It changes float rounding only, so a resumed run may switch it.
    compile: bool = setting(
        False, group="optimisation",
        help="torch.compile the segment step (Memformer only; compiles at the first steps, faster after)")
    # --- reporting
    log_every: int = setting(100, group="reporting", help="steps between progress lines")
    eval_every: int = setting(400, group="reporting", help="steps between validations (0: never)")
    eval_batches: int = setting(8, group="reporting", help="valid batches per validation (0: the whole split)")
    eval_batch_size: int = setting(8, group="reporting")
    checkpoint_every: int = setting(400, group="reporting", help="steps between checkpoints (and at the end)")
    keep_checkpoints: int = setting(2, group="reporting", help="checkpoints kept (older ones deleted)")

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
        # The model's fields are validated here, once, by the chosen model's own config class (the
        # registry's), so a bad field fails before any data is read. ``build_model_config`` reuses
        # the result and only sets the vocabulary, known once the tokenizer (or the corpus) is.
        self.model_settings  # noqa: B018 (computing the cached property is the validation)
        if not isinstance(self.tokenizer, str) or not self.tokenizer:
            raise ValueError(f"tokenizer must be 'byte' or a tokenizer directory, got {self.tokenizer!r}")
        if self.data_format not in DATA_FORMATS:
            raise ValueError(f"data_format must be one of {', '.join(DATA_FORMATS)}, got {self.data_format!r}")
        self.data_spec()  # validates the data fields
        check_bool(self, "shuffle")
        check_bool(self, "compile")
        if self.compile and self.model != "memformer":
            raise ValueError(f"--compile compiles a Memformer's segment step; the {self.model} baseline runs eager: "
                             "drop --compile")
        for name, minimum in (("steps", 1), ("batch_size", 1), ("window", 1), ("warmup_steps", 0), ("seed", 0),
                              ("threads", 0), ("log_every", 1), ("eval_every", 0), ("eval_batches", 0),
                              ("eval_batch_size", 1),
                              ("checkpoint_every", 0), ("keep_checkpoints", 1)):
            check_int(self, name, minimum=minimum)
        if self.seed >= 2**63:  # torch.manual_seed(seed + rank) must fit in 64 bits
            raise ValueError(f"seed must be < 2**63, got {self.seed}")
        if self.method is not None and self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.model != "memformer" and self.method in ("mrbp", "checkpoint"):
            raise ValueError(
                f"--method {self.method} trains a Memformer's memory; the {self.model} baseline trains with "
                "truncated BPTT over the window: use --method bptt (or leave it out)"
            )
        check_float(self, "lr", low=0.0, low_open=True)
        check_float(self, "min_lr_ratio", low=0.0, high=1.0)
        check_float(self, "weight_decay", low=0.0)
        check_float(self, "beta1", low=0.0, high=1.0, high_open=True)
        check_float(self, "beta2", low=0.0, high=1.0, high_open=True)
        check_float(self, "grad_clip", low=0.0)
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

    @functools.cached_property
    def model_settings(self) -> registry.ModelConfig:
        """``model_config`` as the chosen model's typed config: its class defaults for the fields
        not given, the ablation applied, validated by that class. Its vocab_size is the one given,
        else the class default until ``build_model_config`` sets the tokenizer's.

        Computed once per ``TrainConfig`` (at construction; a cached property, so it is neither a
        field nor saved: ``train_config.json`` keeps ``model_config`` as the fields given). A bad
        field raises one ValueError that names it and where to fix it."""
        if not isinstance(self.model_config, dict):
            raise ValueError(f"model_config must be a JSON object of model fields, got {self.model_config!r}")
        try:
            config = registry.config_from_dict(self.model, self.model_config)
        except ValueError as error:
            raise ValueError(f"model_config: {error} (set model fields with --model-config or the config file's "
                             "model_config)") from None
        if self.ablation is not None:
            config = registry.apply_ablation(config, self.ablation)
        return config

    def build_model_config(self, *, vocab_size: int) -> registry.ModelConfig:
        """The model's validated config: ``model_config`` over the class defaults, the ablation
        applied, and ``vocab_size`` from the tokenizer unless given (it may only be larger)."""
        config = self.model_settings
        given = self.model_config.get("vocab_size")
        if given is None:
            # The class checks the tokenizer's vocabulary as it would a given one (vocab_size >= 2).
            return config.replace(vocab_size=vocab_size)
        if given < vocab_size:
            raise ValueError(
                f"model_config sets vocab_size {given}, smaller than the tokenizer's {vocab_size}: token ids "
                f"{given}..{vocab_size - 1} would be outside the model's vocabulary; drop vocab_size from the "
                "model config (it is taken from the tokenizer)"
            )
        return config


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
    TrainConfig.check_known(values, where=f"config file {path}")
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
