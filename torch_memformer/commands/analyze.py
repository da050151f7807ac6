"""``memformer analyze``: what a trained Memformer's memory slots do (the paper's Fig. 6).

    memformer analyze --checkpoint runs/debtext-cpu-20min --out runs/debtext-cpu-20min/analysis
    memformer analyze --checkpoint DIR --data /work/shared/data/debtext --document 3 --out DIR

Traces the first ``--max-segments`` segments of the documents of a split from a fresh memory,
recomputing the writer's attention at every write (``torch_memformer.analysis``), and writes
``<out>/memory_analysis.json`` and ``<out>/memory_analysis.png``: (a) every slot's self weight per
segment over one document, (b) per segment the share of slots that keep their content and the
share that are overwritten, (c) the forgetting-bias norms of often- against rarely-overwritten
slots.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ._data_args import add_data_arguments

NAME = "analyze"
HELP = "analyse a Memformer checkpoint's memory: writer attention per slot, kept vs overwritten slots, forgetting biases"
_DATA_FLAGS = ("data", "data_format", "text_field", "hf_config", "valid_fraction", "test_fraction", "allow_binary")
OUTPUT_NAME = "memory_analysis"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, required=True,
                        help="a Memformer checkpoint directory, or a run directory (its latest checkpoint)")
    parser.add_argument("--out", type=Path, required=True,
                        help=f"directory for {OUTPUT_NAME}.json and {OUTPUT_NAME}.png")
    add_analysis_arguments(parser)
    add_data_arguments(parser)
    # Not given: the data the checkpoint was trained on (as memformer eval).
    parser.set_defaults(**{name: None for name in _DATA_FLAGS})
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for PyTorch (default 0: one per core)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="token cache (default: ~/.cache/torch-memformer)")


def add_analysis_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of what to trace (shared with ``memformer bench memory-analysis``)."""
    parser.add_argument("--split", default="valid", choices=("train", "valid", "test", "all"),
                        help="the split whose documents are traced (default: valid)")
    parser.add_argument("--document", type=int, default=None,
                        help="index in the split of the document drawn segment by segment (default: the longest)")
    parser.add_argument("--documents", type=int, default=None,
                        help="trace only the first N documents of the split for the statistics (default: all)")
    parser.add_argument("--max-segments", type=int, default=64,
                        help="segments traced per document from its start (default 64)")


def run(args: argparse.Namespace) -> int:
    import torch

    from ..errors import UserError

    if args.threads < 0:
        raise UserError(f"--threads must be >= 0, got {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)
    result = analyze_checkpoint(args.checkpoint, args)
    args.out.mkdir(parents=True, exist_ok=True)
    json_path, png_path = args.out / f"{OUTPUT_NAME}.json", args.out / f"{OUTPUT_NAME}.png"
    json_path.write_text(json.dumps(result["record"], indent=2) + "\n")
    figure = result["figure"]
    figure.savefig(png_path, dpi=120)
    import matplotlib.pyplot as plt

    plt.close(figure)
    print("\n".join(describe(result["analysis"])))
    print(f"wrote {json_path} and {png_path}")
    return 0


def analyze_checkpoint(checkpoint: Path, args: argparse.Namespace) -> dict:
    """Load ``checkpoint``, trace the split that ``args`` names and analyse it. Returns the
    ``SlotAnalysis`` ("analysis"), a JSON-ready record ("record") and the figure ("figure")."""
    from ..analysis import analyze_slots, check_has_memory
    from ..analysis.figure import plot_slot_analysis
    from ..checkpoint import load_model
    from ..data import DataSpec, default_cache_dir, tokenized_split
    from ..errors import UserError
    from ..runs import resolve_checkpoint
    from ..training.training_state import TRAINER_STATE_FILE
    from .eval import _data_spec  # the rule memformer eval follows: --data, else the checkpoint's recorded data

    for name in ("documents", "max_segments"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UserError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    checkpoint = resolve_checkpoint(checkpoint)
    loaded = load_model(checkpoint)
    check_has_memory(loaded.model)
    if loaded.tokenizer is None:
        raise UserError(f"checkpoint {checkpoint} has no tokenizer files, so its token ids cannot be matched to text")
    data_args = argparse.Namespace(**{name: getattr(args, name, None) for name in _DATA_FLAGS})
    spec = _data_spec(data_args, checkpoint / TRAINER_STATE_FILE, DataSpec)
    cache_dir = args.cache_dir if args.cache_dir is not None else default_cache_dir()
    corpus = tokenized_split(spec, args.split, loaded.tokenizer, cache_dir=cache_dir)
    model = loaded.model.eval()
    analysis = analyze_slots(model, corpus, document=args.document, max_documents=args.documents,
                             max_segments=args.max_segments)
    record = {
        "checkpoint": str(checkpoint),
        "data": corpus.name,
        "split": args.split,
        "parameters": sum(p.numel() for p in model.parameters()),
        "config": loaded.config.to_dict(),
        "max_segments": args.max_segments,
        "analysis": analysis.to_dict(),
    }
    title = f"{checkpoint} on {corpus.name}"
    return {"analysis": analysis, "record": record, "figure": plot_slot_analysis(analysis, title=title)}


def describe(analysis) -> list[str]:
    """The numbers the paper states, one line each."""
    s = analysis.summary
    return [
        f"traced {s['documents']} document(s), {s['writes']:,} writes; document {analysis.document} drawn",
        f"first write of a document: {100 * s['first_write_keep_share']:.0f}% of slots keep (self weight > "
        f"{s['keep_threshold']}), {100 * s['first_write_overwrite_share']:.0f}% are overwritten (< "
        f"{s['overwrite_threshold']}); mean self weight {s['first_write_mean_keep']:.3f}",
        f"mid-document (segment >= {s['mid_document_from_segment']}): {100 * s['mid_document_keep_share']:.0f}% keep, "
        f"{100 * s['mid_document_overwrite_share']:.0f}% overwritten; mean self weight {s['mid_document_mean_keep']:.3f} "
        "(paper: 60-80% keep, 5-10% overwritten)",
        f"per (slot, write head) pair, mid-document: {100 * s['mid_document_pair_keep_share']:.0f}% keep, "
        f"{100 * s['mid_document_pair_overwrite_share']:.0f}% overwritten; mean self weight per head "
        + " ".join(f"{k:.2f}" for k in analysis.head_mid_keep_H),
        f"forgetting bias ||v||: often overwritten {s['often_overwritten_bias_norm']:.3f}, rarely overwritten "
        f"{s['rarely_overwritten_bias_norm']:.3f} (ratio {s['bias_norm_ratio']:.2f}; paper 3.2 vs 1.15), Spearman "
        + ("n/a" if s["spearman_take_vs_bias_norm"] is None else f"{s['spearman_take_vs_bias_norm']:+.2f}")
        + " between new content taken and ||v||",
    ]
