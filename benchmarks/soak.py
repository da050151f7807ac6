"""Soak: does a long stream leak? Process RSS and time per token over 1M+ tokens through the
``memformer eval`` code path, and over a long ``memformer generate`` stream (issue 13).

Model: the quickstart preset's Memformer (d_model 128, 4 heads, 2 + 2 layers, 16 slots... as
``presets.py`` says), freshly initialised: RSS and speed do not depend on what it learned.

* eval: ``evaluate`` (what ``memformer eval`` runs) over ``--eval-tokens`` bytes of this
  Python's standard library sources, batch 1, memory carried, sampled through its progress
  callback every ``--every`` batches.
* generate: ``generate_text`` (what ``memformer generate`` runs) called again and again on the
  state the last call returned (what ``--state-in``/``--state-out`` chain), ``--chunk`` new tokens
  a call, ``--generate-tokens`` in all; RSS and time per token after each call.

Flat means: after the first tenth (warm-up: allocator pools, kernels picked), RSS varies by less
than 5%, and the median CPU time per token of the last quarter is within 10% of the second
quarter's (``summarise`` says why CPU time, not only the wall clock, on a shared machine).

    OMP_NUM_THREADS=1 python benchmarks/soak.py          # writes results/soak.{json,png}
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time

import torch

from common import RESULTS, current_rss_bytes, environment, peak_rss_bytes, pyplot, write_json
from torch_memformer import Memformer, MemformerConfig
from torch_memformer.data import ByteTokenizer, TokenizedCorpus, stdlib_files
from torch_memformer.data.corpora import stdlib_root
from torch_memformer.evaluate import evaluate
from torch_memformer.generate import generate_text
from torch_memformer.training.presets import PRESETS


def build(seed: int) -> Memformer:
    torch.manual_seed(seed)
    return Memformer(MemformerConfig(vocab_size=256, **PRESETS["quickstart"]["models"]["memformer"])).eval()


def stdlib_bytes(count: int) -> TokenizedCorpus:
    """The first ``count`` bytes of the standard library's sources (in sorted file order), one
    document: a real text stream, the same on every run of the same Python."""
    root, chunks, total = stdlib_root(), [], 0
    for rel in stdlib_files():
        data = (root / rel).read_bytes()
        chunks.append(data[: count - total])
        total += len(chunks[-1])
        if total >= count:
            break
    return TokenizedCorpus.from_documents([list(b"".join(chunks))], vocab_size=256, name="stdlib bytes")


def soak_eval(model: Memformer, tokens: int, every: int) -> list[dict]:
    corpus = stdlib_bytes(tokens)
    samples: list[dict] = []
    start, cpu_start = time.perf_counter(), time.process_time()
    per_batch = 8 * model.config.segment_len  # evaluate's segments_per_batch x L, batch 1

    def progress(done: int, total: int) -> None:
        if done % every == 0 or done == total:
            samples.append({"tokens": min(done * per_batch, tokens), "seconds": time.perf_counter() - start,
                            "cpu_seconds": time.process_time() - cpu_start, "rss_bytes": current_rss_bytes()})

    result = evaluate(model, corpus, batch_size=1, progress=progress)
    print(f"eval: {result.num_targets:,} tokens, {result.bits_per_byte:.3f} bits/byte (untrained), "
          f"{result.tokens_per_second:,.0f} tokens/s", file=sys.stderr)
    return samples


def soak_generate(model: Memformer, tokens: int, chunk: int, seed: int) -> list[dict]:
    tokenizer, state, done, samples = ByteTokenizer(), None, 0, []
    start, cpu_start = time.perf_counter(), time.process_time()
    while done < tokens:
        pieces = generate_text(model, tokenizer, " ", max_new_tokens=chunk, temperature=1.0, seed=seed + done,
                               state=state)
        while True:
            try:
                next(pieces)
            except StopIteration as stop:  # the generator returns the state after the last token
                state = stop.value
                break
        done += chunk
        samples.append({"tokens": done, "seconds": time.perf_counter() - start,
                        "cpu_seconds": time.process_time() - cpu_start, "rss_bytes": current_rss_bytes()})
    return samples


def summarise(samples: list[dict]) -> dict:
    """RSS spread after warm-up, and the median time per token by quarter of the run.

    Time per token both by the wall clock and in this process's CPU time: on a machine shared
    with other jobs the wall clock moves with their load (we measured one run slow down 1.5x in
    its last quarter as a job started), while the CPU time of the one thread is the work per
    token itself, which is what grows if the state or a cache grows."""
    previous = {"tokens": 0, "seconds": 0.0, "cpu_seconds": 0.0}
    for sample in samples:
        tokens = max(1, sample["tokens"] - previous["tokens"])
        sample["us_per_token"] = 1e6 * (sample["seconds"] - previous["seconds"]) / tokens
        sample["cpu_us_per_token"] = 1e6 * (sample["cpu_seconds"] - previous["cpu_seconds"]) / tokens
        previous = sample
    warm = samples[len(samples) // 10:]
    rss = [s["rss_bytes"] for s in warm]
    size = max(1, len(samples) // 4)
    quarters = [samples[i * size: (i + 1) * size] for i in range(4)]
    wall = [statistics.median(s["us_per_token"] for s in q) for q in quarters]
    cpu = [statistics.median(s["cpu_us_per_token"] for s in q) for q in quarters]
    return {"tokens": samples[-1]["tokens"], "seconds": samples[-1]["seconds"],
            "rss_mib_after_warmup_min": min(rss) / 2**20, "rss_mib_after_warmup_max": max(rss) / 2**20,
            "rss_spread_after_warmup": (max(rss) - min(rss)) / min(rss),
            "rss_mib_first_sample": samples[0]["rss_bytes"] / 2**20,
            "us_per_token_median_by_quarter": wall, "cpu_us_per_token_median_by_quarter": cpu,
            "cpu_time_last_to_second_quarter": cpu[3] / cpu[1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--eval-tokens", type=int, default=1_048_576)
    parser.add_argument("--every", type=int, default=16, help="eval batches (of 512 tokens) between samples")
    parser.add_argument("--generate-tokens", type=int, default=131_072)
    parser.add_argument("--chunk", type=int, default=1024, help="new tokens per generate call")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot-only", action="store_true", help="redraw results/soak.png from results/soak.json")
    args = parser.parse_args()
    if args.plot_only:
        saved = json.loads((RESULTS / "soak.json").read_text())
        plot({name: saved[name] for name in ("eval", "generate")}, RESULTS / "soak.png")
        return
    torch.set_num_threads(1)  # the soak's numbers are one thread's (docs/results.md)
    model = build(args.seed)
    runs = {}
    for name, run in (("eval", lambda: soak_eval(model, args.eval_tokens, args.every)),
                      ("generate", lambda: soak_generate(model, args.generate_tokens, args.chunk, args.seed))):
        gc.collect()
        samples = run()
        runs[name] = {"summary": summarise(samples), "samples": samples}
        print(name, runs[name]["summary"], file=sys.stderr)
    write_json("soak", {"environment": environment(), "command": " ".join(sys.argv), "threads": 1,
                        "model": model.config.to_dict(), "peak_rss_bytes": peak_rss_bytes(), **runs})
    plot(runs, RESULTS / "soak.png")


def plot(runs: dict, path) -> None:
    plt = pyplot()

    fig, axes = plt.subplots(2, 2, figsize=(10, 6), sharex="col")
    for column, (name, run) in enumerate(runs.items()):
        samples = run["samples"]
        tokens = [s["tokens"] for s in samples]
        rss_mib = [s["rss_bytes"] / 2**20 for s in samples]
        axes[0, column].plot(tokens, rss_mib)
        axes[0, column].set_ylabel("RSS (MiB)")
        axes[0, column].set_ylim(0, 1.2 * max(rss_mib))  # from 0: a flat line reads as flat
        axes[0, column].set_title(f"memformer {name}: {tokens[-1]:,} tokens, one thread")
        axes[1, column].plot(tokens, [s["us_per_token"] for s in samples], label="wall clock")
        axes[1, column].plot(tokens, [s["cpu_us_per_token"] for s in samples], label="CPU time (this process)")
        axes[1, column].set_ylabel("µs per token")
        axes[1, column].legend(loc="lower right")
        axes[1, column].set_ylim(bottom=0)
        axes[1, column].set_xlabel("tokens streamed")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
