"""Fault injection: ``memformer train`` killed at random moments, over and over (SIGKILL, SIGTERM,
Ctrl-C twice; before the run folder exists, before the first checkpoint, inside checkpoint
writes), each time followed by the command ``docs/cli.md`` gives. The run still ends with exactly
the per-step losses of an uninterrupted run. Real processes, killed for real."""

from __future__ import annotations

import collections
import random
import signal
import subprocess
import time

import pytest

from torch_memformer.runs import latest_checkpoint

from train_support import make_corpus, run_memformer, start_memformer, train_losses, wait_for

pytestmark = pytest.mark.slow

KILLS = 20
STEPS = 40


def _phase(run) -> str:
    if not run.exists():
        return "before the run folder"
    if latest_checkpoint(run) is None:
        return "before the first checkpoint"
    return "after a checkpoint"


def _kill(process, how: str, rng: random.Random) -> None:
    if how == "SIGINT twice":  # the first asks for a save, the second aborts (maybe inside the save)
        process.send_signal(signal.SIGINT)
        time.sleep(rng.uniform(0.0, 0.3))
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    else:
        process.send_signal(getattr(signal, how))


def test_killed_at_random_moments_the_run_ends_with_the_uninterrupted_losses(tmp_path):
    data, cache = make_corpus(tmp_path / "data"), tmp_path / "cache"
    command = ["train", "--preset", "tiny", "--data", data, "--cache-dir", cache, "--precision", "fp32",
               "--threads", "1", "--steps", str(STEPS), "--checkpoint-every", "3", "--eval-every", "5"]
    whole = run_memformer(*command, "--out", tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr

    rng = random.Random(13)
    run = tmp_path / "run"
    # Slow steps and slow checkpoint writes (test hooks) widen the moments worth hitting.
    slow = ["--debug-slow-step", "0.05", "--debug-slow-save", "0.2"]
    kills: collections.Counter = collections.Counter()
    ways: collections.Counter = collections.Counter()
    attempts = 0
    while True:
        attempts += 1
        assert attempts < 4 * KILLS, f"no end after {attempts} attempts: {dict(kills)}"
        # The documented recovery: the same command with --resume, or without it when the
        # killed run had not created its folder yet.
        resume = ["--resume"] if run.exists() else []
        log = tmp_path / f"attempt-{attempts}.log"
        process = start_memformer(*command, "--out", run, *resume, *slow, log=log)
        if sum(kills.values()) >= KILLS:
            assert process.wait(timeout=300) == 0, log.read_text()
            break
        if attempts == 1:  # the stuck state of issue 13 for sure: a step logged, no checkpoint yet
            wait_for(lambda: (run / "metrics.jsonl").exists() and "train" in (run / "metrics.jsonl").read_text(),
                     process=process, what="the first step")
            delay = 0.0
        elif rng.random() < 0.3:  # at any moment of the start-up (imports, data, model, folder)
            delay = rng.uniform(0.1, 3.0)
        else:  # at any moment once this attempt trains (steps, validation, checkpoint writes): counted
            # in steps rather than seconds, so the run's length does not depend on the machine's speed
            steps = rng.randint(1, 3)
            wait_for(lambda: log.read_text().count("| loss") >= steps or process.poll() is not None,
                     what=f"{steps} step(s)")
            delay = rng.uniform(0.0, 0.2)
        try:
            process.wait(timeout=max(delay, 0.01))
        except subprocess.TimeoutExpired:  # still running: kill it now
            phase, how = _phase(run), "SIGKILL" if attempts == 1 else rng.choice(
                ["SIGKILL", "SIGKILL", "SIGTERM", "SIGINT twice"])
            _kill(process, how, rng)
            process.wait(timeout=60)
            kills[phase] += 1
            ways[how] += 1
        # Whatever the moment, the next command was accepted: it ran, it was never refused.
        assert process.returncode != 2, log.read_text()
        if process.returncode == 0:  # it finished before the kill: the run is complete
            break

    assert sum(kills.values()) >= KILLS, f"the run ended after only {dict(kills)}; make it longer"
    assert kills["before the first checkpoint"] >= 1
    assert train_losses(run) == train_losses(tmp_path / "whole")
    assert [step for step, _ in train_losses(run)] == list(range(1, STEPS + 1))
    print(f"{sum(kills.values())} kills in {attempts} attempts: {dict(kills)}; {dict(ways)}")
