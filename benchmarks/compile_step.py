"""What ``--compile`` (``compile_segment_step``) costs and gains at the quickstart size on a CPU.

Two workloads, eager and compiled, on models with the same weights:

- eval: one segment as ``evaluate`` reads it (``predict`` then ``advance``, no grad), B x L tokens;
- train: one MRBP window (``backward_window(method="mrbp")``) of ``--window`` segments, no optimizer.

Each variant runs in its own process (eager, compiled, eager again, to bracket a change of load
on a shared machine): in one process, eager calls made after inductor had compiled ran up to 5x
slower than in a fresh one, which made an in-process comparison meaningless. The compiled process
gets a fresh inductor cache directory, so its first call pays a cold compile. "steady" is the
median of the calls after the first. ``--threads`` is 1 by default (this project's shared 2-core
machine).

    python benchmarks/compile_step.py           # writes results/compile_step.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch

from common import environment, write_json
from torch_memformer import Memformer, MemformerConfig
from torch_memformer.compile_step import compile_segment_step
from torch_memformer.model.presets import MEMFORMER_PRESETS
from torch_memformer.training.engines import backward_window


def build(seed: int) -> Memformer:
    torch.manual_seed(seed)
    return Memformer(MemformerConfig(vocab_size=256, **MEMFORMER_PRESETS["quickstart"]))


def timed_calls(fn, calls: int) -> dict:
    """The first call (the compile, when compiled) and the median of ``calls`` more."""
    times = []
    for _ in range(calls + 1):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"first_call_s": times[0], "steady_s": statistics.median(times[1:])}


def run_variant(compiled: bool, args: argparse.Namespace) -> dict:
    """Both workloads for one variant, in this process."""
    torch.set_num_threads(args.threads)
    model = build(0)
    if compiled:
        compile_segment_step(model)
    length = model.config.segment_len
    ids = torch.randint(0, 256, (args.batch_size, args.window * length), generator=torch.Generator().manual_seed(1))
    state = None

    def eval_call() -> None:  # the state advances one segment per call, as in evaluate
        nonlocal state
        with torch.no_grad():
            model.predict(ids[:, :length], state=state)
            state = model.advance(ids[:, :length], state=state)

    def train_call() -> None:
        backward_window(model, ids, method="mrbp")
        model.zero_grad(set_to_none=True)

    model.eval()
    results = {"eval_segment": timed_calls(eval_call, args.calls)}
    model.train()
    results["train_mrbp_window"] = timed_calls(train_call, max(args.calls // 3, 4))
    results["eval_segment"]["tokens_per_call"] = args.batch_size * length
    results["train_mrbp_window"]["tokens_per_call"] = ids.numel()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--window", type=int, default=4, help="segments per training window")
    parser.add_argument("--calls", type=int, default=24)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--variant", choices=("eager", "compiled"), help=argparse.SUPPRESS)  # a child process
    args = parser.parse_args()
    if args.variant is not None:
        print(json.dumps(run_variant(args.variant == "compiled", args)))
        return
    load_before = os.getloadavg()
    runs = []
    for variant in ("eager", "compiled", "eager"):
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": tempfile.mkdtemp(prefix="inductor-cold-")}
        child = [sys.executable, __file__, "--variant", variant, "--batch-size", str(args.batch_size),
                 "--window", str(args.window), "--calls", str(args.calls), "--threads", str(args.threads)]
        out = subprocess.run(child, env=env, check=True, capture_output=True, text=True).stdout
        runs.append({"variant": variant, "load_average_after": os.getloadavg(), **json.loads(out.splitlines()[-1])})
        for name in ("eval_segment", "train_mrbp_window"):
            r = runs[-1][name]
            print(f"{variant:>8} {name}: first call {r['first_call_s']:.3f} s, steady {r['steady_s'] * 1e3:.1f} ms "
                  f"({r['tokens_per_call'] / r['steady_s']:,.0f} tokens/s)", flush=True)
    summary = {}
    for name in ("eval_segment", "train_mrbp_window"):
        eager = statistics.mean(run[name]["steady_s"] for run in runs if run["variant"] == "eager")
        compiled = runs[1][name]["steady_s"]
        summary[name] = {"steady_eager_s_mean_of_two": eager, "steady_compiled_s": compiled,
                         "compile_first_call_s": runs[1][name]["first_call_s"], "speedup": eager / compiled}
        print(f"{name}: {summary[name]['speedup']:.2f}x after a {summary[name]['compile_first_call_s']:.0f} s "
              "first (compiling) call")
    env = environment()
    env["load_average_before"] = load_before
    path = write_json("compile_step", {"environment": env, "model": "quickstart (1.01 M parameters)",
                                       "batch_size": args.batch_size, "window_segments": args.window,
                                       "runs": runs, "summary": summary})
    print(f"load average before {load_before}, after {env['load_average']}; wrote {path}")


if __name__ == "__main__":
    main()
