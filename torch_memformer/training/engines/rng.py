"""Saving and restoring the random number generators, so a recomputed segment replays its dropout.

MRBP runs each segment's critical path twice: once without gradients (to collect the memories)
and once with them (to back-propagate). Its gradients equal BPTT's only if both runs draw the
same dropout masks (spec 2), so the engine snapshots the generators before the first run of a
segment and restores the snapshot before the second. The model itself has no RNG policy (style
principle 2); this is the engine's.
"""

from __future__ import annotations

import dataclasses

import torch


@dataclasses.dataclass(frozen=True)
class RngSnapshot:
    """The CPU generator's state and, when the window runs on a GPU, that device's."""

    cpu: torch.Tensor
    device: torch.device | None = None
    device_state: torch.Tensor | None = None


def capture(device: torch.device) -> RngSnapshot:
    """Snapshot the generators that ops on ``device`` draw from (the CPU's is always included:
    CPU-side ops may draw from it whatever the device)."""
    if device.type == "cuda":
        return RngSnapshot(torch.get_rng_state(), device, torch.cuda.get_rng_state(device))
    return RngSnapshot(torch.get_rng_state())


def restore(snapshot: RngSnapshot) -> None:
    """Put the generators back to ``snapshot``: the next draws repeat the ones made after it."""
    torch.set_rng_state(snapshot.cpu)
    if snapshot.device_state is not None:
        torch.cuda.set_rng_state(snapshot.device_state, snapshot.device)
