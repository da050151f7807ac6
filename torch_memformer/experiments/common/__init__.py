"""What every experiment shares; not an experiment itself (``experiments/__init__.py`` skips packages).

- ``machine``: the machine, versions, date and load an experiment ran under; process memory; torch threads.
- ``flops``: FLOP counting with ``torch.utils.flop_counter``, including the CPU attention kernel.
- ``processes``: running measurements in a fresh process, so its memory is its own.
- ``comparison_plan``: the plan fields (sizes, training recipe) of the experiments that train
  Memformer and its baselines on one budget (the memory tasks, digits).
- ``models``: the three models (Memformer, Transformer-XL, plain Transformer) at comparable sizes.
- ``report``: writing ``<out>/<name>.json`` + ``.png``, markdown tables, the marked blocks of
  ``docs/results.md``.
"""
