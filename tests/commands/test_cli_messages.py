"""The small things a new user meets first: a misspelled flag points to its own command's help,
errors name the flag that was typed, interrupt messages go to stderr, a run shorter than its
warm-up says so, and an automatic thread count says why."""

from __future__ import annotations

import logging
import os

import pytest
import torch

from torch_memformer.cli import main
from torch_memformer.commands._threads import set_threads
from torch_memformer.training import TrainResult, plan_run
from torch_memformer.training.precision import ThreadChoice, idle_cpu_choice


@pytest.mark.parametrize("args, line", [
    (["train", "--stps", "5"], "memformer train: error: unrecognized arguments: --stps 5 (did you mean --steps?) "
                               "(see 'memformer train --help')"),
    (["eval", "--checkpoint", "x", "--batchsize", "2"], "memformer eval: error: unrecognized arguments: --batchsize 2 "
                                                        "(did you mean --batch-size?) (see 'memformer eval --help')"),
    (["cache", "list", "--cache-dri", "x"], "memformer cache list: error: unrecognized arguments: --cache-dri x "
                                            "(did you mean --cache-dir?) (see 'memformer cache list --help')"),
    (["train", "--zzz"], "memformer train: error: unrecognized arguments: --zzz (see 'memformer train --help')"),
])
def test_a_misspelled_flag_points_to_its_commands_help(capsys, args, line):
    assert main(args) == 2
    assert capsys.readouterr().err == line + "\n"


@pytest.mark.parametrize("args, message", [
    (["generate", "--max-new-tokens", "-1"], "--max-new-tokens must be >= 0, got -1"),
    (["generate", "--temperature", "nan"], "--temperature must be >= 0 (0 means greedy), got nan"),
    (["generate", "--top-k", "0"], "--top-k must be >= 1, got 0"),
    (["generate", "--top-p", "1.5"], "--top-p must be in (0, 1], got 1.5"),
    (["demo", "--max-new-tokens", "-3"], "--max-new-tokens must be >= 0, got -3"),
])
def test_errors_name_the_flag_not_the_python_argument(tmp_path, capsys, args, message):
    if args[0] == "generate":
        args = [*args, "--checkpoint", str(tmp_path), "--prompt", "x"]
    assert main(args) == 2
    assert capsys.readouterr().err == f"memformer: error: {message}\n"


def _result(tmp_path, interrupted):
    return TrainResult(run_dir=tmp_path, step=3, checkpoint=tmp_path / "checkpoints" / "step-000003", loss=1.0,
                       valid=None, tokens_per_second=1.0, seconds=1.0, interrupted=interrupted)


@pytest.mark.parametrize("how", ["saved", "second ctrl-c"])
def test_interrupt_messages_go_to_stderr(tmp_path, capsys, monkeypatch, how):
    import torch_memformer.training as train_package

    def interrupted(*args, **kwargs):
        if how == "second ctrl-c":
            raise KeyboardInterrupt
        return _result(tmp_path, interrupted=True)

    monkeypatch.setattr(train_package, "train", interrupted)
    assert main(["train", "--preset", "tiny", "--threads", "1", "--out", str(tmp_path / "run")]) == 130
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert f"memformer train --out {tmp_path / 'run'} --resume" in captured.err
    assert ("saved" in captured.err) if how == "saved" else ("without saving" in captured.err)


def test_steps_below_the_warmup_warn_once(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        config, _ = plan_run(out_dir=tmp_path / "a", file_values={}, flag_values={"steps": 10, "warmup_steps": 50,
                                                                                   "lr": 1e-3}, resume=False)
    [warning] = [r.getMessage() for r in caplog.records]
    assert warning == ("--steps 10 is below --warmup-steps 50: the learning rate rises to 0.0002 at the last step and "
                       "never reaches its peak --lr 0.001; lower --warmup-steps to reach it")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        plan_run(out_dir=tmp_path / "b", file_values={}, flag_values={"steps": 50, "warmup_steps": 50}, resume=False)
    assert not caplog.records


def test_an_automatic_thread_count_says_why(monkeypatch, caplog):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(os, "getloadavg", lambda: (1.25, 0.5, 0.2))  # a niced background job on one core
    assert idle_cpu_choice() == ThreadChoice(threads=1, cores=2, load=1.25)
    assert ThreadChoice(threads=2, cores=2, load=0.1).reason().startswith("2 CPU thread(s): all 2 core(s) idle")

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    try:
        with caplog.at_level(logging.INFO):
            set_threads(None)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert caplog.messages == ["1 CPU thread(s) for 2 core(s): the 1-minute load average is 1.25, so other jobs keep "
                               "1 core(s) busy (even at low priority); --threads N overrides"]
