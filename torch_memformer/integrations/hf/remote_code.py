"""The ``trust_remote_code`` files of a saved directory: loading without importing this package first.

``save_pretrained`` (of the model or the config) writes two small modules beside ``config.json``
and names them in its ``auto_map``:

    configuration_memformer.py   MemformerHFConfig     (auto_map["AutoConfig"])
    modeling_memformer.py        MemformerForCausalLM  (auto_map["AutoModelForCausalLM"])

so ``AutoModelForCausalLM.from_pretrained(dir, trust_remote_code=True)`` works in a process that
never imported ``torch_memformer.integrations.hf`` (lm-eval's ``--model hf``, a pipeline, a
script). The modules re-export the installed package's classes instead of carrying a copy of the
model: the architecture lives in one place, and a directory never runs code that differs from
the package that is installed. So the package must be installed where the directory is loaded;
without it transformers says which module is missing (``torch_memformer``).

Without ``trust_remote_code=True`` (and without the import) transformers refuses, as it does for
any directory with code; importing ``torch_memformer.integrations.hf`` first needs neither.
"""

from __future__ import annotations

from pathlib import Path

CONFIG_MODULE = "configuration_memformer"
MODEL_MODULE = "modeling_memformer"
AUTO_MAP = {
    "AutoConfig": f"{CONFIG_MODULE}.MemformerHFConfig",
    "AutoModelForCausalLM": f"{MODEL_MODULE}.MemformerForCausalLM",
}

_HEADER = '''"""Written by torch-memformer's save_pretrained: the {what} of a Memformer directory, for
AutoConfig / AutoModelForCausalLM.from_pretrained(dir, trust_remote_code=True). It re-exports the
installed package's class (pip install "torch-memformer[hf]"); no model code is copied here."""

'''

SOURCES = {
    CONFIG_MODULE: _HEADER.format(what="config class")
    + "from torch_memformer.integrations.hf.config import MemformerHFConfig\n\n"
    + '__all__ = ["MemformerHFConfig"]\n',
    MODEL_MODULE: _HEADER.format(what="model class")
    + "from torch_memformer.integrations.hf.model import MemformerForCausalLM\n\n"
    + '__all__ = ["MemformerForCausalLM"]\n',
}


def write_remote_code(directory: str | Path) -> list[Path]:
    """Write the two modules into ``directory`` (created if needed); returns their paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for module, source in SOURCES.items():
        path = directory / f"{module}.py"
        path.write_text(source)
        paths.append(path)
    return paths
