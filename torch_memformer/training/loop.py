"""The training loop: a plain function, read top to bottom, with its hooks in plain sight.

    config, resume = plan_run(out_dir=..., file_values={}, flag_values={...}, resume=False)
    result = train(config, out_dir=Path("runs/x"), resume=resume)

Per step: take the next batch of the stream (B contiguous rows, ``data.TrainStream``), set the
learning rate, accumulate the window's gradients (``engines.train_window``: MRBP for
Memformer by default), clip, check the loss is finite, step AdamW, carry the detached state to
the next window. Then the hooks: metrics, validation every ``eval_every`` steps, a checkpoint
every ``checkpoint_every`` steps and at the end, and a clean stop on Ctrl-C.

Everything that decides the numbers of step s + 1 (weights, AdamW moments, the stream position,
the carried state, the random generators) is in the checkpoint of step s, so a resumed run
computes the same losses as an uninterrupted one (``tests/training/test_training_resume.py``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import sys
import time
from pathlib import Path

import torch
from torch import nn

from .. import registry, runs
from ..checkpoint import load_model, save_model
from ..compile_step import compile_segment_step
from ..data import TokenizedCorpus, TrainStream, resolve_tokenizer, tokenized_split
from ..errors import UserError
from ..evaluate import EvalResult, evaluate
from ..model import Memformer
from . import distributed
from .config import OPTIMISER_FIELDS, TrainConfig
from .distributed import DistInfo
from .engines import train_window, window_targets
from .interrupt import StopRequest
from .metrics import MetricsWriter
from .precision import check_threads, resolve_device, resolve_precision
from .resume import ResumePoint, save_run_config
from .schedule import learning_rate
from .training_state import TrainingState, write_training_state

logger = logging.getLogger(__name__)


class NonFiniteLoss(UserError):
    """The loss or the gradient became NaN/inf: training stopped without saving."""


@dataclasses.dataclass(frozen=True)
class DebugOptions:
    """Test hooks (hidden flags of ``memformer train``): sleep inside every checkpoint write, after
    the files are written and before the directory is published, and after every step, so a test
    can kill the process at a known moment."""

    slow_save_seconds: float = 0.0
    slow_step_seconds: float = 0.0


@dataclasses.dataclass(frozen=True, eq=False)
class InMemoryData:
    """Token corpora given directly, in place of the ``config.data`` source and its tokenizer.

    For data that is token ids from the start (pixels, synthetic tasks; ``experiments/``): the
    model's vocabulary is ``train.vocab_size`` unless ``model_config`` sets a larger one, no
    tokenizer is saved with the checkpoints, and ``config.data`` is only a label. A resumed run
    must be given the same corpora (the stream's layout check refuses others).
    """

    train: TokenizedCorpus
    valid: TokenizedCorpus | None = None


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """step: the last step taken. checkpoint: the last checkpoint written. interrupted: stopped
    by Ctrl-C/SIGTERM (after saving). tokens_per_second: positions (B x window, all ranks) per
    second of training, validation and saving excluded."""

    run_dir: Path
    step: int
    checkpoint: Path | None
    loss: float
    valid: EvalResult | None
    tokens_per_second: float
    seconds: float
    interrupted: bool


def train(
    config: TrainConfig,
    *,
    out_dir: Path,
    resume: ResumePoint | None = None,
    dist_info: DistInfo = DistInfo(),
    cache_dir: Path | None = None,
    debug: DebugOptions = DebugOptions(),
    data: InMemoryData | None = None,
) -> TrainResult:
    """Run (or continue) the training ``config`` describes, writing into ``out_dir`` (rank 0).

    ``data`` trains on corpora already in memory instead of reading ``config.data``.
    """
    device = resolve_device(config.device, local_rank=dist_info.local_rank)
    if config.threads:
        check_threads(config.threads)
        torch.set_num_threads(config.threads)
    distributed.init_process_group(dist_info, device)
    try:
        return _train(config, Path(out_dir), resume, dist_info, device, cache_dir, debug, data)
    finally:
        distributed.destroy_process_group()


def _train(config, out_dir, resume, dist_info, device, cache_dir, debug, data) -> TrainResult:
    is_main = dist_info.is_main
    precision = resolve_precision(config.precision, device)
    method = config.resolved_method
    if resume is not None and resume.state.world_size != dist_info.world_size:
        raise UserError(
            f"the checkpoint was written by {resume.state.world_size} process(es) but this run has "
            f"{dist_info.world_size}; resume with the same number of processes (each owns its rows of the stream)"
        )

    # ---- the model and its tokenizer (both from the checkpoint when resuming)
    torch.manual_seed(config.seed)
    if resume is not None:
        loaded = load_model(resume.checkpoint, device=device)
        model, tokenizer = loaded.model, loaded.tokenizer
        if tokenizer is None and data is None:
            tokenizer = resolve_tokenizer(config.tokenizer)
    else:
        tokenizer = None if data is not None else resolve_tokenizer(config.tokenizer)
        vocab_size = data.train.vocab_size if data is not None else tokenizer.vocab_size
        model = registry.build_model(config.model, config.build_model_config(vocab_size=vocab_size))
        model.to(device)
    model.train()
    if config.compile:
        compile_segment_step(model)  # after loading: the compiled functions close over these weights
    segment_len = model.config.segment_len

    # ---- data: given in memory, or rank 0 tokenizes into the cache first and the other ranks then map it
    spec = config.data_spec()
    train_corpus = valid_corpus = None
    if data is not None:
        train_corpus, valid_corpus = data.train, (data.valid if config.eval_every > 0 else None)
    else:
        for turn in ((True,) if not dist_info.enabled else (True, False)):
            if is_main == turn:
                train_corpus = tokenized_split(spec, "train", tokenizer, cache_dir=cache_dir)
                valid_corpus = _optional_valid(spec, tokenizer, cache_dir, wanted=config.eval_every > 0)
            distributed.barrier(dist_info)
    stream = TrainStream(train_corpus, batch_size=config.batch_size, segment_len=segment_len,
                         window=config.window * segment_len, rank=dist_info.rank, world_size=dist_info.world_size,
                         shuffle=config.shuffle, seed=config.seed, vocab_size=model.config.vocab_size)

    # ---- optimizer, carried state, random generators
    optimizer = _adamw(model, config, device)
    scaler = torch.amp.GradScaler(device.type) if precision.name == "fp16" else None
    state = model.init_state(config.batch_size, device=device)
    torch.manual_seed(config.seed + dist_info.rank)  # dropout streams differ between ranks
    step = 0
    progress = {"tokens": 0, "train_seconds": 0.0}
    if resume is not None:
        step, state, progress = _restore(resume, config, model, optimizer, scaler, stream, dist_info, device)
    module = distributed.wrap(model, dist_info, device)

    if is_main:
        _log_start(config, model, stream, device, precision.name, method, dist_info, resume)
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UserError(f"cannot create the run directory {out_dir}: {error.strerror}") from None
        save_run_config(out_dir, config)  # before any metrics: what --resume restarts if no checkpoint follows
    metrics = (MetricsWriter(out_dir / runs.METRICS_FILE, tensorboard_dir=out_dir / runs.TENSORBOARD_DIR,
                             resume_step=None if resume is None else step) if is_main else None)
    if is_main:
        runs.remove_stale_temporaries(out_dir)
    tokens_per_step = config.batch_size * dist_info.world_size * config.window * segment_len
    last_checkpoint = resume.checkpoint if resume is not None else None
    valid_result: EvalResult | None = None
    loss = float("nan")
    interval_start, interval_steps = time.perf_counter(), 0
    first_step, run_start = step, time.perf_counter()
    bar = _progress_bar(config.steps, step, enabled=is_main)

    def save(at_step: int) -> Path | None:
        """Gather every rank's carried state and generators; rank 0 writes the checkpoint."""
        carried = {name: distributed.gather_rows(t, dist_info) for name, t in state.tensors().items()}
        rng = distributed.gather_rng(dist_info, device)
        path = None
        if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
            raise NonFiniteLoss(_non_finite_message("parameters", at_step, loss, float("nan"), last_checkpoint))
        if is_main:
            snapshot = TrainingState(
                step=at_step, config=config, optimizer=optimizer.state_dict(), stream=stream.state_dict(),
                carried=carried, rng=rng, grad_scaler=None if scaler is None else scaler.state_dict(),
                progress=dict(progress), world_size=dist_info.world_size,
            )
            path = runs.checkpoint_dir(out_dir, at_step)

            def add_training_state(tmp: Path) -> None:
                write_training_state(tmp, snapshot)
                if debug.slow_save_seconds:
                    time.sleep(debug.slow_save_seconds)

            save_model(path, model, tokenizer=tokenizer, extra=add_training_state)
            runs.write_latest(out_dir, path)
            runs.prune_checkpoints(out_dir, keep=config.keep_checkpoints, protect=path)
            metrics.write("event", at_step, {"checkpoint": str(path.relative_to(out_dir))})
        distributed.barrier(dist_info)
        return path

    try:
        with StopRequest() as stop:
            while step < config.steps:
                step_start = time.perf_counter()
                batch = stream.next_batch().to(device)
                step += 1
                lr = learning_rate(step, lr=config.lr, warmup_steps=config.warmup_steps,
                                   total_steps=config.steps, min_lr_ratio=config.min_lr_ratio)
                for group in optimizer.param_groups:
                    group["lr"] = lr

                # Each rank's loss is weighted by its share of the global target count, so the
                # gradient DDP averages is the token mean over all ranks' rows (distributed.py).
                count = window_targets(batch.labels).double()
                global_count = distributed.all_reduce_sum(count, dist_info).clamp(min=1)
                weight = float(count * dist_info.world_size / global_count) if dist_info.enabled else 1.0
                with precision.autocast(device):
                    result = train_window(module, batch.input_ids, labels=batch.labels, reset=batch.reset,
                                          state=state, method=method, loss_weight=weight, grad_scaler=scaler)
                if scaler is not None:
                    scaler.unscale_(optimizer)
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip or float("inf"))
                totals = distributed.all_reduce_sum(
                    torch.stack([result.loss.double() * count, torch.tensor(float(stop.requested), dtype=torch.float64,
                                                                             device=count.device)]), dist_info)
                loss = float(totals[0] / global_count)
                stop_now = bool(totals[1] > 0)
                if not math.isfinite(loss) or (scaler is None and not math.isfinite(float(grad_norm))):
                    what = "loss" if not math.isfinite(loss) else "gradient norm"
                    raise NonFiniteLoss(_non_finite_message(what, step, loss, float(grad_norm), last_checkpoint))
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                state = result.state
                step_seconds = time.perf_counter() - step_start
                progress["tokens"] += tokens_per_step
                progress["train_seconds"] += step_seconds
                interval_steps += 1

                # ---- hook: metrics (every step) and the progress line (every log_every steps)
                if is_main:
                    metrics.write("train", step, {"loss": loss, "lr": lr, "grad_norm": float(grad_norm),
                                                  "tokens_per_second": tokens_per_step / step_seconds,
                                                  "epoch": stream.epoch})
                    bar.update(1)
                    if step % config.log_every == 0 or step == config.steps:
                        rate = tokens_per_step * interval_steps / (time.perf_counter() - interval_start)
                        per_step = (time.perf_counter() - run_start) / (step - first_step)
                        _report(bar, step, config.steps, loss, lr, rate, per_step * (config.steps - step), tokenizer)
                        interval_start, interval_steps = time.perf_counter(), 0

                # ---- hook: validation
                if valid_corpus is not None and config.eval_every and (step % config.eval_every == 0
                                                                        or step == config.steps):
                    valid_result, reset_result = _validate(model, valid_corpus, config, precision, dist_info)
                    if is_main:
                        metrics.write("valid", step, _valid_metrics(valid_result, reset_result))
                        _write(bar, _valid_line(step, valid_result, reset_result, tokenizer))
                    interval_start = time.perf_counter()

                # ---- hook: checkpoint (and a clean stop on Ctrl-C / SIGTERM)
                due = config.checkpoint_every and step % config.checkpoint_every == 0
                if due or step == config.steps or stop_now:
                    last_checkpoint = save(step) or last_checkpoint
                    interval_start = time.perf_counter()
                if debug.slow_step_seconds:
                    time.sleep(debug.slow_step_seconds)
                if stop_now:
                    break
            if dist_info.enabled:
                # Every rank applied the same averaged gradients: their parameters must agree bit for bit.
                spread = distributed.parameter_spread(model, dist_info)
                if is_main:
                    metrics.write("event", step, {"ranks_in_sync": spread == 0.0, "parameter_spread": spread})
    finally:
        bar.close()
        if metrics is not None:
            metrics.close()
    seconds = progress["train_seconds"]
    return TrainResult(
        run_dir=out_dir, step=step, checkpoint=last_checkpoint, loss=loss, valid=valid_result,
        tokens_per_second=progress["tokens"] / seconds if seconds else float("nan"), seconds=seconds,
        interrupted=step < config.steps,
    )


