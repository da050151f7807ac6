"""``memformer bench NAME``: run one of the paper's experiments at CPU scale.

    memformer bench efficiency --quick                 # seconds: a smoke test of the output files
    memformer bench efficiency --update-results        # the default sizes; updates docs/results.md
    memformer bench streaming --help                   # an experiment's own flags

Each experiment writes ``<out>/<NAME>.json`` and ``<out>/<NAME>.png`` and prints its markdown
table; ``--update-results`` also replaces its marked block of ``docs/results.md``. The
experiments are the modules of ``torch_memformer/experiments/`` (docs/experiments.md).
"""

from __future__ import annotations

import argparse

NAME = "bench"
HELP = "run one of the paper's experiments at CPU scale (JSON + plot + markdown table)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..experiments import names

    parser.add_argument("experiment", nargs="?", metavar="EXPERIMENT",
                        help=f"one of: {', '.join(names())} (memformer bench EXPERIMENT --help for its flags)")
    parser.add_argument("options", nargs=argparse.REMAINDER, metavar="...",
                        help="the experiment's flags, e.g. --quick, --out DIR, --update-results")


def run(args: argparse.Namespace) -> int:
    from .. import experiments
    from ..errors import UserError

    if args.experiment is None:
        raise UserError(f"name an experiment: {', '.join(experiments.names())} (memformer bench EXPERIMENT --help)")
    if args.experiment not in experiments.names():
        raise UserError(f"unknown experiment {args.experiment!r}; the experiments are: {', '.join(experiments.names())}")
    done = experiments.run(args.experiment, args.options)
    print(f"## {done.result['title']}\n")
    print(done.result["markdown"].strip())
    print(f"\nwrote {done.result['files']['json']} and {done.result['files']['png']}")
    if done.updated_doc is not None:
        print(f"replaced the '{args.experiment}' block of {done.updated_doc}")
    return 0
