"""Inference at matched quality (the abstract's "8.1x less memory and 3.2x faster on inference"):
stream 16k tokens through Memformer and through the Transformer-XL whose validation bits per byte
(same data, same training time, same parameter count) is closest to Memformer's, and compare the
state bytes, the peak process memory and the tokens per second.

The models are those of ``memformer bench language-model``, read from its checkpoint manifest
(``--checkpoints``, default ``<out>/language-model-checkpoints``); when there is none they are
trained first with that experiment's recipe (Memformer and the Transformer-XLs, about 20 minutes
on 2 cores). Each model is measured streaming the first ``--tokens`` tokens of the longest
document of the valid split, batch ``--batch`` (1), one torch thread (a shared 2-core machine
makes multi-threaded batch-1 timing several times slower and noisier):

- **read**: the stream in chunks of one segment (64 tokens), ``model(chunk, state=state)`` with
  logits for every token (what scoring a stream costs); tokens per second from the model calls;
- **generate**: ``--generate-tokens`` (512) tokens sampled at temperature 1 from the state
  after the stream (the time of reading the one-token prompt subtracted, as in ``streaming``);
- **memory**: in a fresh process per model, run with ``MALLOC_MMAP_THRESHOLD_=65536`` so glibc
  returns large freed blocks and the resident set follows the live tensors, reading the same
  stream in ``--memory-batch`` (16) rows at once: after loading the model and a warm-up the RSS is
  the baseline, the peak is reset (``/proc/self/clear_refs``), and the peak RSS above the baseline
  while reading the stream (and, separately, while generating) is the memory inference needs
  beyond the weights; the process's whole peak RSS is reported too. (At batch 1 that working
  memory is a few hundred KiB, and repeated runs differed by as much; at 16 rows they agree
  within 1%.)
- **state**: ``state.num_bytes()`` per stream, what a server keeps per user between calls.

Timing runs in one long-lived process per model (the default allocator), the models' runs
interleaved (A, B, C, A, B, C, ...) and the median of ``--repeats`` (3) taken.

    memformer bench matched-inference --update-results        # ~5 min with the LM checkpoints
    memformer bench matched-inference --quick                 # tiny models, seconds
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import logging
import os
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..checkpoint import load_model
from . import language_model
from .common import report
from .common.arguments import plan_from_flags, positive_int
from .common.machine import current_rss_bytes, environment, peak_rss_bytes, reset_peak_rss
from .common.processes import FreshProcess
from .common.timing import Stopwatch, generation_seconds
from .common.trained_models import checkpoint_of, read_manifest, train_and_evaluate

NAME = "matched-inference"
TITLE = "Inference at matched quality: Memformer against the Transformer-XL of closest bits per byte (abstract: 8.1x, 3.2x)"

logger = logging.getLogger(__name__)

TARGET_MEMORY_RATIO = 8.1  # "8.1x less memory"
TARGET_SPEEDUP = 3.2  # "3.2x faster on inference"
MMAP_THRESHOLD = "65536"
LN2 = 0.6931471805599453


@dataclasses.dataclass(frozen=True)
class Plan:
    tokens: int
    generate_tokens: int
    repeats: int
    batch: int
    # Rows streamed together in the memory measurement (see the module doc).
    memory_batch: int
    # Measure every Transformer-XL (True), or only the matched one.
    all_txl: bool
    warmup_generate: int = 8


DEFAULT = Plan(tokens=16384, generate_tokens=512, repeats=5, batch=1, memory_batch=16, all_txl=True)
QUICK = Plan(tokens=192, generate_tokens=16, repeats=1, batch=1, memory_batch=2, all_txl=False, warmup_generate=2)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    language_model.add_training_arguments(parser)
    parser.add_argument("--tokens", type=positive_int, default=None,
                        help=f"tokens streamed through each model (default {DEFAULT.tokens})")
    parser.add_argument("--generate-tokens", type=positive_int, default=None,
                        help=f"tokens sampled after the stream (default {DEFAULT.generate_tokens})")
    parser.add_argument("--repeats", type=positive_int, default=None,
                        help=f"timed runs per model, interleaved; the median is reported (default {DEFAULT.repeats})")
    parser.add_argument("--batch", type=positive_int, default=None,
                        help=f"streams read together when timing (default {DEFAULT.batch}); the same text in every row")
    parser.add_argument("--memory-batch", type=positive_int, default=None,
                        help=f"streams read together when measuring memory (default {DEFAULT.memory_batch})")
    parser.set_defaults(threads=1)


def plan_from_args(args: argparse.Namespace) -> Plan:
    return plan_from_flags(args, default=DEFAULT, quick=QUICK,
                           flags=("tokens", "generate_tokens", "repeats", "batch", "memory_batch"))


def run(args: argparse.Namespace) -> dict:
    started = environment(command=args.command)
    plan = plan_from_args(args)
    root = language_model.checkpoints_root(args)
    manifest, trained_here = read_manifest(root), False
    if manifest is None:
        logger.info("no language-model checkpoints in %s: training them first", root)
        lm_plan = language_model.plan_from_args(args)
        entries = [entry for entry in lm_plan.entries(vocab_size=256) if entry.key != "no-memory"]
        manifest = train_and_evaluate(entries, lm_plan.recipe, root=root, data=language_model.resolve_data(args),
                                      threads=args.threads or 1, seed=args.seed, cache_dir=language_model.cache_dir(args))
        trained_here = True
    records = {record["key"]: record for record in manifest["models"]}
    memformer = records["memformer"]
    txls = sorted((r for r in manifest["models"] if r["model"] == "transformer-xl"), key=lambda r: r["memory"])
    if not txls:
        raise ValueError(f"the manifest in {root} holds no Transformer-XL to compare with")
    matched = min(txls, key=lambda r: abs(_bpb(r) - _bpb(memformer)))
    measured = [memformer] + (txls if plan.all_txl else [matched])
    checkpoints = {r["key"]: str(checkpoint_of(root, r)) for r in measured}
    ids = stream_tokens(manifest["data"], checkpoint=checkpoints["memformer"], n=plan.tokens,
                        cache_dir=language_model.cache_dir(args))
    logger.info("matched Transformer-XL: %s (%.4f bits/byte against Memformer's %.4f)", matched["key"],
                _bpb(matched), _bpb(memformer))
    timing = measure_speed(checkpoints, ids, plan, threads=args.threads)
    memory = measure_memory(checkpoints, ids, plan, threads=args.threads)
    rows = [_row(record, timing[record["key"]], memory[record["key"]], matched=record["key"] == matched["key"])
            for record in measured]
    data = {
        "plan": dataclasses.asdict(plan),
        "checkpoints": str(root),
        "trained_here": trained_here,
        "data": manifest["data"],
        "training": {"recipe": manifest["recipe"], "threads": manifest["threads"]},
        "matched": matched["key"],
        "rows": rows,
        "comparison": compare(rows),
    }
    return report.save(args, name=NAME, title=TITLE, environment=started, data=data, figure=plot(rows, data),
                       markdown=markdown(data))


def _bpb(record: dict) -> float:
    return record["valid"]["bits_per_byte"]


def stream_tokens(data: str, *, checkpoint: str, n: int, cache_dir: Path) -> list[int]:
    """The first ``n`` tokens of the longest document of the valid split (continuing from the
    split's start if it is shorter), with the checkpoint's tokenizer: real text, the same for
    every model."""
    from ..data import DataSpec, tokenized_split

    corpus = tokenized_split(DataSpec(source=data), "valid", load_model(checkpoint).tokenizer, cache_dir=cache_dir)
    longest = int(np.argmax(corpus.doc_lengths))
    start = int(corpus.doc_offsets[longest])
    tokens = np.asarray(corpus.tokens, dtype=np.int64)
    ordered = np.concatenate([tokens[start:], tokens[:start]])
    if len(ordered) < n:
        raise ValueError(f"the valid split of {data} holds {len(ordered):,} tokens, fewer than --tokens {n:,}")
    return ordered[:n].tolist()


# ---------------------------------------------------------------------------- measuring


def measure_speed(checkpoints: dict[str, str], ids: list[int], plan: Plan, *, threads: int | None) -> dict[str, dict]:
    """Every model in its own process; their reads and generations interleaved, ``repeats`` rounds."""
    keys = list(checkpoints)
    with contextlib.ExitStack() as stack:
        processes = {key: stack.enter_context(FreshProcess()) for key in keys}
        opened = {key: processes[key].call(open_model, checkpoint=checkpoints[key], ids=ids, batch=plan.batch,
                                           threads=threads, warmup_generate=plan.warmup_generate) for key in keys}
        reads: dict[str, list[dict]] = {key: [] for key in keys}
        generations: dict[str, list[dict]] = {key: [] for key in keys}
        for _ in range(plan.repeats):
            for key in keys:
                reads[key].append(processes[key].call(time_read))
            for key in keys:
                generations[key].append(processes[key].call(time_generate, tokens=plan.generate_tokens))
    results = {}
    for key in keys:
        read_tokens, generate_tokens = plan.batch * len(ids), plan.batch * plan.generate_tokens
        results[key] = {**opened[key], "stream_bits_per_byte": reads[key][0]["bits_per_token"]}
        for what, runs_, tokens in (("read", reads[key], read_tokens), ("generate", generations[key], generate_tokens)):
            for clock in ("wall", "cpu"):
                seconds = [r[f"{clock}_seconds"] for r in runs_]
                results[key][f"{what}_{clock}_seconds"] = seconds
                suffix = "" if clock == "wall" else "_cpu"
                results[key][f"{what}_tokens_per_second{suffix}"] = tokens / statistics.median(seconds)
    return results


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Set environment variables for the processes started inside the block (spawned children
    inherit the environment at their start), then restore them."""
    before = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def measure_memory(checkpoints: dict[str, str], ids: list[int], plan: Plan, *, threads: int | None) -> dict[str, dict]:
    """Each model's peak memory in a fresh process of its own (glibc returning large frees)."""
    results = {}
    for key, checkpoint in checkpoints.items():
        with _environment(MALLOC_MMAP_THRESHOLD_=MMAP_THRESHOLD), FreshProcess() as process:
            results[key] = process.call(memory_point, checkpoint=checkpoint, ids=ids, batch=plan.memory_batch,
                                        threads=threads, generate_tokens=plan.generate_tokens,
                                        warmup_generate=plan.warmup_generate)
    return results


# ---------------------------------------------------------------------------- inside a model's process


@dataclasses.dataclass
class _Loaded:
    model: torch.nn.Module
    ids_BN: torch.Tensor
    state_after_read: Any
    generator: torch.Generator


_loaded: _Loaded | None = None


def _open(checkpoint: str, ids: list[int], batch: int, threads: int | None, warmup_generate: int) -> _Loaded:
    if threads is not None:
        torch.set_num_threads(threads)
    model = load_model(checkpoint).model.eval()
    ids_BN = torch.tensor(ids, dtype=torch.long).unsqueeze(0).expand(batch, -1).contiguous()
    generator = torch.Generator().manual_seed(0)
    # Warm-up: two segments read and a few tokens sampled, so first-call allocations, thread pools
    # and kernel choices are done before anything is measured.
    length = model.config.segment_len
    with torch.no_grad():
        state = _read(model, ids_BN[:, : 2 * length])[1]
        model.generate(ids_BN[:, :1], warmup_generate, state=state, generator=generator)
    return _Loaded(model=model, ids_BN=ids_BN, state_after_read=None, generator=generator)


def _read(model: torch.nn.Module, ids_BN: torch.Tensor) -> tuple[dict, Any, float]:
    """Stream ``ids_BN`` chunk by chunk (one segment each) from a fresh state. Returns the wall
    and CPU seconds spent in the model calls, the final state and the loss summed in nats over
    the tokens predicted (every one but the first)."""
    length = model.config.segment_len
    state = model.init_state(ids_BN.size(0))
    seconds, loss, previous_B1V = {"wall_seconds": 0.0, "cpu_seconds": 0.0}, 0.0, None
    with torch.no_grad():
        for start in range(0, ids_BN.size(1), length):
            chunk_BT = ids_BN[:, start:start + length]
            with Stopwatch() as watch:
                out = model(chunk_BT, state=state)
            seconds["cpu_seconds"] += watch.cpu
            seconds["wall_seconds"] += watch.wall
            state = out.state
            # forward's logits[:, i] predict token i + 1; the previous chunk's last one predicts token 0.
            logits_BTV = out.logits if previous_B1V is None else torch.cat([previous_B1V, out.logits], dim=1)
            targets_BT = chunk_BT[:, 1:] if previous_B1V is None else chunk_BT
            loss += float(F.cross_entropy(logits_BTV[:, :-1].flatten(0, 1), targets_BT.flatten(), reduction="sum"))
            previous_B1V = out.logits[:, -1:]
    return seconds, state, loss


def open_model(*, checkpoint: str, ids: list[int], batch: int, threads: int | None, warmup_generate: int) -> dict:
    """Load the model in this (timing) process and keep it, with the stream, in a global."""
    global _loaded
    _loaded = _open(checkpoint, ids, batch, threads, warmup_generate)
    model = _loaded.model
    return {"parameters": sum(p.numel() for p in model.parameters()), "threads": torch.get_num_threads(),
            "parameter_bytes": sum(p.numel() * p.element_size() for p in model.parameters())}


def time_read() -> dict:
    """One timed read of the whole stream from a fresh state; keeps the final state for generation."""
    loaded = _require_loaded()
    seconds, state, loss = _read(loaded.model, loaded.ids_BN)
    loaded.state_after_read = state
    predicted = loaded.ids_BN.numel() - loaded.ids_BN.size(0)
    return {**seconds, "bits_per_token": loss / LN2 / predicted}


def time_generate(*, tokens: int) -> dict:
    """Wall and CPU seconds to sample ``tokens`` tokens per row after the stream (the time of
    reading the one-token prompt subtracted)."""
    loaded = _require_loaded()
    return generation_seconds(loaded.model, loaded.ids_BN[:, -1:], tokens, state=loaded.state_after_read,
                              generator=loaded.generator)


def memory_point(*, checkpoint: str, ids: list[int], batch: int, threads: int | None, generate_tokens: int,
                 warmup_generate: int) -> dict:
    """Peak RSS above the warmed-up model while reading the stream, then while generating."""
    loaded = _open(checkpoint, ids, batch, threads, warmup_generate)
    model = loaded.model
    gc.collect()
    start_peak = peak_rss_bytes()
    baseline = current_rss_bytes()
    reset = reset_peak_rss()
    _, state, _ = _read(model, loaded.ids_BN)
    read_peak = peak_rss_bytes()
    gc.collect()
    reset_peak_rss()
    generate_baseline = current_rss_bytes()
    with torch.no_grad():
        model.generate(loaded.ids_BN[:, -1:], generate_tokens, state=state, generator=loaded.generator)
    generate_peak = peak_rss_bytes()
    return {
        "state_bytes_per_row": state.num_bytes() // batch,
        "baseline_rss_bytes": baseline,
        "peak_rss_reset": reset,
        "start_peak_rss_bytes": start_peak,
        "read_peak_rss_bytes": read_peak,
        "read_peak_growth_bytes": max(read_peak - baseline, 0),
        "generate_peak_growth_bytes": max(generate_peak - generate_baseline, 0),
        "process_peak_rss_bytes": max(read_peak, generate_peak),
    }


def _require_loaded() -> _Loaded:
    assert _loaded is not None, "open_model must run first in this process"
    return _loaded


# ---------------------------------------------------------------------------- summary and report


def _row(record: dict, timing: dict, memory: dict, *, matched: bool) -> dict:
    return {
        "key": record["key"], "label": record["label"], "model": record["model"], "memory": record["memory"],
        "matched": matched, "parameters": record["parameters"], "valid_bits_per_byte": _bpb(record),
        "train_steps": record["steps"], "checkpoint": record["checkpoint"], **timing, **memory,
    }


def _ratios(memformer: dict, other: dict) -> dict:
    """Other / Memformer for sizes, Memformer / other for speeds: > 1 means Memformer is better."""
    return {
        "state": other["state_bytes_per_row"] / memformer["state_bytes_per_row"],
        "read_peak_growth": _safe_ratio(other["read_peak_growth_bytes"], memformer["read_peak_growth_bytes"]),
        "generate_peak_growth": _safe_ratio(other["generate_peak_growth_bytes"], memformer["generate_peak_growth_bytes"]),
        "process_peak": other["process_peak_rss_bytes"] / memformer["process_peak_rss_bytes"],
        # Speeds from CPU time (the work, on one thread); the wall-clock ones beside them.
        "read_speed": memformer["read_tokens_per_second_cpu"] / other["read_tokens_per_second_cpu"],
        "generate_speed": memformer["generate_tokens_per_second_cpu"] / other["generate_tokens_per_second_cpu"],
        "read_speed_wall": memformer["read_tokens_per_second"] / other["read_tokens_per_second"],
        "generate_speed_wall": memformer["generate_tokens_per_second"] / other["generate_tokens_per_second"],
        "bits_per_byte_difference": other["valid_bits_per_byte"] - memformer["valid_bits_per_byte"],
    }


def _safe_ratio(numerator: float, denominator: float) -> float | None:
    return None if denominator <= 0 else numerator / denominator


def compare(rows: list[dict]) -> dict:
    memformer = rows[0]
    matched = next(row for row in rows if row["matched"])
    ratios = _ratios(memformer, matched)
    memory_ratio = ratios["read_peak_growth"]
    return {
        "matched": matched["key"],
        "ratios_matched": ratios,
        "ratios_by_model": {row["key"]: _ratios(memformer, row) for row in rows[1:]},
        "memory_target": TARGET_MEMORY_RATIO,
        "speed_target": TARGET_SPEEDUP,
        "memory_target_met": memory_ratio is not None and memory_ratio >= TARGET_MEMORY_RATIO,
        "state_target_met": ratios["state"] >= TARGET_MEMORY_RATIO,
        "speed_target_met": ratios["read_speed"] >= TARGET_SPEEDUP,
        "generate_speed_target_met": ratios["generate_speed"] >= TARGET_SPEEDUP,
    }


def markdown(data: dict) -> str:
    rows, comparison, plan = data["rows"], data["comparison"], data["plan"]
    rows_text = f"{plan['memory_batch']} streams"
    header = ["model", "valid bits/byte", "stream bits/byte", "state per stream", f"read peak +, {rows_text}",
              f"generate peak +, {rows_text}", "process peak RSS", "read tokens/s (CPU / wall)",
              "generate tokens/s (CPU / wall)"]
    table = []
    for row in rows:
        label = f"**{row['label']}** (matched)" if row["matched"] else row["label"]
        table.append([label, f"{row['valid_bits_per_byte']:.4f}", f"{row['stream_bits_per_byte']:.4f}",
                      report.format_bytes(row["state_bytes_per_row"]), report.format_bytes(row["read_peak_growth_bytes"]),
                      report.format_bytes(row["generate_peak_growth_bytes"]),
                      report.format_bytes(row["process_peak_rss_bytes"]),
                      f"{row['read_tokens_per_second_cpu']:,.0f} / {row['read_tokens_per_second']:,.0f}",
                      f"{row['generate_tokens_per_second_cpu']:,.0f} / {row['generate_tokens_per_second']:,.0f}"])
    ratio_header = ["Transformer-XL", "bits/byte vs Memformer", "state", "read peak +", "generate peak +",
                    "process peak", "read speed (CPU / wall)", "generate speed (CPU / wall)"]
    ratio_rows = []
    for row in rows[1:]:
        r = comparison["ratios_by_model"][row["key"]]
        name = f"**{row['label']}** (matched)" if row["matched"] else row["label"]
        ratio_rows.append([name, f"{r['bits_per_byte_difference']:+.4f}", report.format_ratio(r["state"]),
                           report.format_ratio(r["read_peak_growth"]), report.format_ratio(r["generate_peak_growth"]),
                           report.format_ratio(r["process_peak"]),
                           f"{report.format_ratio(r['read_speed'])} / {report.format_ratio(r['read_speed_wall'])}",
                           f"{report.format_ratio(r['generate_speed'])} / "
                           f"{report.format_ratio(r['generate_speed_wall'])}"])
    m = comparison["ratios_matched"]
    matched = next(row for row in rows if row["matched"])

    def verdict(met: bool) -> str:
        return "met" if met else "missed"

    source = "trained by this run" if data["trained_here"] else "its checkpoints"
    lines = [
        f"Models of `memformer bench language-model` ({source}, `{data['checkpoints']}`): equal parameter count, "
        f"equal training time, data `{data['data']}`. Streamed: the first {plan['tokens']:,} tokens (bytes) of the "
        f"longest valid document, batch {plan['batch']}, one torch thread, chunks of one segment with logits for "
        f"every token (**read**), then {plan['generate_tokens']} tokens sampled (**generate**); medians of "
        f"{plan['repeats']} interleaved runs. Memory: the same, {plan['memory_batch']} streams at once, in a fresh "
        "process per model (MALLOC_MMAP_THRESHOLD_=65536); peak + = peak RSS above the loaded, warmed-up model; "
        "process peak RSS includes Python, torch and the weights. Tokens/s from the process's CPU time (the work, "
        "on one thread) and from wall time (which other jobs on the shared machine stretch). Stream bits/byte: "
        "the models' loss on the streamed text.",
        "",
        report.markdown_table(header, table),
        "",
        "Ratios, Transformer-XL over Memformer (memory) and Memformer over Transformer-XL (speed): above 1x Memformer "
        "is cheaper / faster.",
        "",
        report.markdown_table(ratio_header, ratio_rows),
        "",
        f"**Against the abstract** (8.1x less memory, 3.2x faster inference) at matched quality: the Transformer-XL "
        f"closest to Memformer's {rows[0]['valid_bits_per_byte']:.4f} bits/byte is {matched['label']} "
        f"({matched['valid_bits_per_byte']:.4f}, {m['bits_per_byte_difference']:+.4f}).",
        f"- Memory: its state is {report.format_ratio(m['state'])} Memformer's ({verdict(comparison['state_target_met'])} "
        f"against 8.1x); its inference working memory (read peak +) {report.format_ratio(m['read_peak_growth'])} "
        f"({verdict(comparison['memory_target_met'])}); the whole process peak {report.format_ratio(m['process_peak'])}.",
        f"- Speed (CPU time): Memformer reads {report.format_ratio(m['read_speed'])} and generates "
        f"{report.format_ratio(m['generate_speed'])} as fast ({verdict(comparison['speed_target_met'])} / "
        f"{verdict(comparison['generate_speed_target_met'])} against 3.2x); in wall time "
        f"{report.format_ratio(m['read_speed_wall'])} and {report.format_ratio(m['generate_speed_wall'])}.",
    ]
    return "\n".join(lines)


def plot(rows: list[dict], data: dict):
    plt = report.pyplot()

    fig, (bpb_ax, speed_ax, memory_ax) = plt.subplots(1, 3, figsize=(15, 4.2))
    txl = [row for row in rows if row["model"] == "transformer-xl"]
    memformer = rows[0]
    bpb_ax.plot([r["memory"] for r in txl], [r["valid_bits_per_byte"] for r in txl], "o-", color="tab:red",
                label="Transformer-XL")
    bpb_ax.axhline(memformer["valid_bits_per_byte"], color="tab:green", label=memformer["label"])
    for row in txl:
        if row["matched"]:
            bpb_ax.scatter([row["memory"]], [row["valid_bits_per_byte"]], s=160, facecolors="none",
                           edgecolors="black", label="matched")
    if len(txl) > 1:
        report.log2_axis(bpb_ax, [r["memory"] for r in txl])
    bpb_ax.set(xlabel="Transformer-XL mem_len", ylabel="valid bits per byte", title="quality (lower is better)")
    bpb_ax.legend(fontsize=7)
    bpb_ax.grid(alpha=0.3)

    labels = [("Memformer" if row["model"] == "memformer" else f"TXL {row['memory']}") + (" *" if row["matched"] else "")
              for row in rows]
    x = np.arange(len(rows))
    speed_ax.bar(x - 0.2, [row["read_tokens_per_second_cpu"] for row in rows], 0.4, label="read (scoring)",
                 color="tab:blue")
    speed_ax.bar(x + 0.2, [row["generate_tokens_per_second_cpu"] for row in rows], 0.4, label="generate (sampling)",
                 color="tab:orange")
    speed_ax.set_xticks(x, labels, fontsize=8)
    speed_ax.set(yscale="log", ylabel="tokens per CPU second (batch 1, 1 thread)", title="speed (* = matched)")
    speed_ax.legend(fontsize=7)
    speed_ax.grid(alpha=0.3, axis="y")

    series = {"state per stream": "state_bytes_per_row", "read peak +": "read_peak_growth_bytes",
              "generate peak +": "generate_peak_growth_bytes"}
    positive = [row[key] for row in rows for key in series.values() if row[key] > 0]
    floor = min(positive) / 4 / 2**10 if positive else 1.0
    for offset, (label, key) in zip((-0.27, 0.0, 0.27), series.items()):
        kib = [row[key] / 2**10 for row in rows]
        memory_ax.bar(x + offset, [value if value > 0 else float("nan") for value in kib], 0.27, label=label)
        for position, value in zip(x + offset, kib):
            if value <= 0:  # below what RSS resolves (no page grew): say so instead of drawing a bar
                memory_ax.text(position, floor * 1.3, "0", ha="center", fontsize=7)
    memory_ax.set_xticks(x, labels, fontsize=8)
    memory_ax.set(yscale="log", ylim=(floor, None), ylabel="KiB", title="memory beyond the weights")
    memory_ax.legend(fontsize=7)
    memory_ax.grid(alpha=0.3, axis="y", which="both")
    fig.tight_layout()
    return fig