# ---------------------------------------------------------------------- pieces of the loop


def _optional_valid(spec, tokenizer, cache_dir, *, wanted: bool):
    """The valid split, or None (with a warning) when the source has none to offer."""
    if not wanted:
        return None
    try:
        return tokenized_split(spec, "valid", tokenizer, cache_dir=cache_dir)
    except ValueError as error:
        logger.warning("no validation during training: %s", error)
        return None


def _validate(model, corpus, config, precision, dist_info) -> tuple[EvalResult, EvalResult | None]:
    """The valid loss with the memory carried and, for a Memformer with a memory, with it reset to
    M_0 before every segment: their difference is what the memory is worth (the memory-use signal)."""
    kwargs = dict(batch_size=config.eval_batch_size, max_batches=config.eval_batches or None,
                  autocast_dtype=precision.dtype, rank=dist_info.rank, world_size=dist_info.world_size)
    carried = evaluate(model, corpus, **kwargs)
    has_memory = isinstance(model, Memformer) and model.config.use_memory
    return carried, (evaluate(model, corpus, reset_memory=True, **kwargs) if has_memory else None)


def _valid_metrics(carried: EvalResult, reset: EvalResult | None) -> dict[str, float]:
    values = {"loss": carried.loss, "bits_per_byte": carried.bits_per_byte, "perplexity": carried.perplexity,
              "tokens": carried.num_targets}
    if reset is not None:
        values.update(bits_per_byte_memory_reset=reset.bits_per_byte,
                      memory_gain_bits_per_byte=reset.bits_per_byte - carried.bits_per_byte)
    return values


