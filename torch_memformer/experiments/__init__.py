"""The paper's experiments at CPU scale, one module each, run with ``memformer bench NAME``.

Every public module of this package is an experiment (``common/`` holds what they share and is
skipped): a file, or a package whose ``__init__.py`` is the experiment and whose modules hold its
pieces (``streaming/``: plan, measurement, worker, write-up). Its name on the command line is the
module's name with dashes for underscores (``memory_analysis.py`` is
``memformer bench memory-analysis``). An experiment module defines:

    NAME: str                                  its name on the command line
    TITLE: str                                 one line; heads its block of docs/results.md
    add_arguments(parser) -> None              its own flags (the shared ones are already there)
    run(args: argparse.Namespace) -> dict      measure; write <out>/<NAME>.json and <NAME>.png with
                                               ``common.report.save``; return that result, whose
                                               "markdown" holds the tables and the paper comparison

The shared flags (``common/arguments.py``): --quick, --out, --seed, --threads, --update-results,
--results-doc. ``docs/experiments.md`` describes each experiment and how to read its result.

    >>> from torch_memformer import experiments
    >>> experiments.names()
    ['copy-after-gap', 'digits', 'efficiency', 'language-model', 'matched-inference',
     'memory-analysis', 'recall', 'streaming', 'value-tracking']
    >>> done = experiments.run("efficiency", ["--quick", "--out", "/tmp/bench"])  # doctest: +SKIP
    >>> done.result["files"]  # doctest: +SKIP
    {'json': '/tmp/bench/efficiency.json', 'png': '/tmp/bench/efficiency.png'}
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import pkgutil
import shlex
from pathlib import Path
from types import ModuleType

from .common.arguments import ExperimentParser, add_shared_arguments, resolve_shared_arguments


@dataclasses.dataclass(frozen=True)
class ExperimentRun:
    """What ``run`` returns. result: what ``<out>/<NAME>.json`` holds; updated_doc: the results
    page whose block was replaced (``--update-results``), else None."""

    result: dict
    updated_doc: Path | None


# The package of what the experiments share; every other public module or package is an experiment.
SHARED = "common"


def names() -> list[str]:
    """The experiments' names, sorted (found without importing them)."""
    return sorted(
        info.name.replace("_", "-")
        for info in pkgutil.iter_modules(__path__)
        if info.name != SHARED and not info.name.startswith("_")
    )


def load(name: str) -> ModuleType:
    """The module of experiment ``name``; ValueError naming the known experiments otherwise."""
    known = names()
    if name not in known:
        raise ValueError(f"unknown experiment {name!r}; the experiments are: {', '.join(known)}")
    module_name = name.replace("-", "_")
    module = importlib.import_module(f"{__name__}.{module_name}")
    assert module.NAME == name, f"experiments/{module_name}.py sets NAME = {module.NAME!r}"
    return module


def build_parser(name: str) -> argparse.ArgumentParser:
    """The command line of experiment ``name``: the shared flags, then its own."""
    module = load(name)
    doc = (module.__doc__ or "").strip()
    parser = ExperimentParser(
        prog=f"memformer bench {name}",
        description=doc.split("\n\n")[0],
        epilog="See docs/experiments.md for what it measures and how to read it.",
    )
    add_shared_arguments(parser)
    module.add_arguments(parser)
    return parser


def parse_args(name: str, argv: list[str]) -> argparse.Namespace:
    """Parse experiment ``name``'s flags; ``args.command`` is the command line that reproduces it."""
    args = resolve_shared_arguments(build_parser(name).parse_args(argv))
    args.command = shlex.join(["memformer", "bench", name, *argv])
    return args


def run(name: str, argv: list[str]) -> ExperimentRun:
    """Run experiment ``name`` with command-line flags ``argv``: it writes its JSON and plot;
    with ``--update-results`` its block of the results page is replaced too."""
    from .common import report

    module = load(name)
    args = parse_args(name, argv)
    result = module.run(args)
    if not args.update_results:
        return ExperimentRun(result=result, updated_doc=None)
    report.update_results_doc(args.results_doc, name, report.results_block(result, doc_path=args.results_doc))
    return ExperimentRun(result=result, updated_doc=args.results_doc)
