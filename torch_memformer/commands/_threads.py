"""The ``--threads`` flag of the commands that run a model (not a command itself)."""

from __future__ import annotations

import logging
import os

from ..errors import UserError


def set_threads(requested: int | None) -> None:
    """``--threads N``: N CPU threads (0: PyTorch's default, one per core). Not given: the idle
    cores by the load average (``training.precision.idle_cpu_threads``), unless OMP_NUM_THREADS
    says."""
    import torch

    from ..training.precision import check_threads, idle_cpu_choice

    if requested is not None and requested < 0:
        raise UserError(f"--threads must be >= 0, got {requested}")
    if requested is not None:
        check_threads(requested)
    if requested is None:
        if "OMP_NUM_THREADS" in os.environ:
            return
        choice = idle_cpu_choice()
        if choice.threads < choice.cores:  # the surprising case says why
            logging.getLogger(__name__).info("%s", choice.reason())
        requested = choice.threads
    if requested:
        torch.set_num_threads(requested)
