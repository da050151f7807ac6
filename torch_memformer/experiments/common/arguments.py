"""The flags every experiment shares, parsing an experiment's command line, and the plan its
flags give (``plan_from_flags``).

    --quick            tiny sizes that finish in seconds: a smoke test of the files, not the numbers
    --out DIR          where <name>.json and <name>.png go (default benchmarks/results, or
                       benchmarks/results/quick with --quick, so a smoke test never overwrites
                       a real result)
    --seed N           seeds the weights and the random tokens
    --threads N        torch intra-op threads while measuring (each experiment picks its default)
    --update-results   also write the result into its marked block of --results-doc
    --results-doc PATH the results page (default docs/results.md)
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import TypeVar

from ...errors import UserError

DEFAULT_OUT = Path("benchmarks/results")
QUICK_OUT = DEFAULT_OUT / "quick"
DEFAULT_RESULTS_DOC = Path("docs/results.md")

Plan = TypeVar("Plan")


class ExperimentParser(argparse.ArgumentParser):
    """An argument parser whose mistakes end as one ``UserError`` line (the CLI exits with 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{self.prog}: {message}")


def add_shared_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("shared by every experiment (docs/experiments.md)")
    group.add_argument("--quick", action="store_true",
                       help="tiny sizes that run in seconds (a smoke test of the output files, not of the numbers)")
    group.add_argument("--out", type=Path, default=None,
                       help=f"directory for <name>.json and <name>.png (default {DEFAULT_OUT}, or {QUICK_OUT} with --quick)")
    group.add_argument("--seed", type=int, default=0, help="seed of the weights and the random tokens (default 0)")
    group.add_argument("--threads", type=positive_int, default=None,
                       help="torch intra-op threads while measuring (default %(default)s)")
    group.add_argument("--update-results", action="store_true",
                       help="write the result into its marked block of --results-doc, replacing the previous one")
    group.add_argument("--results-doc", type=Path, default=DEFAULT_RESULTS_DOC,
                       help=f"the results page to update (default {DEFAULT_RESULTS_DOC}, from the repository root)")


def resolve_shared_arguments(args: argparse.Namespace) -> argparse.Namespace:
    """Fill in the defaults that depend on other flags, and check what the parser cannot."""
    if args.out is None:
        args.out = QUICK_OUT if args.quick else DEFAULT_OUT
    if args.update_results and not args.results_doc.is_file():
        raise UserError(
            f"--update-results: {args.results_doc} does not exist; run from the repository root or pass --results-doc PATH"
        )
    return args


def plan_from_flags(args: argparse.Namespace, *, default: Plan, quick: Plan, flags: tuple[str, ...]) -> Plan:
    """``quick`` (with ``--quick``) or ``default``, a frozen dataclass, with each field named in
    ``flags`` replaced by the flag of the same name when it was given (a flag left at None keeps
    the plan's value)."""
    base = quick if args.quick else default
    return dataclasses.replace(base, **{name: getattr(args, name) or getattr(base, name) for name in flags})


def add_steps_and_seeds_arguments(parser: argparse.ArgumentParser, *, default) -> None:
    """--steps and --seeds of an experiment that trains every model on the same budget; ``default``
    is its plan (fields ``steps`` and ``seeds``)."""
    parser.add_argument("--steps", type=positive_int, default=None,
                        help=f"training steps of every model (default {default.steps})")
    parser.add_argument("--seeds", type=seed_list, default=None,
                        help=f"N: seeds 0 .. N-1 per model; or a comma-separated list of seeds, e.g. 3,4,5 to add "
                             f"seeds to an earlier run (default {len(default.seeds)})")


def add_jobs_argument(parser: argparse.ArgumentParser, *, default, quick) -> None:
    """--jobs of an experiment that trains several models (``common.training.run_each``)."""
    parser.add_argument("--jobs", type=positive_int, default=None,
                        help="training runs at a time, each in its own process; 1 runs them in this process "
                             f"(default {default.jobs}, with --quick {quick.jobs})")


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """An argparse type: an integer >= 0."""
    return _int_at_least(text, 0)


def _int_at_least(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
    return value


def seed_list(text: str) -> tuple[int, ...]:
    """An argparse type: "N" is the seeds 0 .. N-1; "a,b,c" those seeds (distinct, >= 0)."""
    if "," not in text:
        return tuple(range(positive_int(text)))
    try:
        seeds = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count or comma-separated seeds, got {text!r}") from None
    if min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"seeds must be distinct integers >= 0, got {text!r}")
    return seeds


def positive_float(text: str) -> float:
    """An argparse type: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def int_list(text: str) -> tuple[int, ...]:
    """An argparse type: comma-separated positive integers in increasing order, e.g. ``128,256,512``."""
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 128,256,512, got {text!r}") from None
    if not values or min(values) < 1 or list(values) != sorted(set(values)):
        raise argparse.ArgumentTypeError(f"expected distinct positive integers in increasing order, got {text!r}")
    return values
