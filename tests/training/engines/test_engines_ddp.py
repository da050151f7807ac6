"""MRBP under DistributedDataParallel: two CPU processes (gloo).

MRBP all-reduces once per window (a comm hook counts the bucket reductions). After one window
each rank's gradient is the mean of the two ranks' single-process gradients
(so the one all-reduce of the window's last backward saw every earlier backward's gradient),
and after an optimizer step both ranks hold the same parameters. Then accumulation: a window
of one segment under the caller's ``no_sync`` and a longer window after it, with
``find_unused_parameters=True`` (the one-segment window trains no encoder, and without
forgetting the bias is unused), average the same way; and every method runs repeatedly on
windows that reach only some parameters.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from torch.nn.parallel import DistributedDataParallel

from engine_support import tiny_memformer
from torch_memformer import Memformer
from torch_memformer.training.engines import StepModule, backward_window

SEGMENT = 4
VOCAB = 13
WORLD = 2


def make_model(**changes) -> Memformer:
    return tiny_memformer(vocab_size=VOCAB, segment_len=SEGMENT, **changes).double()


def rank_window(rank: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(100 + rank)
    return torch.randint(0, VOCAB, (2, 3 * SEGMENT + 1), generator=generator)


def single_process_grads(rank: int) -> list[torch.Tensor]:
    model = make_model()
    backward_window(model, rank_window(rank), method="mrbp")
    return [p.grad.clone() for p in model.parameters()]


def accumulation_windows(rank: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(200 + rank)
    return [torch.randint(0, VOCAB, (2, n), generator=generator) for n in (SEGMENT, 3 * SEGMENT + 1)]


def single_process_accumulated_grads(rank: int) -> list[torch.Tensor]:
    model, state = make_model(forgetting=False), None
    for input_ids in accumulation_windows(rank):
        state = backward_window(model, input_ids, state=state, method="mrbp", loss_weight=0.5).state
    return [p.grad.clone() for p in model.parameters()]


def accumulate_under_ddp(rank: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    expected = [sum(grads) / WORLD for grads in zip(*(single_process_accumulated_grads(r) for r in range(WORLD)))]
    model = make_model(forgetting=False)
    ddp = DistributedDataParallel(StepModule(model), find_unused_parameters=True)
    first, second = accumulation_windows(rank)
    with ddp.no_sync():
        state = backward_window(ddp, first, method="mrbp", loss_weight=0.5).state
    backward_window(ddp, second, state=state, method="mrbp", loss_weight=0.5)
    return [p.grad.clone() for p in model.parameters()], expected


def windows_inside_one_segment(rank: int) -> None:
    """Each method, twice, on a window that trains no encoder: DDP (find_unused_parameters)
    must not wait for gradients through the outgoing state, or the second call fails."""
    for method in ("bptt", "checkpoint", "mrbp"):
        model = make_model()
        ddp = DistributedDataParallel(StepModule(model), find_unused_parameters=True)
        state = None
        for _ in range(2):
            state = backward_window(ddp, accumulation_windows(rank)[0], state=state, method=method).state


def worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        expected = [sum(grads) / WORLD for grads in zip(*(single_process_grads(r) for r in range(WORLD)))]
        model = make_model()
        ddp = DistributedDataParallel(StepModule(model))
        reductions = []

        def counting_allreduce(process_group, bucket):
            reductions.append(bucket.index())
            return default_hooks.allreduce_hook(process_group, bucket)

        ddp.register_comm_hook(None, counting_allreduce)
        # BPTT has one backward per window, so it shows how many bucket all-reduces one sync makes.
        backward_window(ddp, rank_window(rank), method="bptt")
        per_sync = len(reductions)
        model.zero_grad(set_to_none=True)
        reductions.clear()
        backward_window(ddp, rank_window(rank), method="mrbp")
        grads = [p.grad.clone() for p in model.parameters()]
        torch.optim.SGD(model.parameters(), lr=0.1).step()
        params = torch.cat([p.detach().flatten() for p in model.parameters()])
        others = [torch.empty_like(params) for _ in range(WORLD)]
        dist.all_gather(others, params)
        accumulated, accumulated_expected = accumulate_under_ddp(rank)
        windows_inside_one_segment(rank)
        torch.save(
            {
                "grads": grads,
                "reductions": (per_sync, len(reductions)),
                "expected": expected,
                "params": others,
                "accumulated": accumulated,
                "accumulated_expected": accumulated_expected,
            },
            os.path.join(out_dir, f"rank{rank}.pt"),
        )
    finally:
        dist.destroy_process_group()


def test_mrbp_under_ddp_averages_gradients(tmp_path) -> None:
    # Fork, with DDP's lazy imports done once here, rather than spawn: each spawned process
    # would spend seconds importing torch and torch._dynamo again.
    import torch._dynamo  # noqa: F401

    mp.start_processes(
        worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True, start_method="fork"
    )
    for rank in range(WORLD):
        saved = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        # MRBP runs 4 backwards for this window but all-reduces only in the last one.
        per_sync, mrbp_reductions = saved["reductions"]
        assert per_sync >= 1 and mrbp_reductions == per_sync
        for grad, expected in zip(saved["grads"], saved["expected"]):
            assert torch.allclose(grad, expected, rtol=1e-10, atol=1e-14)
        for grad, expected in zip(saved["accumulated"], saved["accumulated_expected"]):
            assert torch.allclose(grad, expected, rtol=1e-10, atol=1e-14)
        # The ranks saw different data, so their local gradients differed; after the step they agree.
        assert torch.equal(saved["params"][0], saved["params"][1])
    local = [single_process_grads(rank) for rank in range(WORLD)]
    assert any(not torch.allclose(a, b) for a, b in zip(*local))
