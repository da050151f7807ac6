"""Peak training memory and throughput of BPTT, checkpointing and MRBP against the window length.

Question: does MRBP (spec 2) train through K segments at about one segment's memory, and at
what speed, next to full BPTT and per-segment gradient checkpointing?

Setup (the paper's image ablations, ``--size paper``): d_model 256, 8 heads, d_ff 1024, 2 encoder
+ 6 decoder layers, 32 slots, segments of 64 tokens, batch 8, float32; windows of K = 1 .. 32
segments. ``--size probe`` is issue 14's smaller probe: d_model 128, 4 heads, d_ff 512, 2 + 2
layers, 16 slots, the rest the same.

- Memory: each (method, K) point runs in a fresh process. After one warm-up window of
  ``--warmup-segments`` segments (default 3; lazy initialisation) and with gradients freed, the process's resident set is the
  baseline; the peak is then reset (/proc/self/clear_refs) and one window of K segments is
  trained; the point is VmHWM - baseline: activations, gradients and the replay buffer. The
  child runs with MALLOC_MMAP_THRESHOLD_=65536 so glibc serves large tensors with mmap and
  returns them on free: RSS then follows the live tensors, not the allocator's high-water mark.
  On CUDA the point is torch.cuda.max_memory_allocated() above the allocated baseline.
- Throughput: for each K, one fresh process (default allocator) trains one warm-up window per
  method, then ``--repeats`` rounds of one window per method, the order rotating per round;
  tokens/s is batch * K * 64 over the median wall time, and the speed ratio to BPTT is the
  median of the per-round ratios (robust to other load on the machine).

Run:  python benchmarks/mrbp_memory.py            (writes benchmarks/results/mrbp_memory.{json,png})
      python benchmarks/mrbp_memory.py --ks 1,2 --repeats 1 --name mrbp_smoke   (a quick look)
      python benchmarks/mrbp_memory.py --size probe --warmup-segments 1 --skip-throughput \
          --ks 1,2,4,8,32 --methods bptt,mrbp --name mrbp_memory_probe      (issue 14's probe)
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from common import RESULTS, cpu_name, pyplot, write_json
from torch_memformer import Memformer, MemformerConfig
from torch_memformer.training import backward_window

METHODS = ("bptt", "checkpoint", "mrbp")
MMAP_THRESHOLD = "65536"


def paper_config() -> MemformerConfig:
    """The paper's image-ablation size, the benchmark's default."""
    return MemformerConfig(
        vocab_size=256,
        d_model=256,
        num_heads=8,
        d_ff=1024,
        num_encoder_layers=2,
        num_decoder_layers=6,
        num_slots=32,
        segment_len=64,
    )


def probe_config() -> MemformerConfig:
    """Issue 14's probe: small enough to measure every K on a busy 2-core machine."""
    return MemformerConfig(
        vocab_size=256,
        d_model=128,
        num_heads=4,
        d_ff=512,
        num_encoder_layers=2,
        num_decoder_layers=2,
        num_slots=16,
        segment_len=64,
    )


def tiny_config() -> MemformerConfig:
    """A smoke run's size (gpu_check.py --smoke): seconds per point on a CPU."""
    return MemformerConfig(
        vocab_size=256,
        d_model=32,
        num_heads=2,
        d_ff=64,
        num_encoder_layers=1,
        num_decoder_layers=1,
        num_slots=4,
        segment_len=64,
    )


SIZES = {"paper": paper_config, "probe": probe_config, "tiny": tiny_config}


def build(size: str, device: str, seed: int = 0) -> Memformer:
    torch.manual_seed(seed)
    return Memformer(SIZES[size]()).to(device).train()


def window(batch: int, segments: int, device: str, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, segments * 64), generator=generator).to(device)


# ---------------------------------------------------------------------------- memory, one point


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_point(method: str, segments: int, batch: int, device: str, size: str, warmup_segments: int) -> dict:
    """Peak bytes above the loaded-model baseline for one window (run in a fresh process)."""
    model = build(size, device)
    input_ids = window(batch, segments, device)
    # Warm-up: a window of 3 segments runs every kind of unit once, so the baseline holds the
    # lazily initialised state and the point only the window's own memory. (Until issue 14,
    # MRBP's first backward that carried a memory gradient imported sympy through
    # torch.autograd.backward's grad_tensors check, 34 MiB for good; a 1-segment warm-up then
    # counted it at K >= 3 only. See docs/results.md, MRBP.)
    backward_window(model, window(batch, warmup_segments, device, seed=2), method=method)
    model.zero_grad(set_to_none=True)
    gc.collect()
    if device == "cuda":
        torch.cuda.synchronize()
        baseline = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        baseline = _status_kib("VmRSS") * 1024
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    start = time.perf_counter()
    result = backward_window(model, input_ids, method=method)
    if device == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = _status_kib("VmHWM") * 1024
    seconds = time.perf_counter() - start
    return {
        "method": method,
        "segments": segments,
        "warmup_segments": warmup_segments,
        "peak_bytes": peak - baseline,
        "baseline_bytes": baseline,
        "seconds": seconds,
        "loss": float(result.loss),
    }


