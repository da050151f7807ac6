"""Helpers for the ``memformer train/eval/generate`` tests: a tiny corpus on disk and a way to run
the command in a fresh process (the resume, kill and DDP tests need real processes)."""

from __future__ import annotations

import json
import lzma
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def python_like_text(index: int, lines: int = 30) -> str:
    body = []
    for i in range(lines):
        body.append(f"    value_{i} = compute(item_{index}, {i * index % 97})  # step {i}")
        if i % 7 == 6:
            body.append(f"    if value_{i} > {i}:\n        return value_{i}")
    return f"def function_{index}(item_{index}):\n" + "\n".join(body) + "\n    return None\n"


def make_corpus(root: Path, *, train_docs: int = 24, valid_docs: int = 3) -> Path:
    """A split directory: train.jsonl.xz and valid.jsonl, a few KB of Python-like text."""
    root.mkdir(parents=True, exist_ok=True)
    with lzma.open(root / "train.jsonl.xz", "wt", encoding="utf-8") as handle:
        for i in range(train_docs):
            handle.write(json.dumps({"text": python_like_text(i)}) + "\n")
    with open(root / "valid.jsonl", "w", encoding="utf-8") as handle:
        for i in range(valid_docs):
            handle.write(json.dumps({"text": python_like_text(1000 + i)}) + "\n")
    return root


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def memformer_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch_memformer", *map(str, args)]


def run_memformer(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(memformer_command(*args), env=cli_env(), cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def start_memformer(*args: str, log: Path) -> subprocess.Popen:
    handle = open(log, "w")
    return subprocess.Popen(memformer_command(*args), env=cli_env(), cwd=REPO, stdout=handle, stderr=subprocess.STDOUT)


def wait_for(condition, *, timeout: float = 90, process: subprocess.Popen | None = None, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the process ended (code {process.returncode}) before {what}")
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def train_losses(run_dir: Path) -> list[tuple[int, float]]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in records if r["kind"] == "train"]
