"""What ``--compile`` (``compile_segment_step``) costs and gains at the quickstart size on a CPU.

Two workloads, each eager and compiled on models with the same weights, with a cold inductor
cache (a fresh temporary directory, so the compile time is what a first run pays):

- eval: one segment as ``evaluate`` reads it (``predict`` then ``advance``, no grad), B x L tokens;
- train: one MRBP window (``backward_window(method="mrbp")``) of ``--window`` segments, no optimizer.

The first call of each compiled workload includes the compile; "steady" is the median of the
calls after it. Eager and compiled calls alternate in blocks, so a change of load on a shared
machine touches both. ``--threads`` is 1 by default (this project's shared 2-core machine).

    python benchmarks/compile_step.py           # writes results/compile_step.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor-cold-")  # before torch compiles

import torch

from common import environment, write_json
from torch_memformer import Memformer, MemformerConfig
from torch_memformer.compile_step import compile_segment_step
from torch_memformer.model.presets import MEMFORMER_PRESETS
from torch_memformer.training.engines import backward_window


def build(seed: int) -> Memformer:
    torch.manual_seed(seed)
    return Memformer(MemformerConfig(vocab_size=256, **MEMFORMER_PRESETS["quickstart"]))


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(name: str, eager_call, compiled_call, *, calls: int, block: int) -> dict:
    """First call of each (the compiled one compiles), then ``calls`` more, alternating blocks."""
    first_eager, first_compiled = timed(eager_call), timed(compiled_call)
    eager, compiled = [], []
    while len(eager) < calls:
        eager += [timed(eager_call) for _ in range(block)]
        compiled += [timed(compiled_call) for _ in range(block)]
    result = {
        "first_call_eager_s": first_eager, "first_call_compiled_s": first_compiled,
        "steady_eager_s": statistics.median(eager), "steady_compiled_s": statistics.median(compiled),
    }
    result["speedup"] = result["steady_eager_s"] / result["steady_compiled_s"]
    print(f"{name}: first call eager {first_eager:.3f} s, compiled {first_compiled:.1f} s (compile); steady "
          f"{result['steady_eager_s'] * 1e3:.1f} ms eager, {result['steady_compiled_s'] * 1e3:.1f} ms compiled: "
          f"{result['speedup']:.2f}x", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--window", type=int, default=4, help="segments per training window")
    parser.add_argument("--calls", type=int, default=24)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    eager_model, compiled_model = build(0), compile_segment_step(build(0))
    length = eager_model.config.segment_len
    ids = torch.randint(0, 256, (args.batch_size, args.window * length), generator=torch.Generator().manual_seed(1))
    load_before = os.getloadavg()

    # eval: the state advances one segment per call, as evaluate does (the stream never ends).
    states = {"eager": None, "compiled": None}

    def eval_call(model: Memformer, key: str) -> None:
        segment = ids[:, :length]
        with torch.no_grad():
            model.predict(segment, state=states[key])
            states[key] = model.advance(segment, state=states[key])

    eager_model.eval(), compiled_model.eval()
    results = {"eval_segment": measure("eval segment", lambda: eval_call(eager_model, "eager"),
                                       lambda: eval_call(compiled_model, "compiled"), calls=args.calls, block=4)}

    def train_call(model: Memformer) -> None:
        backward_window(model, ids, method="mrbp")
        model.zero_grad(set_to_none=True)

    eager_model.train(), compiled_model.train()
    results["train_mrbp_window"] = measure("train window", lambda: train_call(eager_model),
                                           lambda: train_call(compiled_model), calls=max(args.calls // 3, 4), block=2)
    tokens = {"eval_segment": args.batch_size * length, "train_mrbp_window": ids.numel()}
    for name, result in results.items():
        result["tokens_per_call"] = tokens[name]
        result["tokens_per_s_eager"] = tokens[name] / result["steady_eager_s"]
        result["tokens_per_s_compiled"] = tokens[name] / result["steady_compiled_s"]
    env = environment()
    env["load_average_before"] = load_before
    path = write_json("compile_step", {"environment": env, "model": "quickstart (1.01 M parameters)",
                                       "batch_size": args.batch_size, "segment_len": length,
                                       "window_segments": args.window, "results": results})
    print(f"load average before {load_before}, after {env['load_average']}; wrote {path}")


if __name__ == "__main__":
    main()