def measure_memory(args: argparse.Namespace) -> list[dict]:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=MMAP_THRESHOLD)
    points = []
    for segments in args.ks:
        for method in args.methods:
            command = [
                sys.executable, __file__, "--memory-point", method, str(segments), "--batch", str(args.batch),
                "--device", args.device, "--size", args.size, "--warmup-segments", str(args.warmup_segments),
            ]
            output = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
            point = json.loads(output.strip().splitlines()[-1])
            print(f"memory  K={segments:2d} {method:10s} {point['peak_bytes'] / 2**20:9.1f} MiB", flush=True)
            points.append(point)
    return points


# ---------------------------------------------------------------------------- throughput


def throughput_point(segments: int, batch: int, device: str, methods: list[str], repeats: int, size: str) -> dict:
    """Per-method wall times of ``repeats`` windows, interleaved, after one warm-up each."""
    model = build(size, device)
    input_ids = window(batch, segments, device)

    def timed(method: str) -> float:
        model.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        backward_window(model, input_ids, method=method)
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    for method in methods:
        timed(method)
    seconds = {method: [] for method in methods}
    for round_ in range(repeats):
        order = methods[round_ % len(methods) :] + methods[: round_ % len(methods)]
        for method in order:
            seconds[method].append(timed(method))
    return {"segments": segments, "tokens": batch * segments * 64, "seconds": seconds}


def measure_throughput(args: argparse.Namespace) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    points = []
    for segments in args.ks:
        command = [
            sys.executable, __file__, "--throughput-point", str(segments), "--batch", str(args.batch),
            "--device", args.device, "--repeats", str(args.repeats), "--methods", ",".join(args.methods),
            "--size", args.size,
        ]
        output = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
        point = json.loads(output.strip().splitlines()[-1])
        summary = summarise_throughput(point)
        point.update(summary)
        text = "  ".join(f"{m} {summary['tokens_per_s'][m]:7.0f} tok/s" for m in args.methods)
        ratios = "  ".join(f"{m}/bptt {r:.3f}" for m, r in summary["speed_vs_bptt"].items())
        print(f"speed   K={segments:2d} {text}   {ratios}", flush=True)
        points.append(point)
    return points


def summarise_throughput(point: dict) -> dict:
    seconds = point["seconds"]
    tokens_per_s = {m: point["tokens"] / statistics.median(s) for m, s in seconds.items()}
    ratios = {}
    if "bptt" in seconds:
        for method, times in seconds.items():
            if method != "bptt":
                ratios[method] = statistics.median(b / t for b, t in zip(seconds["bptt"], times))
    return {"tokens_per_s": tokens_per_s, "speed_vs_bptt": ratios}


# ---------------------------------------------------------------------------- report


def environment(device: str) -> dict:
    """Not ``common.environment``: this file's records have always carried the device and the load
    at the start and the end (``docs/results.md`` reads them), so its keys stay its own."""
    env = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(shlex.quote(a) for a in ["python"] + sys.argv),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": device,
        "load_average_at_start": os.getloadavg(),
    }
    if device == "cuda":
        env["gpu"] = torch.cuda.get_device_name()
    return env


