"""``memformer train`` under ``torchrun --nproc_per_node=2`` on CPU (gloo): each rank trains its
own rows of the stream; the loss matches one process over the same rows, and the ranks'
parameters agree bit for bit at the end."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest
import torch

from torch_memformer.checkpoint import load_model
from torch_memformer.runs import resolve_checkpoint

from train_support import REPO, cli_env, make_corpus, run_memformer, train_losses

pytestmark = pytest.mark.slow

# Same rows, same gradients up to the order of float32 additions (two per-rank sums all-reduced
# vs one sum): after 8 AdamW steps the losses agree to a few parts in 10^7; 1e-5 leaves room.
RELATIVE_TOLERANCE = 1e-5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one_process_over_the_same_rows(tmp_path):
    data, cache = make_corpus(tmp_path / "data"), tmp_path / "cache"
    common = ["train", "--preset", "tiny", "--data", str(data), "--cache-dir", str(cache), "--precision", "fp32",
              "--steps", "6", "--eval-every", "3", "--checkpoint-every", "3"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
                f"--master_port={_free_port()}", "-m", "torch_memformer"]
    ddp = subprocess.Popen([*torchrun, *common, "--batch-size", "1", "--out", str(tmp_path / "ddp")], env=cli_env(),
                           cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    single = run_memformer(*common, "--batch-size", "2", "--out", tmp_path / "single")
    output, _ = ddp.communicate(timeout=180)
    assert ddp.returncode == 0, output
    assert single.returncode == 0, single.stderr

    distributed, alone = train_losses(tmp_path / "ddp"), train_losses(tmp_path / "single")
    assert [s for s, _ in distributed] == [s for s, _ in alone] == list(range(1, 7))
    for (step, a), (_, b) in zip(distributed, alone):
        assert abs(a - b) <= RELATIVE_TOLERANCE * abs(b), (step, a, b)
    # Not trivially equal: the two runs' losses are different numbers that happen to be close.
    assert alone[0][1] != alone[-1][1]

    events = [json.loads(line) for line in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    sync = [e for e in events if e["kind"] == "event" and "ranks_in_sync" in e]
    assert sync and sync[-1]["ranks_in_sync"] is True and sync[-1]["parameter_spread"] == 0.0
    # Only rank 0 wrote: one record per step, one checkpoint per save, and it loads.
    assert len([e for e in events if e["kind"] == "train"]) == 6
    state = json.loads((tmp_path / "ddp" / "checkpoints" / "step-000006" / "trainer_state.json").read_text())
    assert state["world_size"] == 2
    load_model(tmp_path / "ddp" / "checkpoints" / "step-000006")
    # The final weights of the two runs agree as closely as the losses do, apart from the
    # attention key biases: adding b to every key adds q.b to every logit of a query, which the
    # softmax ignores, so their true gradient is zero and what they get is rounding noise, which
    # AdamW turns into steps of about the learning rate, differently in the two runs. They change
    # no output: the two final models' logits agree as closely as the other weights.
    ddp_model = load_model(resolve_checkpoint(tmp_path / "ddp")).model
    single_model = load_model(resolve_checkpoint(tmp_path / "single")).model
    a, b = _without_key_biases(ddp_model), _without_key_biases(single_model)
    assert a.keys() == b.keys() and len(a) > 20
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-5
    ids = torch.randint(0, ddp_model.config.vocab_size, (2, 40), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert float((ddp_model(ids).logits - single_model(ids).logits).abs().max()) < 1e-5

    # Resuming a 2-process checkpoint with one process is refused: each rank owns its rows.
    refused = run_memformer("train", "--out", tmp_path / "ddp", "--resume", "--steps", "8", "--cache-dir", cache)
    assert refused.returncode == 2
    assert "written by 2 process(es)" in refused.stderr and "Traceback" not in refused.stderr


def _without_key_biases(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's parameters with the key parts of its attention biases left out (the softmax
    is invariant to them: see the test)."""
    d = model.config.d_model
    kept = {}
    for name, tensor in model.state_dict().items():
        if name.endswith("key_value.bias"):  # [keys; values]: keep the values
            tensor = tensor[d:]
        elif name.endswith("qkv.bias"):  # [queries; keys; values]
            tensor = torch.cat([tensor[:d], tensor[2 * d:]])
        elif name.endswith("writer.key.bias"):  # the slot's own key and the tokens' share it
            continue
        kept[name] = tensor
    return kept
