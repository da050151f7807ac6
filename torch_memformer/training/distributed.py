"""Distributed training under ``torchrun``: process group, DDP wrapping, and the collectives the
loop needs (sums, gathering rows for a checkpoint, checking the ranks agree).

    torchrun --nproc_per_node=2 -m torch_memformer train --data ...

Each rank reads its own rows of the same stream layout (``TrainStream(rank=, world_size=)``), so
two ranks of batch B see exactly what one process of batch 2B sees. Gradients are averaged by
DDP; each rank's loss is weighted by its share of the global target count first, so the
averaged gradient is the gradient of the token mean over all ranks' rows: the same as one
process over the same rows. Only rank 0 writes files.
"""

from __future__ import annotations

import dataclasses
import datetime
import os

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .engines import StepModule


@dataclasses.dataclass(frozen=True)
class DistInfo:
    """This process's place: rank r of world_size, local_rank on its machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def from_environment() -> DistInfo:
    """The ranks torchrun exports (RANK, WORLD_SIZE, LOCAL_RANK); a single process otherwise.

    Read by the command layer and passed down, never deeper in the library."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    return DistInfo(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))


def init_process_group(info: DistInfo, device: torch.device) -> None:
    """gloo on CPU, NCCL on CUDA (torchrun's MASTER_ADDR/MASTER_PORT say where to meet)."""
    if not info.enabled or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size,
                            timeout=datetime.timedelta(minutes=30))


def destroy_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module, info: DistInfo, device: torch.device) -> nn.Module:
    """The module a training step runs through: the model itself, or a DDP wrapper.

    ``find_unused_parameters=True``: a window's last backward need not reach every parameter (a
    one-segment window trains no encoder; the no-forgetting ablation reaches the memory bias only
    through rows that start fresh), and DDP would otherwise wait for those gradients forever.
    """
    if not info.enabled:
        return model
    # One StepModule for every model: the baselines' window step calls the model several times
    # (once per stretch between resets) before one backward, and running the whole step inside
    # one DDP forward gives one all-reduce per window, as for Memformer's engines.
    inner = StepModule(model)
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(inner, device_ids=device_ids, find_unused_parameters=True)


def all_reduce_sum(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """The elementwise sum over ranks (the tensor itself on one process)."""
    if info.enabled:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def gather_rows(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Every rank's ``tensor`` (same shape on all ranks) stacked along axis 0, rank order."""
    if not info.enabled:
        return tensor
    as_bool = tensor.dtype == torch.bool
    source = tensor.to(torch.uint8) if as_bool else tensor
    source = source.contiguous()
    parts = [torch.empty_like(source) for _ in range(info.world_size)]
    dist.all_gather(parts, source)
    gathered = torch.cat(parts)
    return gathered.bool() if as_bool else gathered


def gather_rng(info: DistInfo, device: torch.device) -> list[dict[str, torch.Tensor]]:
    """Each rank's random generator states (CPU, and CUDA when training there), rank order."""
    mine = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        mine["cuda"] = torch.cuda.get_rng_state(device)
    if not info.enabled:
        return [mine]
    comm_device = device if device.type == "cuda" else torch.device("cpu")
    gathered: list[dict[str, torch.Tensor]] = [{} for _ in range(info.world_size)]
    for kind, value in mine.items():
        parts = [torch.empty_like(value, device=comm_device) for _ in range(info.world_size)]
        dist.all_gather(parts, value.to(comm_device))
        for rank, part in enumerate(parts):
            gathered[rank][kind] = part.cpu()
    return gathered


def parameter_spread(model: nn.Module, info: DistInfo) -> float:
    """The largest difference between ranks of any parameter's checksums (0.0 when in sync).

    Each rank reduces every parameter to (sum, sum of squares, a position-weighted sum) in
    float64; identical parameters give identical checksums bit for bit, and a drifted rank
    would differ in at least one of them.
    """
    if not info.enabled:
        return 0.0
    sums = []
    with torch.no_grad():
        for parameter in model.parameters():
            flat = parameter.detach().double().flatten()
            weights = torch.arange(1, flat.numel() + 1, dtype=torch.float64, device=flat.device)
            sums.append(torch.stack([flat.sum(), flat.square().sum(), (flat * weights).sum()]))
    checksums = torch.stack(sums).flatten()
    spread = checksums.clone()
    low = checksums.clone()
    dist.all_reduce(spread, op=dist.ReduceOp.MAX)
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    return float((spread - low).abs().max())