def plot(data: dict, path: Path) -> None:
    plt = pyplot()

    fig, (ax_mem, ax_speed, ax_ratio) = plt.subplots(1, 3, figsize=(15, 4.2))
    colors = {"bptt": "tab:red", "checkpoint": "tab:orange", "mrbp": "tab:blue"}
    for method in data["methods"]:
        points = [p for p in data["memory"] if p["method"] == method]
        if points:
            ax_mem.plot([p["segments"] for p in points], [p["peak_bytes"] / 2**20 for p in points], "o-", color=colors[method], label=method)
    ax_mem.set_xscale("log", base=2)
    ax_mem.set_yscale("log")
    ax_mem.set_xlabel("window K (segments of 64 tokens)")
    ax_mem.set_ylabel("peak training memory above baseline (MiB)")
    ax_mem.set_title("Peak memory per window")
    ax_mem.grid(True, which="both", alpha=0.3)
    ax_mem.legend()
    for method in data["methods"]:
        if data["throughput"] and method in data["throughput"][0]["tokens_per_s"]:
            ks = [p["segments"] for p in data["throughput"]]
            ax_speed.plot(ks, [p["tokens_per_s"][method] for p in data["throughput"]], "o-", color=colors[method], label=method)
    ax_speed.set_xscale("log", base=2)
    ax_speed.set_xlabel("window K (segments of 64 tokens)")
    ax_speed.set_ylabel("training tokens / s")
    ax_speed.set_title("Throughput (forward + backward)")
    ax_speed.set_ylim(bottom=0)
    ax_speed.grid(True, alpha=0.3)
    if data["throughput"]:
        ax_speed.legend()
    for method in ("checkpoint", "mrbp"):
        points = [p for p in data["throughput"] if method in p["speed_vs_bptt"]]
        if points:
            ax_ratio.plot([p["segments"] for p in points], [p["speed_vs_bptt"][method] for p in points], "o-", color=colors[method], label=method)
    ax_ratio.axhline(1.0, color=colors["bptt"], lw=1, label="bptt")
    ax_ratio.axhline(0.88, color="gray", ls="--", lw=1, label="MRBP target 0.88")
    ax_ratio.set_xscale("log", base=2)
    ax_ratio.set_xlabel("window K (segments of 64 tokens)")
    ax_ratio.set_ylabel("speed / BPTT's (median of paired rounds)")
    ax_ratio.set_title("Speed relative to BPTT")
    ax_ratio.set_ylim(0, max([1.2] + [p["speed_vs_bptt"].get("mrbp", 0) * 1.05 for p in data["throughput"]]))
    ax_ratio.grid(True, alpha=0.3)
    ax_ratio.legend()
    env = data["environment"]
    config = data["config"]
    fig.suptitle(
        f"Memformer {config['num_encoder_layers']}+{config['num_decoder_layers']}, d {config['d_model']}, "
        f"{config['num_slots']} slots, batch {data['batch']}: {env['device']} ({env['cpu']}, torch {env['torch']})",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def table(data: dict) -> str:
    memory = {(p["method"], p["segments"]): p["peak_bytes"] / 2**20 for p in data["memory"]}
    speed = {p["segments"]: p for p in data["throughput"]}
    ks = sorted({p["segments"] for p in data["memory"]} | set(speed))
    lines = [
        "| K | BPTT MiB | ckpt MiB | MRBP MiB | BPTT tok/s | ckpt tok/s | MRBP tok/s | ckpt / BPTT speed | MRBP / BPTT speed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for k in ks:
        cells = [str(k)]
        cells += [f"{memory[(m, k)]:.1f}" if (m, k) in memory else "-" for m in METHODS]
        point = speed.get(k)
        cells += [f"{point['tokens_per_s'][m]:.0f}" if point and m in point["tokens_per_s"] else "-" for m in METHODS]
        cells += [f"{point['speed_vs_bptt'][m]:.3f}" if point and m in point["speed_vs_bptt"] else "-" for m in ("checkpoint", "mrbp")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ks", type=lambda s: [int(k) for k in s.split(",")], default=[1, 2, 4, 8, 16, 32])
    parser.add_argument("--methods", type=lambda s: s.split(","), default=list(METHODS))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", choices=sorted(SIZES), default="paper", help="model size: the paper's or issue 14's probe")
    parser.add_argument("--warmup-segments", type=int, default=3, help="segments in the memory points' warm-up window")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--name", default="mrbp_memory", help="results file name (under --out)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for <name>.{json,png}")
    parser.add_argument("--replot", action="store_true", help="redraw the plot and table from the saved JSON")
    parser.add_argument("--memory-point", nargs=2, metavar=("METHOD", "K"), help=argparse.SUPPRESS)
    parser.add_argument("--throughput-point", type=int, metavar="K", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.memory_point:
        method, segments = args.memory_point[0], int(args.memory_point[1])
        print(json.dumps(memory_point(method, segments, args.batch, args.device, args.size, args.warmup_segments)))
        return
    if args.throughput_point:
        print(json.dumps(throughput_point(args.throughput_point, args.batch, args.device, args.methods, args.repeats, args.size)))
        return

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("mrbp_memory.py: --device cuda but torch.cuda.is_available() is False")
    if args.replot:
        data = json.loads((args.out / f"{args.name}.json").read_text())
        plot(data, args.out / f"{args.name}.png")
        print(table(data))
        return

    data = {
        "question": "peak training memory and tokens/s of bptt, checkpoint and mrbp against the window K",
        "config": SIZES[args.size]().to_dict(),
        "size": args.size,
        "warmup_segments": args.warmup_segments,
        "batch": args.batch,
        "segment_len": 64,
        "methods": args.methods,
        "environment": environment(args.device),
        "memory": [] if args.skip_memory else measure_memory(args),
        "throughput": [] if args.skip_throughput else measure_throughput(args),
    }
    data["environment"]["load_average_at_end"] = os.getloadavg()
    write_json(args.name, data, args.out)
    plot(data, args.out / f"{args.name}.png")
    print(table(data))


if __name__ == "__main__":
    main()
