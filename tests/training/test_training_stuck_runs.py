"""No run folder can get stuck: a folder left by a run killed before its first checkpoint
(``metrics.jsonl`` and ``tensorboard/`` only) is accepted both by the same ``memformer train``
command and by ``--resume``; a checkpoint write that fails (disk full) or a ``metrics.jsonl`` line
cut in half leaves a folder ``--resume`` continues with the uninterrupted run's losses."""

from __future__ import annotations

import errno
import json
import logging
import shutil
import signal

import pytest

from torch_memformer.cli import main
from torch_memformer.runs import latest_checkpoint
from torch_memformer.training.resume import RUN_CONFIG_FILE, load_run_config

from train_support import make_corpus, run_memformer, start_memformer, train_losses, wait_for


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A corpus, a token cache and the losses of an uninterrupted 8-step tiny run."""
    root = tmp_path_factory.mktemp("stuck")
    data, cache = make_corpus(root / "data"), root / "cache"
    flags = ["--preset", "tiny", "--data", str(data), "--cache-dir", str(cache), "--precision", "fp32",
             "--threads", "1"]
    assert main(["train", *flags, "--out", str(root / "whole")]) == 0
    return flags, train_losses(root / "whole"), root / "whole"


def _stuck_folder(run):
    """What a run SIGKILLed before its first checkpoint leaves (an older version: no train_config.json),
    with the last metrics line cut in half."""
    (run / "tensorboard").mkdir(parents=True)
    (run / "tensorboard" / "events.out.tfevents.1.host.1.0").write_bytes(b"\x00stale events")
    records = [{"kind": "train", "step": s, "loss": 9.0 + s} for s in (1, 2)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records) + '{"kind": "train", "st')


@pytest.mark.parametrize("resume", [False, True], ids=["same-command", "resume"])
def test_a_folder_without_a_checkpoint_starts_again_from_step_0(setup, tmp_path, caplog, capsys, resume):
    flags, expected, _ = setup
    run = tmp_path / "run"
    _stuck_folder(run)
    with caplog.at_level(logging.WARNING):
        code = main(["train", *flags, "--out", str(run), *(["--resume"] if resume else [])])
    assert code == 0, capsys.readouterr().err
    warnings = [r.getMessage() for r in caplog.records if "before its first" in r.getMessage()]
    assert len(warnings) == 1 and "starting it again from step 0" in warnings[0]
    assert train_losses(run) == expected  # the old records (and the torn line) are gone
    assert not (run / "tensorboard" / "events.out.tfevents.1.host.1.0").exists()
    assert load_run_config(run).steps == 8


@pytest.mark.slow  # two training processes, one killed
def test_a_run_sigkilled_before_its_first_checkpoint_resumes_from_step_0(setup, tmp_path):
    flags, expected, _ = setup
    run = tmp_path / "run"
    process = start_memformer("train", *flags, "--out", run, "--checkpoint-every", "1000", "--debug-slow-step", "2",
                              log=tmp_path / "log")
    try:
        wait_for(lambda: "train" in (run / "metrics.jsonl").read_text() if (run / "metrics.jsonl").exists() else False,
                 process=process, what="the first step's metrics")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        process.kill()
    assert latest_checkpoint(run) is None and (run / RUN_CONFIG_FILE).is_file()

    # The documented command, without repeating the run's flags: the settings come from train_config.json.
    # --threads is the machine's, not the run's: the same one thread as the reference run, since
    # float sums (and so the losses' last bits) depend on how many threads split them.
    resumed = run_memformer("train", "--out", run, "--resume", "--cache-dir", flags[flags.index("--cache-dir") + 1],
                            "--threads", "1")
    assert resumed.returncode == 0, resumed.stderr
    assert "starting it again from step 0" in resumed.stderr and "Traceback" not in resumed.stderr
    assert train_losses(run) == expected


def test_resume_without_a_checkpoint_still_refuses_contradicting_flags(setup, tmp_path, capsys):
    flags, _, _ = setup
    run = tmp_path / "run"
    assert main(["train", *flags, "--out", str(run), "--steps", "2", "--checkpoint-every", "1000"]) == 0
    shutil.rmtree(run / "checkpoints")  # as if killed before the checkpoint at the end
    (run / "latest").unlink()
    capsys.readouterr()
    assert main(["train", "--out", str(run), "--resume", "--batch-size", "3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--batch-size 3 contradicts the run being resumed" in err


def test_a_checkpoint_write_that_fails_leaves_a_resumable_folder(setup, tmp_path, capsys, monkeypatch):
    flags, expected, _ = setup
    run = tmp_path / "run"
    import torch_memformer.training.loop as loop

    real = loop.write_training_state
    calls = []

    def disk_full_at_the_second(directory, state):
        calls.append(state.step)
        if len(calls) == 2:
            (directory / "partial").write_bytes(b"\x00" * 10)
            raise OSError(errno.ENOSPC, "No space left on device")
        real(directory, state)

    monkeypatch.setattr(loop, "write_training_state", disk_full_at_the_second)
    assert main(["train", *flags, "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device" in err and "earlier checkpoints are intact" in err
    assert latest_checkpoint(run).name == "step-000004"
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-000004"]  # nothing half-written is left

    monkeypatch.setattr(loop, "write_training_state", real)
    # The crash wrote steps 5..8 to metrics.jsonl, the last line cut; resume drops them and redoes them.
    with open(run / "metrics.jsonl", "a") as handle:
        handle.write('{"kind": "train", "loss": 1.0, "st')
    # --threads 1 as in the reference run: without it the thread count follows the load average,
    # and float sums (so the losses' last bits) depend on how many threads split them.
    assert main(["train", "--out", str(run), "--resume", "--cache-dir", flags[flags.index("--cache-dir") + 1],
                 "--threads", "1"]) == 0
    assert train_losses(run) == expected


def test_an_os_error_is_one_line_and_exit_code_1(tmp_path, capsys, monkeypatch):
    import torch_memformer.training as train_package

    def broken(**kwargs):
        raise OSError(errno.EIO, "Input/output error", str(tmp_path / "x"))

    monkeypatch.setattr(train_package, "plan_run", broken)
    assert main(["train", "--out", str(tmp_path / "run")]) == 1
    assert capsys.readouterr().err == f"memformer: error: Input/output error: {tmp_path / 'x'}\n"


def test_resuming_a_finished_run_is_done_not_an_error(setup, capsys):
    """A run killed after its last checkpoint but before it exited: the documented command
    (the same one with --resume) must not be refused."""
    flags, expected, whole = setup
    capsys.readouterr()
    assert main(["train", *flags, "--out", str(whole), "--resume"]) == 0
    out = capsys.readouterr().out
    assert "already finished its 8 steps" in out and "nothing to do" in out
    assert train_losses(whole) == expected
