"""Training-step throughput and model FLOP utilisation (MFU) of one Memformer segment.

One step is the per-segment unit of Memformer training (the unit MRBP recomputes, spec 2): encode
segment t with the carried memory and write the memory (with grad), decode segment t+1 against
H_t, cross-entropy, backward through decoder, encoder and writer, AdamW. Every parameter gets a
gradient, and B * L tokens are predicted.

MFU = (FLOPs counted with torch.utils.flop_counter / step time) / (the rate at which this device runs
the *same* matrix multiplies). The matmul rate is measured in the same run: every mm/addmm/bmm
the step issued (same shapes, strides and dtype) and the attention kernels as the two-plus-four
batched matmuls they stand for are grouped by signature, each signature is timed hot (repeated
on the same operands until its timing is stable, so it runs from cache at its best speed), and
the step's matmul time is the sum of count x best time. MFU is then the share of that ideal the
whole step reaches. (Replaying the calls once each from freshly allocated operands, as an earlier
version did, runs them cold from memory and understates the rate: it gave MFU above 100%.)

On CUDA every timing is bracketed by ``torch.cuda.synchronize()`` (kernels run asynchronously: a
host clock alone would time the launches), and the result also gives MFU against the device's
peak matmul rate, measured on a large square bf16/float32 matmul in the same run (``mfu_vs_peak``).

    python benchmarks/train_step.py            # float32 and bf16 autocast, writes results/train_step.{json,png}
    python benchmarks/train_step.py --device cuda --precisions bf16 --out DIR      # gpu_check.py's step
    python benchmarks/train_step.py --size tiny --steps 2 --warmup 1 --out DIR    # a smoke run, seconds
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from common import RESULTS, environment, pyplot, synchronize, write_json
from torch_memformer import Memformer, MemformerConfig
from torch_memformer.experiments.common.flops import register_cpu_attention_flops

aten = torch.ops.aten

# FlopCounterMode knows the CUDA attention kernels but not the CPU one; count it the same way
# (both matmuls of attention, causal masking not discounted, as torch does for CUDA).
register_cpu_attention_flops()

MATMULS = {aten.mm.default, aten.addmm.default, aten.bmm.default, aten.baddbmm.default}
# The fused attention kernels of CPU and CUDA. Each takes (query, key, ...) forward and
# (grad_out, query, key, ...) backward; a build without one of them simply never calls it.
_ATTENTION_OPS = {
    "_scaled_dot_product_flash_attention_for_cpu": "forward",
    "_scaled_dot_product_flash_attention_for_cpu_backward": "backward",
    "_scaled_dot_product_flash_attention": "forward",
    "_scaled_dot_product_flash_attention_backward": "backward",
    "_scaled_dot_product_efficient_attention": "forward",
    "_scaled_dot_product_efficient_attention_backward": "backward",
    "_scaled_dot_product_cudnn_attention": "forward",
    "_scaled_dot_product_cudnn_attention_backward": "backward",
}
ATTENTION = {getattr(aten, name).default: kind for name, kind in _ATTENTION_OPS.items() if hasattr(aten, name)}


class RecordMatmuls(TorchDispatchMode):
    """Remember every matmul-like call of a step: (op, [(shape, stride, dtype) per tensor arg])."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in MATMULS:
            specs = [(a.shape, a.stride(), a.dtype) for a in args if isinstance(a, torch.Tensor)]
            self.calls.append(("matmul", func, specs, {k: v for k, v in kwargs.items() if k in ("beta", "alpha")}))
        elif func in ATTENTION:
            q, k = args[1:3] if ATTENTION[func] == "backward" else args[0:2]
            self.calls.append(("attention", ATTENTION[func], (q.shape, k.shape, q.dtype), {}))
        return func(*args, **kwargs)