def _valid_line(step: int, carried: EvalResult, reset: EvalResult | None, tokenizer) -> str:
    """One progress line per validation; with a memory, what carrying it is worth in bits per byte
    (positive: the model uses its memory; zero or negative: it does not, yet)."""
    line = (f"step {step}: valid {carried.bits_per_byte:.4f} bits/byte (perplexity {carried.perplexity:.2f}) on "
            f"{carried.num_targets:,} tokens")
    if reset is not None:
        line += (f"; memory reset every segment {reset.bits_per_byte:.4f}: the memory is worth "
                 f"{reset.bits_per_byte - carried.bits_per_byte:+.4f} bits/byte")
    return line


def _adamw(model: nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW with weight decay on the weight matrices only: not on biases and norms, not on the
    embeddings, and not on the memory's forgetting bias (its norm sets how fast a slot forgets,
    spec 1.3). Fused kernels where available (about 8x faster than foreach on this CPU)."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if parameter.dim() >= 2 and name.endswith(".weight") and "embedding" not in name:
            decay.append(parameter)
        else:
            no_decay.append(parameter)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    kwargs = dict(lr=config.lr, betas=(config.beta1, config.beta2))
    try:
        return torch.optim.AdamW(groups, fused=device.type in ("cpu", "cuda"), **kwargs)
    except (RuntimeError, TypeError):  # an older torch without fused CPU kernels
        return torch.optim.AdamW(groups, **kwargs)


