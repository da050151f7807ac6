"""Hugging Face ``generate`` (on a ``MemformerCache``) against the native generator, per token.

Batch 1, greedy, the model of ``benchmarks/generation.py`` (d_model 256, 8 heads, 4 + 4 layers,
32 slots, segments of 64, byte vocabulary), a 16-token prompt. For each length (200 and 2,000 new
tokens) we time ``model.generate(..., do_sample=False)`` and ``model.stream_generate(...,
temperature=0)`` alternately, ``--repeats`` times each, and report the median ms per new token.
Both include the prompt; the two must give the same tokens (checked). Targets: HF within 1.5x of
native, and flat in the number of tokens (linear total time). ``--reference`` also times
``generate(use_cache=False)``, which re-reads the whole sequence each step (quadratic), at 200.

    OMP_NUM_THREADS=1 python benchmarks/hf_generate.py --threads 1   # writes results/hf_generate.{json,png}
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from common import RESULTS, environment, pyplot, write_json
from torch_memformer import Memformer, MemformerConfig
from torch_memformer.integrations.hf import from_native

LENGTHS = (200, 2000)


def build(seed: int) -> Memformer:
    torch.manual_seed(seed)
    config = MemformerConfig(vocab_size=256, d_model=256, num_heads=8, d_ff=1024, num_encoder_layers=4,
                             num_decoder_layers=4, num_slots=32, segment_len=64)
    return Memformer(config).eval()


def timed(fn) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    tokens = fn()
    return time.perf_counter() - start, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--reference", action="store_true", help="also time generate(use_cache=False) at 200")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = from_native(build(args.seed))
    prompt = torch.randint(0, 256, (1, 16), generator=torch.Generator().manual_seed(args.seed))

    def hf(n: int, use_cache: bool = True) -> torch.Tensor:
        return model.generate(prompt, max_new_tokens=n, do_sample=False, use_cache=use_cache)[:, prompt.size(1):]

    def native(n: int) -> torch.Tensor:
        return model.stream_generate(prompt, n, temperature=0).tokens

    hf(64), native(64)  # warm-up: first calls allocate and pick kernels
    rows = []
    for n in LENGTHS:
        hf_times, native_times = [], []
        for _ in range(args.repeats):
            seconds, hf_tokens = timed(lambda: hf(n))
            hf_times.append(seconds)
            seconds, native_tokens = timed(lambda: native(n))
            native_times.append(seconds)
        if not torch.equal(hf_tokens, native_tokens):
            raise SystemExit(f"HF and native greedy tokens differ at {n} new tokens")
        row = {
            "new_tokens": n,
            "hf_ms_per_token": 1e3 * statistics.median(hf_times) / n,
            "native_ms_per_token": 1e3 * statistics.median(native_times) / n,
            "hf_seconds": hf_times,
            "native_seconds": native_times,
        }
        row["ratio"] = row["hf_ms_per_token"] / row["native_ms_per_token"]
        rows.append(row)
        print(f"{n:>5} new tokens: HF {row['hf_ms_per_token']:.3f} ms/token, native {row['native_ms_per_token']:.3f} "
              f"ms/token, ratio {row['ratio']:.2f}")
    reference = None
    if args.reference:
        seconds, tokens = timed(lambda: hf(LENGTHS[0], use_cache=False))
        assert torch.equal(tokens, native(LENGTHS[0])), "the uncached reference differs from the native tokens"
        reference = {"new_tokens": LENGTHS[0], "ms_per_token": 1e3 * seconds / LENGTHS[0]}
        print(f"{LENGTHS[0]:>5} new tokens, generate(use_cache=False): {reference['ms_per_token']:.3f} ms/token")
    summary = {
        "max_ratio": max(r["ratio"] for r in rows),
        "hf_growth": rows[-1]["hf_ms_per_token"] / rows[0]["hf_ms_per_token"] - 1,
    }
    print(f"HF / native at most {summary['max_ratio']:.2f}x (target <= 1.5); HF ms/token from {LENGTHS[0]} to "
          f"{LENGTHS[-1]} tokens {100 * summary['hf_growth']:+.1f}% (flat = linear total time)")
    write_json("hf_generate", {"environment": environment(), "repeats": args.repeats, "prompt_tokens": prompt.size(1),
                               "rows": rows, "uncached_reference": reference, "summary": summary})
    plot(rows, reference, RESULTS / "hf_generate.png")


def plot(rows: list[dict], reference: dict | None, path) -> None:
    plt = pyplot()

    lengths = [r["new_tokens"] for r in rows]
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    ax.plot(lengths, [r["hf_ms_per_token"] for r in rows], "o-", label="HF generate (MemformerCache)")
    ax.plot(lengths, [r["native_ms_per_token"] for r in rows], "s--", label="native stream_generate")
    if reference is not None:
        ax.plot([reference["new_tokens"]], [reference["ms_per_token"]], "x", color="gray",
                label="HF generate(use_cache=False)")
    ax.set_xscale("log")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("new tokens per call (batch 1, greedy)")
    ax.set_ylabel("ms per new token")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
