"""``memformer lm-eval``: run lm-evaluation-harness tasks on a checkpoint.

    memformer lm-eval --checkpoint runs/tiny/checkpoints/final --tasks memformer_bpb --data valid.jsonl
    memformer lm-eval --checkpoint DIR --tasks lambada_openai,hellaswag --include-path my_tasks/

The model is this project's lm-eval ``LM`` ("memformer", ``integrations/lm_eval.py``). The shipped
task ``memformer_bpb`` scores bits per byte on the corpus named by the ``--data*`` flags, counting
exactly what ``memformer eval`` counts. Other tasks come from ``--include-path`` or lm-eval itself
(they may need the Hugging Face hub, unless cached). Needs the ``lm-eval`` extra. The module is
not called ``lm_eval`` so that it never shadows the package.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ._data_args import DATA_FLAGS, add_data_arguments

NAME = "lm-eval"
HELP = "evaluate a checkpoint with lm-evaluation-harness tasks (e.g. the shipped memformer_bpb)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, required=True,
                        help="a checkpoint directory (with its tokenizer), or a run directory (its latest checkpoint)")
    parser.add_argument("--tasks", required=True, help="comma-separated task names, e.g. memformer_bpb")
    parser.add_argument("--include-path", type=Path, action="append", default=[], metavar="DIR",
                        help="a folder of lm-eval task YAML files (repeatable)")
    parser.add_argument("--split", default="valid", choices=("train", "valid", "test", "all"),
                        help="split of --data that memformer_bpb scores (default: valid, as memformer eval)")
    add_data_arguments(parser)
    # Not given: the data the checkpoint was trained on, as memformer eval.
    parser.set_defaults(**{name: None for name in DATA_FLAGS})
    parser.add_argument("--metadata", default=None, metavar="JSON",
                        help="more task metadata as a JSON object (overrides what the --data flags set)")
    parser.add_argument("--batch-size", type=int, default=8, help="rows per model call (default 8)")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--window", type=int, default=None,
                        help="tokens per row per call when streaming a document (default: 8 segments)")
    parser.add_argument("--max-gen-toks", type=int, default=256, help="generation limit for generate_until tasks")
    parser.add_argument("--num-fewshot", type=int, default=None)
    parser.add_argument("--limit", type=float, default=None, help="documents per task (a fraction if < 1)")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--output", type=Path, default=None, metavar="FILE", help="write the results as JSON")


def run(args: argparse.Namespace) -> int:
    from ..checkpoint import CheckpointError
    from ..checkpoint_data import data_spec_for_checkpoint
    from ..data.tokenizers import META_FILE
    from ..errors import UserError
    from ..runs import resolve_checkpoint

    try:
        import lm_eval
        from lm_eval.utils import make_table

        from ..integrations.lm_eval import MemformerLM, task_manager
    except ImportError as error:
        raise UserError(
            f"memformer lm-eval needs the lm-eval extra ({error}); install it with pip install 'torch-memformer[lm-eval]'"
        ) from None
    tasks = [name.strip() for name in args.tasks.split(",") if name.strip()]
    if not tasks:
        raise UserError("--tasks is empty; name at least one task, e.g. --tasks memformer_bpb")
    for path in args.include_path:
        if not path.is_dir():
            raise UserError(f"--include-path {path} is not a directory")
    checkpoint = resolve_checkpoint(args.checkpoint)
    metadata = {"split": args.split, "tokenizer": str(checkpoint) if (checkpoint / META_FILE).is_file() else "byte"}
    try:
        spec = data_spec_for_checkpoint(checkpoint, vars(args))
    except ValueError:
        spec = None  # no --data and no recorded training data: only a task that reads data needs it
    if spec is not None:
        metadata.update({"data": spec.source, "data_format": spec.format, "text_field": spec.text_field,
                         "hf_config": spec.hf_config, "valid_fraction": spec.valid_fraction,
                         "test_fraction": spec.test_fraction})
    if args.metadata:
        try:
            extra = json.loads(args.metadata)
        except json.JSONDecodeError as error:
            raise UserError(f"--metadata is not valid JSON ({error.msg})") from None
        if not isinstance(extra, dict):
            raise UserError("--metadata must be a JSON object")
        metadata.update(extra)
    try:
        lm = MemformerLM(checkpoint=str(checkpoint), batch_size=args.batch_size, device=args.device,
                         window=args.window, max_gen_toks=args.max_gen_toks, seed=args.seed)
    except CheckpointError as error:
        raise UserError(str(error)) from None
    manager = task_manager(args.include_path, metadata=metadata)
    if any(task not in manager.all_tasks for task in tasks):
        # Only index lm-eval's own few thousand tasks (seconds) when a task is not among ours.
        manager = task_manager(args.include_path, include_defaults=True, metadata=metadata)
    unknown = [task for task in tasks if task not in manager.all_tasks]
    if unknown:
        raise UserError(f"unknown lm-eval task(s) {', '.join(unknown)}; check the names or add --include-path DIR")
    results = lm_eval.simple_evaluate(model=lm, tasks=tasks, task_manager=manager, num_fewshot=args.num_fewshot,
                                      limit=args.limit, log_samples=False, random_seed=args.seed,
                                      numpy_random_seed=args.seed, torch_random_seed=args.seed,
                                      fewshot_random_seed=args.seed)
    print(make_table(results))
    if args.output is not None:
        report = {"checkpoint": str(checkpoint), "tasks": tasks, "metadata": metadata,
                  "results": results["results"], "versions": results.get("versions", {}),
                  "n-samples": results.get("n-samples", {})}
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2, sort_keys=True, default=str) + "\n")
        print(f"results written to {args.output}")
    return 0