def _restore(resume: ResumePoint, config, model, optimizer, scaler, stream, dist_info, device):
    """Put the optimizer, stream, carried state and generators back as the checkpoint saved them."""
    saved = resume.state
    try:
        optimizer.load_state_dict(saved.optimizer)
        stream.load_state_dict(saved.stream)
    except (ValueError, KeyError, RuntimeError) as error:
        raise UserError(f"cannot resume from {resume.checkpoint}: {error}") from None
    # load_state_dict brought back the saved groups' settings; the run's config may have changed them.
    optimizer.param_groups[0]["weight_decay"] = config.weight_decay  # group 0 holds the decayed matrices
    for group in optimizer.param_groups:
        group["betas"] = (config.beta1, config.beta2)
    changed = sorted(k for k in OPTIMISER_FIELDS if getattr(config, k) != getattr(saved.config, k))
    if changed:
        logger.warning("resuming with changed %s: from step %d on this run differs from an uninterrupted one",
                       ", ".join(changed), saved.step + 1)
    if scaler is not None and saved.grad_scaler:
        scaler.load_state_dict(saved.grad_scaler)
    rows = slice(dist_info.rank * stream.batch_size, (dist_info.rank + 1) * stream.batch_size)
    state_class = registry.spec(registry.model_type(model)).state_class
    try:
        state = state_class.from_tensors({name: t[rows].to(device) for name, t in saved.carried.items()})
    except (ValueError, TypeError) as error:
        raise UserError(
            f"cannot resume from {resume.checkpoint}: its carried stream state is damaged ({error})"
        ) from None
    generators = saved.rng[dist_info.rank]
    torch.set_rng_state(generators["cpu"])
    if "cuda" in generators and device.type == "cuda":
        torch.cuda.set_rng_state(generators["cuda"], device)
    return saved.step, state, dict(saved.progress)


