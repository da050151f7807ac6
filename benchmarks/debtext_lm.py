"""Language modelling on debtext: train a Memformer for ~20 minutes of a 2-core CPU, then evaluate
the valid split with the memory carried and with it reset at every segment.

    python benchmarks/debtext_lm.py --data /work/shared/data/debtext            # train + eval
    python benchmarks/debtext_lm.py --data ... --skip-train                      # eval an existing run

It runs the two user commands, exactly as a user would:

    memformer train --data DATA --preset cpu-20min --out runs/debtext-cpu-20min [--threads N]
    memformer eval --checkpoint runs/debtext-cpu-20min --split valid --json [--threads N]

and writes ``results/debtext_lm.json`` (commands, machine, load averages before/after, training
tokens/s, the loss curve, bits per byte both ways) and ``results/debtext_lm.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from common import RESULTS, environment, pyplot, run_memformer, write_json

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="/work/shared/data/debtext")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "debtext-cpu-20min")
    parser.add_argument("--preset", default="cpu-20min")
    parser.add_argument("--threads", type=int, default=None, help="passed to train and eval (default: theirs)")
    parser.add_argument("--eval-batch-size", type=int, default=8)
    parser.add_argument("--skip-train", action="store_true", help="evaluate the run already in --out")
    parser.add_argument("--train-args", default="", help="extra flags for memformer train (one string)")
    args = parser.parse_args()

    threads = [] if args.threads is None else ["--threads", str(args.threads)]
    train_cmd = ["memformer", "train", "--data", args.data, "--preset", args.preset, "--out", str(args.out),
                 *threads, *args.train_args.split()]
    eval_cmd = ["memformer", "eval", "--checkpoint", str(args.out), "--split", "valid", "--json",
                "--batch-size", str(args.eval_batch_size), *threads]
    record: dict = {"environment": environment(), "train_command": " ".join(train_cmd),
                    "eval_command": " ".join(eval_cmd)}
    record["load_before"] = os.getloadavg()
    if not args.skip_train:
        start = time.perf_counter()
        run_memformer(train_cmd)
        record["train_wall_seconds"] = time.perf_counter() - start
        record["load_after_train"] = os.getloadavg()
    start = time.perf_counter()
    result = json.loads(run_memformer(eval_cmd, capture=True).strip().splitlines()[-1])
    record["eval_wall_seconds"] = time.perf_counter() - start
    record["load_after_eval"] = os.getloadavg()
    record["eval"] = result

    metrics = [json.loads(line) for line in (args.out / "metrics.jsonl").read_text().splitlines()]
    train = [m for m in metrics if m["kind"] == "train"]
    record["train_curve"] = [(m["step"], m["loss"]) for m in train]
    record["valid_curve"] = [(m["step"], m["bits_per_byte"]) for m in metrics if m["kind"] == "valid"]
    latest = args.out / (args.out / "latest").read_text().strip() / "trainer_state.json"
    state = json.loads(latest.read_text())
    progress = state["progress"]
    record["train"] = {
        "steps": state["step"],
        "tokens": progress["tokens"],
        "train_seconds": progress["train_seconds"],
        "tokens_per_second": progress["tokens"] / progress["train_seconds"],
        "median_step_tokens_per_second": statistics.median(m["tokens_per_second"] for m in train),
        "final_loss_bits": statistics.mean(m["loss"] for m in train[-50:]) / 0.6931471805599453,
        "config": state["config"],
    }
    path = write_json("debtext_lm", record)
    _plot(record, RESULTS / "debtext_lm.png")
    carried, reset = result["carried"], result.get("reset")
    print(f"wrote {path}")
    print(f"train: {record['train']['tokens']:,} tokens in {record['train']['train_seconds']:.0f} s = "
          f"{record['train']['tokens_per_second']:,.0f} tokens/s")
    print(f"valid: {carried['bits_per_byte']:.4f} bits/byte with memory"
          + (f", {reset['bits_per_byte']:.4f} with the memory reset every segment" if reset else ""))



def _plot(record: dict, path: Path) -> None:
    plt = pyplot()

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    steps, losses = zip(*record["train_curve"])
    bits = [loss / 0.6931471805599453 for loss in losses]
    window = 25
    smooth = [statistics.mean(bits[max(0, i - window + 1) : i + 1]) for i in range(len(bits))]
    left.plot(steps, bits, color="0.8", lw=0.6, label="training loss (per step)")
    left.plot(steps, smooth, color="C0", label=f"training loss ({window}-step mean)")
    if record["valid_curve"]:
        vs, vb = zip(*record["valid_curve"])
        left.plot(vs, vb, "o-", color="C1", label="valid (first batches)")
    left.set_xlabel("step")
    left.set_ylabel("bits per byte")
    left.set_ylim(0, 8.5)
    left.legend()
    left.set_title("Memformer on debtext, 2-core CPU")
    ev = record["eval"]
    labels, values = ["memory carried"], [ev["carried"]["bits_per_byte"]]
    if "reset" in ev:
        labels.append("memory reset\nevery segment")
        values.append(ev["reset"]["bits_per_byte"])
    bars = right.bar(labels, values, color=["C0", "C3"][: len(values)])
    right.bar_label(bars, fmt="%.3f")
    right.set_ylabel("bits per byte (debtext valid, whole split)")
    right.set_ylim(0, max(values) * 1.15)
    right.set_title("the same checkpoint, two ways")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
