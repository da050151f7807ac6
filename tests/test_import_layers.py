"""The package's import rules, read from the source with ``ast`` (nothing is imported).

docs/architecture.md's package map states them: ``config.py`` imports only ``config_base.py``
(and both ``json_input.py``), ``model/`` only ``config.py``, the baselines only ``model/`` and the
two config modules, ``data/`` nothing of the models, the training
engines (``training/engines/``) only ``model/`` (everything else builds on them, never the other
way); the experiments never import the commands (shared pieces live below both); no two modules
import each other; nothing imports ``train.py``, the old training path kept for users; no module
calls another's private methods or imports its private names.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "torch_memformer"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE


def _modules() -> dict[str, Path]:
    modules = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """Nodes under ``if TYPE_CHECKING:``: imports for annotations only, never run."""
    inside = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            inside.update(id(child) for child in ast.walk(node))
    return inside


def _imports(module: str, *, runtime_only: bool) -> set[str]:
    """The package modules ``module`` imports, anywhere in the file (top level or in a function).

    ``from .x import name`` counts as importing ``x.name`` when that is a module, else ``x``.
    """
    path = MODULES[module]
    tree = ast.parse(path.read_text())
    skip = _type_checking_nodes(tree) if runtime_only else set()
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in MODULES else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name in MODULES and name != module}


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return components


def test_no_module_imports_one_that_imports_it_back():
    edges = {module: _imports(module, runtime_only=True) for module in MODULES}
    assert _cycles(edges) == []


# Pairs that imported each other before issue 12 (lazily or for type hints): not even that now.
@pytest.mark.parametrize(
    "first, second",
    [
        ("model.memformer", "model.generation"),
        ("model.memformer", "model.stream_lm"),
        ("model.stream_lm", "model.generation"),
        ("model.memformer", "model.segment_stream"),
        ("model.decoder", "model.decoder_cache"),
        ("baselines.streaming", "model.stream_lm"),
        ("baselines.transformer_xl", "baselines.streaming"),
        ("data.corpora", "data.hf"),
    ],
)
def test_named_pairs_do_not_import_each_other(first, second):
    first, second = f"{PACKAGE}.{first}", f"{PACKAGE}.{second}"
    both = second in _imports(first, runtime_only=False) and first in _imports(second, runtime_only=False)
    assert not both, f"{first} and {second} import each other"


# The architecture's layers (spec 1) and the stream-side modules beside them (issue 12, item 5).
ARCHITECTURE_LAYERS = ["model.attention", "model.blocks", "model.encoder", "model.memory", "model.decoder"]
STREAM_SIDE = ["model.stream_lm", "model.segment_stream", "model.checks", "model.state", "model.cursor",
               "model.generation", "model.loss"]


@pytest.mark.parametrize("layer", ARCHITECTURE_LAYERS)
def test_the_architecture_layers_import_nothing_of_the_stream(layer):
    """The layers read as the paper's equations: no input check, state or stream walk inside them
    (``memformer.py`` subclasses ``segment_stream.SegmentStream``; the layers stay below both)."""
    imported = _imports(f"{PACKAGE}.{layer}", runtime_only=False)
    wrong = sorted(name for name in imported if name.removeprefix(f"{PACKAGE}.") in STREAM_SIDE + ["model.memformer"])
    assert not wrong, f"{layer} imports {wrong}; keep the stream's bookkeeping beside the architecture"


# What each low package may import besides itself (docs/architecture.md, "Package map").
ALLOWED = {
    # json_input (strict JSON reading with one-line errors) imports only the standard library,
    # so every low package may read its config files through it.
    "json_input": set(),
    # What every config shares (validators, the JSON round trip, a field's flag description).
    "config_base": {"json_input"},
    "config": {"config_base", "json_input"},
    "model": {"config", "json_input"},
    "baselines": {"config", "config_base", "model", "json_input"},
    "data": {"json_input"},
    # The gradient engines call the model's step contract and nothing else of the package.
    "training.engines": {"model"},
}


def _in(module: str, package: str) -> bool:
    return module == f"{PACKAGE}.{package}" or module.startswith(f"{PACKAGE}.{package}.")


@pytest.mark.parametrize("package", list(ALLOWED))
def test_low_packages_import_only_what_the_map_allows(package):
    allowed = ALLOWED[package] | {package}
    for module in MODULES:
        if _in(module, package):
            wrong = {
                name for name in _imports(module, runtime_only=False)
                if not any(_in(name, other) for other in allowed)
            }
            assert not wrong, f"{module} imports {sorted(wrong)}; {package} may import only {sorted(allowed)}"


def test_nothing_in_the_package_imports_the_old_training_path():
    """``train.py`` re-exports ``training``'s public names for code written before issue 12 merged
    ``train/`` into ``training/``; the package itself imports ``training``."""
    old = f"{PACKAGE}.train"
    users = sorted(module for module in MODULES if old in _imports(module, runtime_only=False))
    assert not users, f"{users} import {old}; import {PACKAGE}.training instead"


def test_experiments_never_import_the_commands():
    """``memformer bench`` (a command) runs the experiments; what both need (the data a checkpoint
    is scored on, the checkpoint analysis) sits below them, in ``checkpoint_data.py`` and
    ``analysis/``."""
    wrong = {
        module: sorted(name for name in _imports(module, runtime_only=False) if _in(name, "commands"))
        for module in MODULES if _in(module, "experiments")
    }
    wrong = {module: names for module, names in wrong.items() if names}
    assert not wrong, f"experiments import commands: {wrong}"


# Reaches into another module's private names that predate this test, each with what it waits for.
KNOWN_PRIVATE_USES = {
    ("cli", "args._run"),  # argparse set_defaults(_run=...): the command a parsed line runs
    ("integrations.hf.model", "module._init_weights"),  # HF's init hook re-runs the model's own init
    ("integrations.hf.tokenizer", "_gpt2_unicode_to_byte"),  # the byte table; to be made public
}


def _private_uses(module: str) -> set[str]:
    """``obj._name(...)`` calls on anything but self / cls / super(), and imported ``_names``."""
    uses = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            name, owner = node.func.attr, node.func.value
            if name.startswith("_") and not name.startswith("__"):
                if isinstance(owner, ast.Name) and owner.id not in ("self", "cls"):
                    uses.add(f"{owner.id}.{name}")
                elif not isinstance(owner, (ast.Name, ast.Call)):
                    uses.add(f"{ast.unparse(owner)}.{name}")
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            uses.update(a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__"))
    return uses


def test_no_module_uses_another_modules_private_names():
    new = set()
    for module in MODULES:
        short = module.removeprefix(f"{PACKAGE}.")
        new.update((short, use) for use in _private_uses(module) if (short, use) not in KNOWN_PRIVATE_USES)
    assert not new, f"private names used across modules: {sorted(new)}"
