"""Language models trained with ``memformer train``'s loop for the same time on the same data,
evaluated with ``torch_memformer.evaluate``, and the manifest that lets a later experiment load them.

Experiment 6 (``language-model``) trains and compares them; experiment 2 (``matched-inference``)
reads the manifest back, picks the Transformer-XL whose bits per byte is closest to Memformer's,
and measures both streaming.

**Equal training time.** The trainer counts steps, not seconds, and its cosine schedule needs the
run's length up front; so the time budget becomes a step count per model. Before training, every
model trains a few steps on the same batches, the models' steps interleaved (A, B, C, A, B, C, ...);
the median **CPU time** per step (the process's, on one torch thread: the work itself, without the
time other jobs held the core) is the model's step time, and it trains for
``round(budget / step time)`` steps. Each model then gets about the same compute whatever the
load on the shared machine does (the load only stretches the wall clock; the realised CPU and wall
seconds are recorded next to the budget). A wall-clock stop inside the trainer would instead hand
fewer steps to whichever model trains while the machine is busier, and end its learning-rate
schedule early.

**Equal parameter count.** The baselines' and the ablation's FFN width is solved so that their
parameter count is the nearest to Memformer's (``matched_d_ff``); the tables report the counts.

Directory layout (``root``, ignored by git):

    root/manifest.json        what was trained, how long, and the bits per byte of each model
                              ("complete" once every model is in: a stopped run's is not read back)
    root/<key>/               the run directory ``memformer train`` writes (checkpoints/, metrics.jsonl)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import statistics
from pathlib import Path
from typing import Any

import torch

from ... import registry, runs
from ...checkpoint import load_model
from ...data import TrainStream, resolve_tokenizer, tokenized_split
from ...evaluate import evaluate
from ...training import TrainConfig, train
from ...training.engines import train_window
from ...training.metrics import read_metrics
from .models import parameter_count
from .timing import Stopwatch
from .training import experiment_train_config

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """One model of the comparison.

    key: its directory and JSON key ("memformer", "no-memory", "txl-64"). label: for tables.
    model: the registry name. model_config: its config fields (vocab_size comes from the
    tokenizer). ablation: a Memformer ablation of ``registry.ABLATIONS``, applied by the trainer.
    memory: slots (Memformer) or mem_len (Transformer-XL); 0 for the no-memory ablation.
    """

    key: str
    label: str
    model: str
    model_config: dict[str, Any]
    ablation: str | None = None
    memory: int = 0


@dataclasses.dataclass(frozen=True)
class Recipe:
    """What every model's training and evaluation share.

    seconds_per_model: the training-time budget of each model; ``steps`` (not None) replaces it
    by the same number of steps for every model. eval_batches: batches of the valid split scored
    (a fixed prefix of each of ``eval_batch_size`` rows, the same tokens for every model).
    """

    seconds_per_model: float
    steps: int | None = None
    batch_size: int = 8
    window: int = 4
    lr: float = 2e-3
    warmup_fraction: float = 0.05
    calibration_rounds: int = 3
    eval_batches: int = 24
    eval_batch_size: int = 8


def count_parameters(model: str, model_config: dict[str, Any], *, vocab_size: int, ablation: str | None = None) -> int:
    """Parameters of the model a ``TrainConfig`` with these fields builds."""
    config = TrainConfig(model=model, ablation=ablation, model_config=model_config)
    return parameter_count(registry.build_model(model, config.build_model_config(vocab_size=vocab_size)))


def matched_d_ff(model: str, model_config: dict[str, Any], *, target: int, vocab_size: int,
                 ablation: str | None = None, multiple: int = 32) -> int:
    """The FFN width (a multiple of ``multiple``) that brings the model's parameter count nearest
    to ``target``. Parameters grow linearly in d_ff, so two builds give the line."""

    def count(d_ff: int) -> int:
        return count_parameters(model, {**model_config, "d_ff": d_ff}, vocab_size=vocab_size, ablation=ablation)

    low, high = multiple, 2 * multiple
    per_unit = (count(high) - count(low)) / (high - low)
    guess = low + (target - count(low)) / per_unit
    candidates = {max(multiple, multiple * int(guess // multiple) + k * multiple) for k in (-1, 0, 1, 2)}
    return min(sorted(candidates), key=lambda d_ff: abs(count(d_ff) - target))


def train_config(entry: ModelEntry, recipe: Recipe, *, data: str, steps: int, threads: int, seed: int) -> TrainConfig:
    """The ``TrainConfig`` of one model: ``memformer train`` with these flags trains the same run."""
    return experiment_train_config(
        model=entry.model, ablation=entry.ablation, model_config=dict(entry.model_config), data=data,
        steps=steps, batch_size=recipe.batch_size, window=recipe.window, lr=recipe.lr,
        warmup_steps=max(1, round(recipe.warmup_fraction * steps)), seed=seed, threads=threads,
        log_every=max(1, steps // 4),
    )


def train_command(entry: ModelEntry, config: TrainConfig, out_dir: Path) -> str:
    """The ``memformer train`` command line that trains the same run."""
    parts = ["memformer train", f"--model {config.model}"]
    if config.ablation:
        parts.append(f"--ablation {config.ablation}")
    parts += [f"--model-config '{json.dumps(entry.model_config, sort_keys=True)}'", f"--data {config.data}",
              f"--steps {config.steps}", f"--batch-size {config.batch_size}", f"--window {config.window}",
              f"--lr {config.lr}", f"--warmup-steps {config.warmup_steps}", f"--seed {config.seed}",
              f"--threads {config.threads}", "--eval-every 0", f"--out {out_dir}"]
    return " ".join(parts)


# ---------------------------------------------------------------------------- step-time calibration


def calibrate(entries: list[ModelEntry], recipe: Recipe, *, data: str, threads: int, seed: int,
              cache_dir: Path | None) -> dict[str, dict[str, list[float]]]:
    """CPU and wall seconds per training step of each model ({key: {"cpu": [...], "wall": [...]}}),
    measured interleaved: one warm-up step each, then ``recipe.calibration_rounds`` rounds of one
    step per model. Each step is what the trainer's step does (next batch, MRBP or truncated BPTT
    over the window, clipping, AdamW)."""
    torch.set_num_threads(threads)
    probe = train_config(entries[0], recipe, data=data, steps=1, threads=threads, seed=seed)
    tokenizer = resolve_tokenizer(probe.tokenizer)
    corpus = tokenized_split(probe.data_spec(), "train", tokenizer, cache_dir=cache_dir)
    steppers = {}
    for entry in entries:
        config = train_config(entry, recipe, data=data, steps=1, threads=threads, seed=seed)
        torch.manual_seed(seed)
        model = registry.build_model(entry.model, config.build_model_config(vocab_size=tokenizer.vocab_size)).train()
        stream = TrainStream(corpus, batch_size=recipe.batch_size, segment_len=model.config.segment_len,
                             window=recipe.window * model.config.segment_len, shuffle=True, seed=seed,
                             vocab_size=model.config.vocab_size)
        steppers[entry.key] = _Stepper(model, stream, config)
    seconds: dict[str, dict[str, list[float]]] = {key: {"cpu": [], "wall": []} for key in steppers}
    for stepper in steppers.values():
        stepper.step()  # warm-up: first-call allocations and kernel selection
    for _ in range(recipe.calibration_rounds):
        for key, stepper in steppers.items():
            cpu, wall = stepper.step()
            seconds[key]["cpu"].append(cpu)
            seconds[key]["wall"].append(wall)
    return seconds


class _Stepper:
    """One model's training step as the trainer's loop takes it, timed."""

    def __init__(self, model: torch.nn.Module, stream: TrainStream, config: TrainConfig) -> None:
        self.model, self.stream, self.config = model, stream, config
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, betas=(config.beta1, config.beta2),
                                           weight_decay=config.weight_decay, fused=True)
        self.state = model.init_state(config.batch_size)

    def step(self) -> tuple[float, float]:
        """(CPU seconds, wall seconds) of one step."""
        with Stopwatch() as watch:
            batch = self.stream.next_batch()
            result = train_window(self.model, batch.input_ids, labels=batch.labels, reset=batch.reset,
                                  state=self.state, method=self.config.resolved_method)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.state = result.state
        return watch.cpu, watch.wall


# ---------------------------------------------------------------------------- train, evaluate, record


def train_and_evaluate(
    entries: list[ModelEntry],
    recipe: Recipe,
    *,
    root: Path,
    data: str,
    threads: int,
    seed: int,
    cache_dir: Path | None,
) -> dict:
    """Calibrate, train every model for its steps, evaluate each on the valid prefix, and write
    ``root/manifest.json``; returns the manifest. Each model's run directory is replaced."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    # Checkpoints are large and machine-made: keep them out of git wherever ``--out`` points.
    (root / ".gitignore").write_text("# written by memformer bench: checkpoints stay out of git\n*\n")
    calibration: dict[str, dict[str, list[float]]] = {}
    if recipe.steps is None:
        logger.info("calibrating the seconds per training step of %d models (%d rounds)", len(entries),
                    recipe.calibration_rounds)
        calibration = calibrate(entries, recipe, data=data, threads=threads, seed=seed, cache_dir=cache_dir)
    manifest = {"version": MANIFEST_VERSION, "complete": False, "data": data, "threads": threads, "seed": seed,
                "recipe": dataclasses.asdict(recipe), "models": []}
    valid = None
    for entry in entries:
        if recipe.steps is not None:
            step_seconds, steps = None, recipe.steps
        else:
            step_seconds = statistics.median(calibration[entry.key]["cpu"])
            steps = max(1, round(recipe.seconds_per_model / step_seconds))
        config = train_config(entry, recipe, data=data, steps=steps, threads=threads, seed=seed)
        run_dir = root / entry.key
        if run_dir.exists():
            shutil.rmtree(run_dir)
        logger.info("training %s for %d steps", entry.label, steps)
        with Stopwatch() as watch:
            result = train(config, out_dir=run_dir, cache_dir=cache_dir)
        cpu, wall = watch.cpu, watch.wall
        if result.interrupted:  # Ctrl-C / SIGTERM: the trainer saved and stopped; so does the experiment
            raise KeyboardInterrupt(f"training of {entry.label} stopped at step {result.step}")
        checkpoint = runs.latest_checkpoint(run_dir)
        loaded = load_model(checkpoint)
        tokens_per_step = recipe.batch_size * recipe.window * loaded.model.config.segment_len
        if valid is None:
            valid = tokenized_split(config.data_spec(), "valid", loaded.tokenizer, cache_dir=cache_dir)
        carried = evaluate(loaded.model, valid, batch_size=recipe.eval_batch_size, max_batches=recipe.eval_batches)
        reset = None
        if entry.model == "memformer" and loaded.model.config.use_memory:
            reset = evaluate(loaded.model, valid, batch_size=recipe.eval_batch_size, max_batches=recipe.eval_batches,
                             reset_memory=True)
        record = {
            "key": entry.key, "label": entry.label, "model": entry.model, "ablation": entry.ablation,
            "memory": entry.memory, "model_config": registry.config_to_dict(loaded.model.config),
            "parameters": parameter_count(loaded.model), "steps": result.step,
            "calibration_step_seconds": calibration.get(entry.key), "step_seconds": step_seconds,
            "budget_seconds": None if recipe.steps is not None else recipe.seconds_per_model,
            "train_seconds": result.seconds, "train_wall_seconds": wall, "train_cpu_seconds": cpu,
            "tokens": result.step * tokens_per_step, "tokens_per_second": result.tokens_per_second,
            "final_train_loss": result.loss, "train_curve": _train_curve(run_dir / runs.METRICS_FILE),
            "checkpoint": str(checkpoint.relative_to(root)), "command": train_command(entry, config, run_dir),
            "valid": carried.to_dict(), "valid_reset": None if reset is None else reset.to_dict(),
        }
        manifest["models"].append(record)
        _write_json(root / MANIFEST, manifest)
        logger.info("%s: %d steps in %.0f s of CPU time, valid %.4f bits/byte", entry.label, result.step, cpu,
                    carried.bits_per_byte)
    manifest["complete"] = True
    _write_json(root / MANIFEST, manifest)
    return manifest


def read_manifest(root: Path) -> dict | None:
    """The manifest under ``root``, or None when there is none, it is of another version, or its
    run stopped before every model was trained."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("version") != MANIFEST_VERSION or not manifest.get("complete"):
        return None
    return manifest


def checkpoint_of(root: Path, record: dict) -> Path:
    return Path(root) / record["checkpoint"]


def _train_curve(metrics_path: Path, *, points: int = 200) -> list[list[float]]:
    """[step, loss in nats] of the training steps, thinned to about ``points`` entries."""
    records = [r for r in read_metrics(metrics_path) if r.get("kind") == "train"]
    every = max(1, len(records) // points)
    return [[r["step"], r["loss"]] for i, r in enumerate(records) if i % every == 0 or i == len(records) - 1]


def _write_json(path: Path, value: Any) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(value, indent=2) + "\n")
    temporary.replace(path)