def replay_program(calls: list[tuple], device: torch.device) -> dict[tuple, tuple]:
    """Group the recorded calls by signature: {signature: (count, func, operands, kwargs)}.

    A signature is (op, (shape, stride, dtype) of each operand, kwargs); attention calls become
    the bmm stand-ins of their matmuls. Each signature gets one set of random operands, reused
    for every timing of it.
    """
    signatures: list[tuple] = []
    for kind, func, spec, kwargs in calls:
        if kind == "matmul":
            operands = tuple((tuple(shape), tuple(stride), dtype) for shape, stride, dtype in spec)
            signatures.append((func, operands, tuple(sorted(kwargs.items()))))
            continue
        (b, h, t, k), (_, _, u, _), dtype = spec
        # forward: q k^T and p v; backward: dv = p^T dO, dp = dO v^T, dq = dS k, dk = dS^T q
        shapes = [((t, k), (k, u)), ((t, u), (u, k))] if func == "forward" else [
            ((u, t), (t, k)), ((t, k), (k, u)), ((t, u), (u, k)), ((u, t), (t, k))]
        for left, right in shapes:
            operands = tuple(((b * h, *shape), torch.empty(b * h, *shape).stride(), dtype) for shape in (left, right))
            signatures.append((aten.bmm.default, operands, ()))
    program = {}
    for signature in dict.fromkeys(signatures):
        func, operands, kwargs = signature
        tensors = [torch.empty_strided(shape, stride, dtype=dtype, device=device).normal_()
                   for shape, stride, dtype in operands]
        program[signature] = (signatures.count(signature), func, tensors, dict(kwargs))
    return program


def time_hot(func, tensors, kwargs, min_seconds: float = 0.02, rounds: int = 5) -> float:
    """Best per-call time of one matmul signature, repeated on the same (cached) operands."""
    device = tensors[0].device
    func(*tensors, **kwargs)
    repeats = 1
    while True:  # enough repeats that one round lasts min_seconds
        synchronize(device)
        start = time.perf_counter()
        for _ in range(repeats):
            func(*tensors, **kwargs)
        synchronize(device)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            break
        repeats *= 2
    best = elapsed / repeats
    for _ in range(rounds - 1):
        synchronize(device)
        start = time.perf_counter()
        for _ in range(repeats):
            func(*tensors, **kwargs)
        synchronize(device)
        best = min(best, (time.perf_counter() - start) / repeats)
    return best


def peak_matmul_rate(device: torch.device, dtype: torch.dtype, n: int, min_seconds: float) -> float:
    """FLOP/s of one hot n x n x n matmul: the device's matmul rate at a size that fills it."""
    left, right = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    return 2 * n**3 / time_hot(aten.mm.default, [left, right], {}, min_seconds)


def time_program(program: dict[tuple, tuple], min_seconds: float) -> float:
    """The step's matmuls at their best measured speed: sum over signatures of count x time."""
    return sum(count * time_hot(func, tensors, kwargs, min_seconds) for count, func, tensors, kwargs in program.values())


# The benchmark's model, and a tiny one for smoke runs (seconds on a CPU). Also the square size
# whose matmul stands for the device's peak rate.
SIZES = {
    "default": (dict(vocab_size=256, d_model=256, num_heads=8, d_ff=1024, num_encoder_layers=4,
                     num_decoder_layers=4, num_slots=32, segment_len=64), 4096),
    "tiny": (dict(vocab_size=256, d_model=32, num_heads=2, d_ff=64, num_encoder_layers=1,
                  num_decoder_layers=1, num_slots=4, segment_len=8), 128),
}


def build(size: str, device: torch.device, seed: int) -> tuple[Memformer, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = Memformer(MemformerConfig(**SIZES[size][0])).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    return model, optimizer


def training_step(model, optimizer, state, current_BL, next_BL, autocast: bool) -> torch.Tensor:
    with torch.autocast(current_BL.device.type, dtype=torch.bfloat16, enabled=autocast):
        after = model.advance(current_BL, state=state)  # encoder + writer with grad
        logits = model.predict(next_BL, state=after)  # decoder of the next segment against H_t
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), next_BL.reshape(-1))
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach()


