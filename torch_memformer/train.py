"""The training API's import path before issue 12 merged ``train/`` into ``training/``.

Kept so that code written against ``from torch_memformer.train import train, plan_run,
TrainConfig`` (as README and docs/cli.md showed) still runs. It only re-exports
``torch_memformer.training``'s public names; nothing in the package imports it, and new code
should import ``torch_memformer.training``. The old submodules (``train.config``,
``train.presets``, ...) are ``training.config``, ``training.presets``, ... now.
"""

# The same public names as torch_memformer.training, read from its __all__ so the two cannot drift.
from .training import *  # noqa: F401,F403
from .training import __all__  # noqa: F401
