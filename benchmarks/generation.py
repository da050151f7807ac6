"""Generation speed and memory against stream position: Memformer's per-token cost must not grow.

Batch 1, d_model 256, 8 heads, 4 + 4 layers, 32 slots, segments of 64, byte vocabulary. At each
stream position (~1k, ~16k, ~256k tokens) we time ``--tokens`` newly generated tokens (after a
short warm-up) and read the process's memory. Between the measured windows the stream is carried
forward with ``model.advance`` over random bytes (encoder + writer per segment, exactly the state
generation would have reached; it only saves the wall-clock time of sampling 256k tokens one by one).

    python benchmarks/generation.py           # writes results/generation.{json,png}
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from common import RESULTS, current_rss_bytes, environment, peak_rss_bytes, pyplot, write_json
from torch_memformer import Memformer, MemformerConfig

POSITIONS = (1024, 16384, 262144)


def build(seed: int) -> Memformer:
    torch.manual_seed(seed)
    config = MemformerConfig(vocab_size=256, d_model=256, num_heads=8, d_ff=1024, num_encoder_layers=4,
                             num_decoder_layers=4, num_slots=32, segment_len=64)
    return Memformer(config).eval()


def advance_to(model: Memformer, state, position: int, target: int, generator: torch.Generator):
    chunk = 64 * 64
    with torch.no_grad():
        while position < target:
            n = min(chunk, target - position)
            state = model.advance(torch.randint(0, 256, (1, n), generator=generator), state=state)
            position += n
    return state, position


def measure_window(model: Memformer, state, tokens: int, repeats: int, generator: torch.Generator):
    """Median over ``repeats`` of the per-token time of generating ``tokens`` tokens."""
    per_token = []
    prompt = torch.randint(0, 256, (1, 1), generator=generator)
    for _ in range(repeats):
        start = time.perf_counter()
        out = model.generate(prompt, tokens, state=state, temperature=1.0, generator=generator)
        per_token.append((time.perf_counter() - start) / tokens)
    # Continue the stream from the last window (so positions keep counting honestly).
    return statistics.median(per_token), per_token, out.state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=512, help="tokens generated per timed window")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = build(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    state, position = model.init_state(1), 0
    # Warm-up: first calls allocate and pick kernels.
    model.generate(torch.zeros(1, 1, dtype=torch.long), 128, state=state, generator=generator)
    rows = []
    for target in POSITIONS:
        state, position = advance_to(model, state, position, target, generator)
        ms, all_windows, _ = measure_window(model, state, args.tokens, args.repeats, generator)
        row = {
            "position": position,
            "ms_per_token": 1e3 * ms,
            "ms_per_token_windows": [1e3 * t for t in all_windows],
            "rss_bytes": current_rss_bytes(),
            "peak_rss_bytes": peak_rss_bytes(),
            "state_bytes": state.num_bytes(),
        }
        rows.append(row)
        print(f"position {position:>7}: {row['ms_per_token']:.3f} ms/token, RSS {row['rss_bytes'] / 2**20:.1f} MiB, "
              f"peak {row['peak_rss_bytes'] / 2**20:.1f} MiB, state {row['state_bytes']:,} B")
    times = [r["ms_per_token"] for r in rows]
    peaks = [r["peak_rss_bytes"] for r in rows]
    summary = {
        "max_ms_per_token": max(times),
        "time_spread": max(times) / min(times) - 1,
        "peak_memory_spread": max(peaks) / min(peaks) - 1,
    }
    print(f"slowest {summary['max_ms_per_token']:.3f} ms/token (target <= 3), time spread "
          f"{100 * summary['time_spread']:.1f}% (target <= 10%), peak memory spread "
          f"{100 * summary['peak_memory_spread']:.2f}% (target <= 5%)")
    write_json("generation", {"environment": environment(), "tokens_per_window": args.tokens,
                              "repeats": args.repeats, "rows": rows, "summary": summary})
    plot(rows, RESULTS / "generation.png")


def plot(rows: list[dict], path) -> None:
    plt = pyplot()

    positions = [r["position"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    left.plot(positions, [r["ms_per_token"] for r in rows], "o-")
    left.axhline(3.0, color="gray", linestyle="--", label="target 3 ms")
    left.set_xscale("log")
    left.set_ylim(bottom=0)
    left.set_xlabel("stream position (tokens)")
    left.set_ylabel("ms per generated token (batch 1)")
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
