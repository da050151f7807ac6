"""benchmarks/gpu_check.py, the GPU readiness check: its CPU smoke run works end to end, and
without a CUDA device the real run stops with one line. No GPU is needed; no timing is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"

pytestmark = pytest.mark.slow


def run_check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600)


def test_smoke_run_writes_every_result(tmp_path) -> None:
    completed = run_check("--smoke", "--out", str(tmp_path))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["ok"] and summary["smoke"]
    assert [step["name"] for step in summary["steps"]] == [
        "gpu_tests", "train_step", "mrbp_memory", "generation_batch1", "generation_batch32"]
    # The GPU tests were collected (at least one, the marker is in use) and, on a CPU, skipped.
    counts = json.loads((tmp_path / "gpu_tests.json").read_text())["counts"]
    assert counts["skipped"] >= 1 and counts["failure"] == counts["error"] == 0
    train = json.loads((tmp_path / "train_step.json").read_text())["results"]
    assert [r["precision"] for r in train] == ["bf16 autocast"]
    assert 0 < train[0]["mfu"] and 0 < train[0]["mfu_vs_peak"] < 1
    memory = json.loads((tmp_path / "mrbp_memory.json").read_text())["memory"]
    assert {(p["method"], p["segments"]) for p in memory} == {("bptt", 1), ("mrbp", 1)}
    for name, batch in (("generation_batch1", 1), ("generation_batch32", 2)):
        generation = json.loads((tmp_path / f"{name}.json").read_text())
        assert generation["batch"] == batch and generation["rows"][0]["tokens_per_second"] > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_without_cuda_the_real_run_stops_with_one_line(tmp_path) -> None:
    completed = run_check("--out", str(tmp_path / "results"))
    assert completed.returncode == 1
    assert completed.stderr.strip().splitlines() == [
        "gpu_check: no CUDA device (torch.cuda.is_available() is False); run with --smoke for the CPU smoke check"]
    assert not (tmp_path / "results").exists()
