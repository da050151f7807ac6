"""What the memory is worth against the distance into a document, for one or more checkpoints.

Length generalisation on natural text: the models are trained on windows of a few segments (4 in
the presets, 256 bytes), yet carried through whole documents when evaluated. This runs, per
checkpoint, exactly the user command

    memformer eval --checkpoint CKPT --split valid --json --by-distance --batch-size 8 [--threads N]

and writes ``results/memory_by_distance.json`` (the commands, the machine, the load averages, each
checkpoint's buckets) and ``results/memory_by_distance.png``: bits per byte with the memory
carried and reset, and their difference, per bucket of segments since the document's start.

    python benchmarks/memory_by_distance.py --checkpoint runs/debtext-s0 --checkpoint runs/debtext-s1
    python benchmarks/memory_by_distance.py --from-json runs/a.json runs/b.json   # evals already run
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from common import RESULTS, environment, pyplot, run_memformer, write_json

NAME = "memory_by_distance"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", action="append", default=[], help="a run or checkpoint directory (repeat)")
    parser.add_argument("--from-json", nargs="*", default=[], type=Path,
                        help="outputs of 'memformer eval --json --by-distance' already run (instead of --checkpoint)")
    parser.add_argument("--threads", type=int, default=None, help="passed to memformer eval")
    parser.add_argument("--label", default="", help="a title for the plot (e.g. the data and preset)")
    args = parser.parse_args()
    if not args.checkpoint and not args.from_json:
        parser.error("give --checkpoint (one or more) or --from-json FILE...")

    record: dict = {"environment": environment(), "label": args.label, "runs": []}
    for checkpoint in args.checkpoint:
        command = ["memformer", "eval", "--checkpoint", checkpoint, "--split", "valid", "--json", "--by-distance",
                   "--batch-size", "8", *([] if args.threads is None else ["--threads", str(args.threads)])]
        load_before, start = os.getloadavg(), time.perf_counter()
        result = json.loads(run_memformer(command, capture=True).strip().splitlines()[-1])
        record["runs"].append({"command": " ".join(command), "load_before": load_before,
                               "load_after": os.getloadavg(), "wall_seconds": time.perf_counter() - start,
                               "eval": result})
    for path in args.from_json:
        record["runs"].append({"command": f"(from {path})", "eval": json.loads(path.read_text())})
    record["summary"] = summarise([run["eval"] for run in record["runs"]])
    path = write_json(NAME, record)
    _plot(record, RESULTS / f"{NAME}.png")
    print(f"wrote {path}")
    for row in record["summary"]:
        print(f"segments {row['segments']:>9s}: worth {row['worth_mean']:+.4f} bits/byte "
              f"(runs: {', '.join(f'{w:+.4f}' for w in row['worth'])})")


def summarise(evals: list[dict]) -> list[dict]:
    """Per bucket present in every run: carried and reset bits/byte and the memory's worth per run."""
    rows = []
    for index in range(min(len(e["carried"]["by_distance"]) for e in evals)):
        carried = [e["carried"]["by_distance"][index] for e in evals]
        reset = [e["reset"]["by_distance"][index] for e in evals]
        first, last = carried[0]["first_segment"], carried[0]["last_segment"]
        worth = [r["bits_per_byte"] - c["bits_per_byte"] for c, r in zip(carried, reset)]
        rows.append({"segments": f"{first}" if first == last else f"{first}-{last}", "first_segment": first,
                     "tokens": [c["num_targets"] for c in carried],
                     "carried": [c["bits_per_byte"] for c in carried], "reset": [r["bits_per_byte"] for r in reset],
                     "worth": worth, "worth_mean": statistics.mean(worth)})
    return rows



def _plot(record: dict, path: Path) -> None:
    plt = pyplot()

    rows = record["summary"]
    x = [max(row["first_segment"], 0.5) for row in rows]  # log axis: segment 0 drawn at 0.5
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for run in range(len(rows[0]["worth"])):
        left.plot(x, [row["carried"][run] for row in rows], "o-", color="C0", alpha=0.7,
                  label="memory carried" if run == 0 else None)
        left.plot(x, [row["reset"][run] for row in rows], "s--", color="C3", alpha=0.7,
                  label="memory reset every segment" if run == 0 else None)
        right.plot(x, [row["worth"][run] for row in rows], "o-", color="C2", alpha=0.5,
                   label="each run" if run == 0 else None)
    right.plot(x, [row["worth_mean"] for row in rows], "k-", lw=2, label="mean")
    right.axhline(0, color="0.6", lw=0.8)
    for axis in (left, right):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("segments since the document's start (bucket's first)")
        axis.legend()
    left.set_ylabel("bits per byte")
    right.set_ylabel("memory's worth (reset - carried), bits per byte")
    left.set_title(record["label"] or "valid split")
    right.set_title("where in a document the memory helps")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
