"""What the data layer costs: tokenizing, reloading from the cache, padding, batch assembly.

Questions answered, for the embedded stdlib corpus and debtext, byte and BPE tokens:
- how long the first run spends tokenizing, and how long a later run spends opening the cache;
- how much of the stream is padding when documents are rounded up to segment_len (the price of
  resets on segment boundaries), for segment lengths 16..1024; and how much the evaluation
  layouts pad (contiguous vs documents) at batch size 8;
- how many training batches per second the stream assembles (it must never be the bottleneck).

    python benchmarks/data_pipeline.py --debtext /work/shared/data/debtext
        # writes benchmarks/results/data_pipeline.{json,png}
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from common import RESULTS, environment, pyplot, write_json
from torch_memformer.data import (
    ByteTokenizer,
    DataSpec,
    TrainStream,
    eval_batches,
    open_corpus,
    tokenized_split,
    train_bpe,
)
from torch_memformer.data.layout import padded_lengths

SEGMENT_LENS = [16, 32, 64, 128, 256, 512, 1024]


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def first_bytes(corpus, limit: int):
    total = 0
    for text in corpus.documents():
        if total >= limit:
            return
        total += len(text.encode("utf-8"))
        yield text


def measure_corpus(name: str, spec: DataSpec, tokenizers: dict, cache: Path) -> dict:
    result: dict = {}
    for tok_name, tokenizer in tokenizers.items():
        for split in ("train", "valid"):
            key = f"{name}/{tok_name}/{split}"
            corpus, cold = timed(lambda: tokenized_split(spec, split, tokenizer, cache_dir=cache))
            _, warm = timed(lambda: tokenized_split(spec, split, tokenizer, cache_dir=cache))
            entry = {
                "documents": corpus.num_documents,
                "bytes": corpus.num_bytes,
                "tokens": corpus.num_tokens,
                "bytes_per_token": corpus.num_bytes / corpus.num_tokens,
                "tokenize_seconds": cold,
                "tokenize_mb_per_s": corpus.num_bytes / cold / 1e6,
                "cache_open_seconds": warm,
                "padding_fraction_by_segment_len": {
                    L: float(1 - corpus.num_tokens / padded_lengths(corpus, L).sum()) for L in SEGMENT_LENS
                },
            }
            if split == "valid":
                for layout in ("contiguous", "documents"):
                    stats = eval_batches(corpus, batch_size=8, segment_len=64, window=512, layout=layout).stats
                    entry[f"eval_{layout}_B8_L64"] = {
                        "batches": stats.num_batches,
                        "padding_fraction": stats.padding_fraction,
                        "unscored_tokens": stats.num_tokens - stats.num_targets,
                    }
            else:
                stream = TrainStream(corpus, batch_size=16, segment_len=64, window=512, shuffle=True)
                count = min(300, stream.batches_per_epoch)
                _, seconds = timed(lambda: [stream.next_batch() for _ in range(count)])
                entry["train_B16_L64_N512"] = {
                    "batches_per_s": count / seconds,
                    "tokens_per_s": count * 16 * 512 / seconds,
                    "dropped_fraction": stream.stats.dropped_fraction,
                }
            result[key] = entry
            print(f"{key}: {entry['documents']:,} docs, {entry['bytes']:,} bytes, {entry['tokens']:,} tokens; "
                  f"tokenize {cold:.1f} s ({entry['tokenize_mb_per_s']:.1f} MB/s), cache open {warm * 1e3:.0f} ms; "
                  f"padding at L=64 {entry['padding_fraction_by_segment_len'][64]:.2%}", flush=True)
    return result


def plot(results: dict, path: Path) -> None:
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, entry in results.items():
        if key.endswith("/train"):
            fractions = entry["padding_fraction_by_segment_len"]
            ax.plot(SEGMENT_LENS, [100 * fractions[L] for L in SEGMENT_LENS], marker="o", label=key.rsplit("/", 1)[0])
    ax.set_xscale("log", base=2)
    ax.set_xlabel("segment_len (tokens)")
    ax.set_ylabel("padding (% of stream)")
    ax.set_title("Cost of starting every document on a segment boundary (train splits)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debtext", type=Path, default=None, help="the debtext folder (omit to skip it)")
    parser.add_argument("--bpe-vocab", type=int, default=8192)
    parser.add_argument("--bpe-train-bytes", type=int, default=20_000_000,
                        help="BPE learns from the first this-many bytes of each train split")
    args = parser.parse_args()
    corpora = {"stdlib": DataSpec()}
    if args.debtext is not None:
        corpora["debtext"] = DataSpec(str(args.debtext))
    cache = Path(tempfile.mkdtemp(prefix="memformer-bench-cache-"))
    results: dict = {}
    bpe_training: dict = {}
    try:
        for name, spec in corpora.items():
            bpe, seconds = timed(lambda: train_bpe(first_bytes(open_corpus(spec, "train"), args.bpe_train_bytes),
                                                   vocab_size=args.bpe_vocab))
            bpe_training[name] = {"vocab_size": bpe.vocab_size, "seconds": seconds,
                                  "trained_on_bytes": args.bpe_train_bytes}
            print(f"{name}: BPE {bpe.vocab_size} trained on {args.bpe_train_bytes:,} bytes in {seconds:.1f} s",
                  flush=True)
            results.update(measure_corpus(name, spec, {"byte": ByteTokenizer(), f"bpe{bpe.vocab_size}": bpe}, cache))
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    out = write_json("data_pipeline", {"environment": environment(), "bpe_training": bpe_training, "results": results})
    plot(results, RESULTS / "data_pipeline.png")
    print(f"wrote {out} and {RESULTS / 'data_pipeline.png'}")


if __name__ == "__main__":
    main()
