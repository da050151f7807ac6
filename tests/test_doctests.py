"""The examples in the package's docstrings run, and print what they say they print.

Every module whose source holds a ``>>>`` example is found by reading the files (so a new
example is run without being listed here) and checked with ``doctest``. Examples that would
train, download or write files are marked ``# doctest: +SKIP`` where they stand.
"""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest
import torch

import torch_memformer

PACKAGE = Path(torch_memformer.__file__).parent
# Modules that need an optional extra, and the package that extra brings.
EXTRAS = {"torch_memformer.integrations.hf": "transformers"}


def modules_with_examples() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if ">>> " in path.read_text(encoding="utf-8"):
            parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_examples_are_found() -> None:
    # Guards the finder itself: if it found nothing, the test below would pass vacuously.
    assert {"torch_memformer", "torch_memformer.experiments", "torch_memformer.registry"} <= set(
        modules_with_examples()
    )


@pytest.mark.parametrize("name", modules_with_examples())
def test_docstring_examples(name: str) -> None:
    for prefix, extra in EXTRAS.items():
        if name.startswith(prefix):
            pytest.importorskip(extra)
    torch.manual_seed(0)
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (output above)"
    assert result.attempted > 0, f"{name} has '>>> ' in its source but doctest ran no example"