def _non_finite_message(what: str, step: int, loss: float, grad_norm: float, last: Path | None) -> str:
    if last is None:
        where = "no checkpoint had been written yet; start again with a lower --lr"
    else:
        where = f"the last good checkpoint is {last}; continue from it with --resume and a lower --lr"
    return (f"the {what} became non-finite at step {step} (loss {loss}, gradient norm {grad_norm}); "
            f"stopped without saving: {where}")



def _progress_bar(total: int, initial: int, *, enabled: bool):
    from tqdm.auto import tqdm

    show = enabled and sys.stderr.isatty()
    return tqdm(total=total, initial=initial, disable=not show, unit="step", dynamic_ncols=True, leave=True)


def _report(bar, step: int, total: int, loss: float, lr: float, rate: float, eta: float, tokenizer) -> None:
    """The progress line: on the bar in a terminal, as a log line otherwise."""
    bits = loss / math.log(2)
    unit = "bits/byte" if tokenizer is not None and tokenizer.name == "byte" else "bits/token"
    if not bar.disable:
        bar.set_postfix_str(f"loss {loss:.3f} ({bits:.2f} {unit}) lr {lr:.2e} {rate:,.0f} tok/s", refresh=True)
        return
    logger.info("step %d/%d | loss %.4f (%.3f %s) | lr %.2e | %s tok/s | ETA %s", step, total, loss, bits, unit, lr,
                f"{rate:,.0f}", _duration(eta))


def _write(bar, message: str) -> None:
    if bar.disable:
        logger.info("%s", message)
    else:
        bar.write(message)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _log_start(config, model, stream, device, precision, method, dist_info, resume) -> None:
    params = sum(p.numel() for p in model.parameters())
    stats = stream.stats
    logger.info(
        "%s: %s parameters, %s | %s train tokens in %s documents, %s batches per epoch | %s x %s tokens per step "
        "(%d segment(s) of %d) | %s on %s (%s)%s",
        registry.model_type(model), f"{params:,}", method, f"{stats.num_tokens:,}", f"{stats.num_documents:,}",
        f"{stats.batches_per_epoch:,}", stats.num_rows, f"{stream.window:,}", config.window, model.config.segment_len,
        "float32" if precision == "fp32" else f"{precision} autocast",
        f"{device}, {torch.get_num_threads()} thread(s)" if device.type == "cpu" else device,
        f"{dist_info.world_size} process(es)", "" if resume is None else f" | resuming from {resume.checkpoint}",
    )
