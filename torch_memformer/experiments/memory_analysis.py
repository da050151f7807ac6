"""Memory analysis (paper Fig. 6): in a trained Memformer, how much each slot keeps of its content
at every write (the writer's self weight a_i[0]), the share of slots that keep their content and
of those overwritten per segment of a document, and the forgetting-bias norms of often- against
rarely-overwritten slots.

It runs ``memformer analyze`` (``torch_memformer.analysis``: the writer attention recomputed from
the model's parameters, tested to write exactly the model's own next memory) on a trained
checkpoint, the first checkpoint found of:

1. ``--checkpoint DIR``;
2. the debtext benchmark's run ``runs/debtext-cpu-20min`` (``python benchmarks/debtext_lm.py``:
   the project's longest-trained Memformer, 20 minutes of a 2-core CPU);
3. the Memformer of ``memformer bench language-model`` (``<out>/language-model-checkpoints``);
4. none found: a Memformer trained here with the language-model experiment's recipe (its
   default budget, about 4 minutes).

``--quick`` always trains a tiny Memformer for a fraction of a second (unless ``--checkpoint``).

    memformer bench memory-analysis --update-results
    memformer bench memory-analysis --checkpoint runs/x --document 3
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

from ..analysis.flags import add_analysis_arguments
from ..runs import resolve_checkpoint
from . import language_model
from .common import report
from .common.machine import environment
from .common.trained_models import checkpoint_of, read_manifest, train_and_evaluate

NAME = "memory-analysis"
TITLE = "Memory analysis: which slots keep their content, which are overwritten (paper Fig. 6)"

logger = logging.getLogger(__name__)

DEBTEXT_RUN = Path("runs/debtext-cpu-20min")
OWN_CHECKPOINT_DIR = "memory-analysis-checkpoint"
DEFAULT_MAX_SEGMENTS = 64
QUICK_MAX_SEGMENTS = 6


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="the Memformer checkpoint or run directory to analyse (default: see the module doc)")
    parser.add_argument("--data", default=None,
                        help="the corpus (default: the one the checkpoint was trained on; for a model trained "
                             f"here, {language_model.DEFAULT_DATA})")
    parser.add_argument("--cache-dir", type=Path, default=None, help="token cache (default: ~/.cache/torch-memformer)")
    add_analysis_arguments(parser)
    parser.set_defaults(max_segments=None)  # 64, or QUICK_MAX_SEGMENTS with --quick
    # One thread: on the shared 2-core machine torch's spinning threads slow small batches down.
    parser.set_defaults(threads=1)


def run(args: argparse.Namespace) -> dict:
    started = environment(command=args.command)
    if args.max_segments is None:
        args.max_segments = QUICK_MAX_SEGMENTS if args.quick else DEFAULT_MAX_SEGMENTS
    checkpoint, origin = find_or_train_checkpoint(args)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from ..analysis.checkpoint import analyze_checkpoint, describe

    result = analyze_checkpoint(checkpoint, data={"data": args.data}, split=args.split, document=args.document,
                                documents=args.documents, max_segments=args.max_segments, cache_dir=args.cache_dir)
    record = result.record
    data = {"origin": origin, **{key: value for key, value in record.items() if key != "analysis"},
            "summary": result.analysis.summary, "analysis": record["analysis"]}
    return report.save(args, name=NAME, title=TITLE, environment=started, data=data, figure=result.figure,
                       markdown=markdown(data, describe(result.analysis)))


def find_or_train_checkpoint(args: argparse.Namespace) -> tuple[Path, str]:
    """The checkpoint to analyse and a sentence saying where it came from (module doc's order)."""
    if args.checkpoint is not None:
        return resolve_checkpoint(args.checkpoint), "given with --checkpoint"
    if not args.quick:
        if DEBTEXT_RUN.is_dir():
            return resolve_checkpoint(DEBTEXT_RUN), (f"the debtext benchmark's run `{DEBTEXT_RUN}` "
                                                      "(`python benchmarks/debtext_lm.py`, preset cpu-20min)")
        root = Path(args.out) / language_model.CHECKPOINTS_DIR
        manifest = read_manifest(root)
        if manifest is not None:
            for record in manifest["models"]:
                if record["key"] == "memformer":
                    return checkpoint_of(root, record), f"the Memformer of `memformer bench language-model` ({root})"
    plan = language_model.QUICK if args.quick else language_model.DEFAULT
    entry = plan.entries(vocab_size=256)[0]
    assert entry.key == "memformer"
    root = Path(args.out) / OWN_CHECKPOINT_DIR
    data = language_model.resolve_data(args)
    recipe = dataclasses.replace(plan.recipe, eval_batches=1)
    manifest = train_and_evaluate([entry], recipe, root=root, data=data, threads=args.threads or 1,
                                  seed=args.seed, cache_dir=language_model.cache_dir(args))
    if args.data is None:
        args.data = data
    return checkpoint_of(root, manifest["models"][0]), (
        f"trained here with the language-model experiment's {'quick ' if args.quick else ''}recipe "
        f"({manifest['models'][0]['steps']} steps)")


def markdown(data: dict, lines: list[str]) -> str:
    s = data["summary"]
    config = data["config"]

    def pct(x: float) -> str:
        return f"{100 * x:.0f}%"

    rho = s["spearman_take_vs_bias_norm"]
    rows = [
        [f"slots that keep their content mid-document (self weight > {s['keep_threshold']}, segment >= "
         f"{s['mid_document_from_segment']})", pct(s["mid_document_keep_share"]), "60-80%"],
        [f"slots overwritten mid-document (self weight < {s['overwrite_threshold']})",
         pct(s["mid_document_overwrite_share"]), "5-10%"],
        ["mean self weight mid-document", f"{s['mid_document_mean_keep']:.3f}", "-"],
        [f"(slot, write head) pairs that keep / are overwritten mid-document ({s['heads']} heads)",
         f"{pct(s['mid_document_pair_keep_share'])} / {pct(s['mid_document_pair_overwrite_share'])}", "-"],
        ["mean self weight of each write head mid-document",
         " ".join(f"{k:.2f}" for k in data["analysis"]["head_mid_keep_H"]), "-"],
        ["slots that keep / are overwritten at a document's first write",
         f"{pct(s['first_write_keep_share'])} / {pct(s['first_write_overwrite_share'])}",
         "nearly all take new content"],
        ["forgetting-bias norm ‖v_i‖: often / rarely overwritten slots (lowest / highest quarter of mean self weight)",
         f"{s['often_overwritten_bias_norm']:.3f} / {s['rarely_overwritten_bias_norm']:.3f} "
         f"({s['bias_norm_ratio']:.2f}x)", "3.2 / 1.15 (2.8x)"],
        ["Spearman correlation over slots of the new content taken with ‖v_i‖", "n/a" if rho is None else f"{rho:+.2f}",
         "positive (implied)"],
    ]
    head = (
        f"Checkpoint `{data['checkpoint']}`, {data['origin']}: {data['parameters'] / 1e6:.2f} M parameters, "
        f"{config['num_encoder_layers']} + {config['num_decoder_layers']} layers, d_model {config['d_model']}, "
        f"{config['num_slots']} slots, segments of {config['segment_len']}, write temperature "
        f"{config['write_temperature']}. Traced: the first {data['max_segments']} segments of {s['documents']} "
        f"document(s) of {data['data']} ({s['writes']:,} writes), each from a fresh memory; the heat map is document "
        f"{data['analysis']['document']}. The self weight is a_i[0] averaged over the write heads (the share of its "
        "old vector a slot keeps); the thresholds 0.5 and 0.1 for \"keeps\" and \"overwritten\" are ours."
    )
    return "\n".join([head, "", report.markdown_table(["quantity", "ours", "paper (Fig. 6)"], rows), "",
                      "`memformer analyze` printed:", "", "```", *lines, "```"])
