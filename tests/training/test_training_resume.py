"""Crash safety of ``memformer train``: SIGKILL mid-run, then ``--resume``, gives the uninterrupted
run's losses exactly (CPU, same seed); SIGKILL in the middle of a checkpoint write leaves the
previous checkpoint loadable and resumable. Real processes, killed for real."""

from __future__ import annotations

import signal

import pytest

from torch_memformer.checkpoint import load_model
from torch_memformer.runs import latest_checkpoint, list_checkpoints
from torch_memformer.training.training_state import read_training_state

from train_support import make_corpus, run_memformer, start_memformer, train_losses, wait_for

pytestmark = pytest.mark.slow


def _common(data, cache):
    return ["train", "--preset", "tiny", "--data", data, "--cache-dir", cache, "--precision", "fp32",
            "--steps", "8", "--checkpoint-every", "2", "--eval-every", "4"]


def _latest_is(run, name):
    def check():
        try:
            return (run / "latest").read_text().strip() == f"checkpoints/{name}"
        except OSError:
            return False
    return check


def test_sigkill_then_resume_gives_the_uninterrupted_losses(tmp_path):
    data, cache = make_corpus(tmp_path / "data"), tmp_path / "cache"
    # The uninterrupted run and the one to be killed run side by side (same token cache).
    whole = start_memformer(*_common(data, cache), "--out", tmp_path / "whole", log=tmp_path / "whole.log")
    run = tmp_path / "killed"
    process = start_memformer(*_common(data, cache), "--out", run, "--debug-slow-step", "0.3", log=tmp_path / "log")
    try:
        wait_for(_latest_is(run, "step-000004"), process=process, what="the step-4 checkpoint")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        assert whole.wait(timeout=120) == 0, (tmp_path / "whole.log").read_text()
    finally:
        process.kill()
        whole.kill()
    assert process.returncode == -signal.SIGKILL
    killed_at = max(step for step, _ in train_losses(run))
    assert 4 <= killed_at < 8  # it died mid-run, possibly after logging a step past the checkpoint

    resumed = run_memformer("train", "--out", run, "--resume", "--cache-dir", cache)
    assert resumed.returncode == 0, resumed.stderr
    expected = train_losses(tmp_path / "whole")
    assert [step for step, _ in expected] == list(range(1, 9))
    # Exactly equal, step by step: weights, AdamW moments, stream position, carried memory and
    # random generators all came back from the checkpoint; the steps after it were logged once.
    assert train_losses(run) == expected


def test_sigkill_during_a_checkpoint_write_keeps_the_previous_checkpoint(tmp_path):
    data, cache, run = make_corpus(tmp_path / "data"), tmp_path / "cache", tmp_path / "run"
    first = run_memformer(*_common(data, cache), "--steps", "4", "--out", run)
    assert first.returncode == 0, first.stderr
    before = (run / "checkpoints" / "step-000004" / "model.safetensors").read_bytes()

    process = start_memformer("train", "--out", run, "--resume", "--steps", "6", "--cache-dir", cache,
                               "--debug-slow-save", "60", log=tmp_path / "log")
    try:
        # The hook sleeps after the files are written into the temporary directory, before it is
        # renamed into place: kill exactly there.
        def half_written():
            return any(p.name.startswith(".step-000006.tmp-") and (p / "trainer_state.json").exists()
                       for p in (run / "checkpoints").iterdir())
        wait_for(half_written, process=process, what="the half-written step-6 checkpoint")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        process.kill()

    assert latest_checkpoint(run).name == "step-000004"
    assert [step for step, _ in list_checkpoints(run)] == [2, 4]  # nothing half-written was published
    checkpoint = run / "checkpoints" / "step-000004"
    assert (checkpoint / "model.safetensors").read_bytes() == before
    load_model(checkpoint)
    assert read_training_state(checkpoint).step == 4

    again = run_memformer("train", "--out", run, "--resume", "--steps", "6", "--cache-dir", cache)
    assert again.returncode == 0, again.stderr
    assert [step for step, _ in train_losses(run)] == list(range(1, 7))
    assert latest_checkpoint(run).name == "step-000006"
    assert not any(p.name.startswith(".") for p in (run / "checkpoints").iterdir())  # the leftover was cleaned up
