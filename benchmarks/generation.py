"""Generation speed and memory against stream position: Memformer's per-token cost must not grow.

Default: batch 1, d_model 256, 8 heads, 4 + 4 layers, 32 slots, segments of 64, byte vocabulary.
At each stream position (~1k, ~16k, ~256k tokens) we time ``--tokens`` newly generated tokens (after
a short warm-up) and read the process's memory. Between the measured windows the stream is carried
forward with ``model.advance`` over random bytes (encoder + writer per segment, exactly the state
generation would have reached; it only saves the wall-clock time of sampling 256k tokens one by one).

``--baselines xtransformers_xl,project_xl`` also times x-transformers' cached Transformer-XL
decoder and this project's Transformer-XL (``xl_baseline.py``: same width, heads, FFN and
vocabulary, 8 layers by default, a parameter count within 2% of Memformer's) in the same run:
each repeat times one window of every model, the order rotating, so the ratios are measured side
by side under the same load. An XL's cost does not depend on the stream position (its memory is
always one segment), so it is timed beside Memformer at each position. x-transformers is
optional: without it that baseline is skipped with a message.

``ms_per_token`` is wall time per generated token over all rows (a step of batch B yields B
tokens); ``tokens_per_second`` is its inverse. On CUDA every window is bracketed by
``torch.cuda.synchronize()``.

    python benchmarks/generation.py --threads 1        # batch 1, writes results/generation.{json,png}
    python benchmarks/generation.py --threads 1 --batch 32 --positions 1024 --baselines xtransformers_xl,project_xl \
        --name generation_batch32
    python benchmarks/generation.py --size tiny --positions 16 --tokens 8 --repeats 1 --out DIR   # smoke
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

import xl_baseline
from common import RESULTS, current_rss_bytes, environment, peak_rss_bytes, pyplot, synchronize, write_json
from torch_memformer import Memformer, MemformerConfig

SIZES = {
    "default": dict(vocab_size=256, d_model=256, num_heads=8, d_ff=1024, num_encoder_layers=4,
                    num_decoder_layers=4, num_slots=32, segment_len=64),
    "tiny": dict(vocab_size=256, d_model=32, num_heads=2, d_ff=64, num_encoder_layers=1,
                 num_decoder_layers=1, num_slots=4, segment_len=8),
}


def build(size: str, device: torch.device, seed: int) -> Memformer:
    torch.manual_seed(seed)
    return Memformer(MemformerConfig(**SIZES[size])).to(device).eval()


def advance_to(model: Memformer, state, position: int, target: int, generator: torch.Generator):
    """Carry the stream from ``position`` to ``target`` over random tokens (no sampling)."""
    chunk = 64 * model.config.segment_len
    batch, device = state.batch_size, state.memory.device
    with torch.no_grad():
        while position < target:
            n = min(chunk, target - position)
            ids = torch.randint(0, model.config.vocab_size, (batch, n), generator=generator).to(device)
            state = model.advance(ids, state=state)
            position += n
    return state, position


def timed(generate, device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    generate()
    synchronize(device)
    return time.perf_counter() - start


def measure_position(model: Memformer, state, baselines: dict, args, device: torch.device,
                     sampling: torch.Generator) -> dict:
    """``args.repeats`` windows of Memformer and of each baseline from ``state``, order rotating."""
    prompt_B1 = torch.randint(0, model.config.vocab_size, (args.batch, 1), device=device, generator=sampling)
    runs = {"memformer": lambda: model.generate(prompt_B1, args.tokens, state=state, temperature=1.0, generator=sampling)}
    for name, baseline in baselines.items():
        runs[name] = lambda baseline=baseline: baseline_generate(baseline, prompt_B1, args.tokens, sampling)
    seconds = {name: [] for name in runs}
    for repeat in range(args.repeats):
        names = list(runs)
        for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
            seconds[name].append(timed(runs[name], device))
    tokens = args.batch * args.tokens
    row = {"ms_per_token": 1e3 * statistics.median(seconds["memformer"]) / tokens,
           "ms_per_token_windows": [1e3 * s / tokens for s in seconds["memformer"]],
           "tokens_per_second": tokens / statistics.median(seconds["memformer"])}
    for name in baselines:
        row[f"{name}_ms_per_token"] = 1e3 * statistics.median(seconds[name]) / tokens
        row[f"{name}_tokens_per_second"] = tokens / statistics.median(seconds[name])
        # Per repeat, the baseline's time over Memformer's: their windows ran in the same round.
        row[f"memformer_speedup_vs_{name}"] = statistics.median(b / m for b, m in zip(seconds[name], seconds["memformer"]))
    return row


def baseline_generate(baseline, prompt_B1: torch.Tensor, tokens: int, sampling: torch.Generator) -> torch.Tensor:
    if isinstance(baseline, xl_baseline.ProjectXL):
        return baseline.generate(prompt_B1, tokens, sampling)
    return baseline.generate(prompt_B1, tokens)  # x-transformers samples from torch's global generator


def load_baselines(args, config: MemformerConfig, device: torch.device) -> tuple[dict, dict]:
    """The baselines asked for, built; and what the record says of each (or why it was skipped)."""
    baselines, notes = {}, {}
    common = dict(depth=args.xl_depth, batch=args.batch, device=device, seed=args.seed)
    for name in args.baselines:
        if name == "project_xl":
            baselines[name] = xl_baseline.ProjectXL.build(config, **common)
        else:
            module = xl_baseline.load()
            if module is None:
                print(xl_baseline.MISSING, flush=True)
                notes[name] = {"skipped": xl_baseline.MISSING}
                continue
            baselines[name] = xl_baseline.XLBaseline.build(module, config, **common)
            notes[name] = {"x_transformers": _version("x-transformers")}
        notes.setdefault(name, {}).update(depth=args.xl_depth, parameters=baselines[name].parameters)
    return baselines, notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=512, help="tokens generated per row per timed window")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1, help="streams generated at once")
    parser.add_argument("--positions", type=lambda s: [int(p) for p in s.split(",")], default=[1024, 16384, 262144],
                        help="comma-separated stream positions to time at")
    parser.add_argument("--baselines", type=lambda s: [b for b in s.split(",") if b], default=[],
                        help="comma-separated, of xtransformers_xl (optional package) and project_xl: "
                             "also time these, side by side")
    parser.add_argument("--xl-depth", type=int, default=8, help="the XL baseline's layers (8: parameters within 2%%)")
    parser.add_argument("--size", choices=sorted(SIZES), default="default", help="the benchmark's model or a tiny one")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for <name>.{json,png}")
    parser.add_argument("--name", default="generation")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("generation.py: --device cuda but torch.cuda.is_available() is False")
    device = torch.device(args.device)
    load_at_start = os.getloadavg()
    model = build(args.size, device, args.seed)
    unknown = set(args.baselines) - {"xtransformers_xl", "project_xl"}
    if unknown:
        raise SystemExit(f"generation.py: unknown baselines {sorted(unknown)} (xtransformers_xl, project_xl)")
    baselines, notes = load_baselines(args, model.config, device)
    generator = torch.Generator().manual_seed(args.seed)  # the advanced-over tokens (CPU, then moved)
    sampling = torch.Generator(device=device).manual_seed(args.seed)
    state, position = model.init_state(args.batch, device=device), 0
    # Warm-up: first calls allocate and pick kernels; one segment end is crossed.
    warm_prompt = torch.zeros(args.batch, 1, dtype=torch.long, device=device)
    warm_tokens = model.config.segment_len + 2
    model.generate(warm_prompt, warm_tokens, state=state, generator=sampling)
    for baseline in baselines.values():
        baseline_generate(baseline, warm_prompt, warm_tokens, sampling)
    rows = []
    for target in args.positions:
        state, position = advance_to(model, state, position, target, generator)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        row = {"position": position, **measure_position(model, state, baselines, args, device, sampling),
               "rss_bytes": current_rss_bytes(), "peak_rss_bytes": peak_rss_bytes(), "state_bytes": state.num_bytes()}
        if device.type == "cuda":
            row["cuda_max_allocated_bytes"] = torch.cuda.max_memory_allocated(device)
        rows.append(row)
        text = f"position {position:>7}: {row['ms_per_token']:.4f} ms/token ({row['tokens_per_second']:,.0f} tokens/s)"
        for name in baselines:
            text += (f", {name} {row[f'{name}_ms_per_token']:.4f} ms/token "
                     f"(Memformer {row[f'memformer_speedup_vs_{name}']:.2f}x its speed)")
        print(text + f", peak RSS {row['peak_rss_bytes'] / 2**20:.1f} MiB, state {row['state_bytes']:,} B", flush=True)
    times = [r["ms_per_token"] for r in rows]
    peaks = [r["peak_rss_bytes"] for r in rows]
    summary = {
        "max_ms_per_token": max(times),
        "time_spread": max(times) / min(times) - 1,
        "peak_memory_spread": max(peaks) / min(peaks) - 1,
    }
    print(f"slowest {summary['max_ms_per_token']:.4f} ms/token, time spread {100 * summary['time_spread']:.1f}%, "
          f"peak memory spread {100 * summary['peak_memory_spread']:.2f}%")
    env = environment()
    env["load_average_at_start"], env["load_average_at_end"] = load_at_start, os.getloadavg()
    record = {"environment": env, "device": str(device), "size": args.size, "batch": args.batch,
              "tokens_per_window": args.tokens, "repeats": args.repeats, "rows": rows, "summary": summary}
    if notes:
        record["baselines"] = notes
        record["memformer_parameters"] = sum(p.numel() for p in model.parameters())
    write_json(args.name, record, args.out)
    plot(record, args.out / f"{args.name}.png")


def _version(distribution: str) -> str:
    from importlib.metadata import version

    return version(distribution)


def plot(record: dict, path) -> None:
    plt = pyplot()

    rows = record["rows"]
    positions = [r["position"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    left.plot(positions, [r["tokens_per_second"] for r in rows], "o-", label="Memformer")
    for name, note in record.get("baselines", {}).items():
        if "skipped" not in note:
            left.plot(positions, [r[f"{name}_tokens_per_second"] for r in rows], "s--",
                      label=f"{name} ({note['depth']} layers, cached)")
    left.set_xscale("log")
    left.set_ylim(bottom=0)
    left.set_xlabel("stream position (tokens)")
    left.set_ylabel(f"generated tokens / s (batch {record['batch']}, {record['device']})")
    left.legend()
    right.plot(positions, [r["peak_rss_bytes"] / 2**20 for r in rows], "o-", label="peak RSS")
    right.plot(positions, [r["rss_bytes"] / 2**20 for r in rows], "s--", label="RSS")
    right.set_xscale("log")
    right.set_ylim(bottom=0)
    right.set_xlabel("stream position (tokens)")
    right.set_ylabel("process memory (MiB)")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