def measure(autocast: bool, batch: int, steps: int, warmup: int, seed: int, size: str, device: torch.device,
            hot_seconds: float) -> dict:
    model, optimizer = build(size, device, seed)
    length = model.config.segment_len
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 256, (batch, length * 3), generator=generator).to(device)
    with torch.no_grad():
        state = model.advance(ids[:, :length]).detach()  # a carried memory, not the blank one
    current, following = ids[:, length : 2 * length], ids[:, 2 * length :]
    for _ in range(warmup):
        training_step(model, optimizer, state, current, following, autocast)
    times = []
    for _ in range(steps):
        synchronize(device)
        start = time.perf_counter()
        training_step(model, optimizer, state, current, following, autocast)
        synchronize(device)
        times.append(time.perf_counter() - start)
    step_time = statistics.median(times)

    recorder = RecordMatmuls()
    with FlopCounterMode(display=False) as counter, recorder:
        training_step(model, optimizer, state, current, following, autocast)
    flops = counter.get_total_flops()
    program = replay_program(recorder.calls, device)
    matmul_time = time_program(program, hot_seconds)
    matmul_rate = flops / matmul_time
    achieved = flops / step_time
    peak_rate = peak_matmul_rate(device, torch.bfloat16 if autocast else torch.float32, SIZES[size][1], hot_seconds)
    return {
        "device": str(device),
        "size": size,
        "precision": "bf16 autocast" if autocast else "float32",
        "batch": batch,
        "tokens_per_step": batch * length,
        "step_seconds_median": step_time,
        "step_seconds_all": times,
        "tokens_per_second": batch * length / step_time,
        "flops_per_step": flops,
        "achieved_gflops": achieved / 1e9,
        "matmul_seconds_at_best_rate": matmul_time,
        "matmul_rate_gflops": matmul_rate / 1e9,
        "mfu": achieved / matmul_rate,
        "peak_matmul_gflops": peak_rate / 1e9,
        "peak_matmul_size": SIZES[size][1],
        "mfu_vs_peak": achieved / peak_rate,
        "matmul_calls": sum(entry[0] for entry in program.values()),
        "matmul_signatures": len(program),
    }


def plot(results: list[dict], path) -> None:
    plt = pyplot()

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    names = [r["precision"] for r in results]
    colors = ["tab:blue", "tab:orange"][: len(results)]
    left.bar(names, [r["tokens_per_second"] for r in results], color=colors)
    left.set_ylabel("training tokens / s")
    left.set_title(f"one-segment training step ({results[0]['device']})")
    right.bar(names, [100 * r["mfu"] for r in results], color=colors)
    right.axhline(75, color="gray", linestyle="--", label="target 75%")
    right.set_ylabel("MFU vs same-shape matmul rate (%)")
    right.set_ylim(0, 100)
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--size", choices=sorted(SIZES), default="default", help="the benchmark's model or a tiny one")
    parser.add_argument("--precisions", type=lambda s: s.split(","), default=["fp32", "bf16"],
                        help="comma-separated, of fp32 and bf16 (autocast)")
    parser.add_argument("--hot-seconds", type=float, default=0.02,
                        help="least duration of one round of a hot matmul timing (smaller for a smoke run)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for train_step.{json,png}")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("train_step.py: --device cuda but torch.cuda.is_available() is False")
    device = torch.device(args.device)
    results = []
    for precision in args.precisions:
        if precision not in ("fp32", "bf16"):
            raise SystemExit(f"train_step.py: unknown precision {precision!r} (fp32 or bf16)")
        result = measure(precision == "bf16", args.batch, args.steps, args.warmup, args.seed, args.size, device,
                         args.hot_seconds)
        results.append(result)
        print(f"{result['precision']:>14}: {result['tokens_per_second']:8.0f} tokens/s, "
              f"{result['achieved_gflops']:6.1f} GFLOP/s achieved, matmul rate {result['matmul_rate_gflops']:6.1f} "
              f"GFLOP/s, MFU {100 * result['mfu']:.1f}%, vs peak matmul {result['peak_matmul_gflops']:.1f} GFLOP/s "
              f"{100 * result['mfu_vs_peak']:.1f}%")
    speedup = None
    if len(results) == 2 and results[0]["precision"] != results[1]["precision"]:
        speedup = results[1]["tokens_per_second"] / results[0]["tokens_per_second"]
        print(f"{results[1]['precision']} / {results[0]['precision']} throughput: {speedup:.2f}x")
    write_json("train_step", {"environment": environment(), "results": results, "bf16_speedup": speedup}, args.out)
    plot(results, args.out / "train_step.png")


if __name__ == "__main__":
    main()
