"""GPU readiness check: the GPU tests and the throughput benchmarks on a CUDA device, in one folder.

Issue 14. Meant for the first minutes on a CUDA machine (under 10 minutes in all, each step with a
time limit): every result lands in ``--out`` as JSON, with a ``summary.json`` listing each step's
command, exit code, seconds and files.

1. ``gpu_tests``: pytest on the tests marked ``gpu`` (pyproject.toml), from the test files that
   use the marker. On a CUDA machine a skipped GPU test fails the step: it should have run.
2. ``train_step``: the one-segment training step in bf16 autocast, MFU against the same-shape
   matmul rate and against the device's peak matmul rate (``train_step.py``).
3. ``mrbp_memory``: peak training memory (``torch.cuda.max_memory_allocated``) and speed of BPTT,
   checkpointing and MRBP for windows of 1, 4 and 16 segments (``mrbp_memory.py``).
4. ``generation``: ms per generated token at batch 1 and at batch 32, the latter beside this
   project's Transformer-XL and x-transformers' (if installed), side by side (``generation.py``).

Without a CUDA device it stops at once with one line. ``--smoke`` runs the same four steps on the
CPU at tiny sizes in seconds; ``tests/benchmarks/test_gpu_check.py`` runs it so the script cannot
rot while no GPU is at hand.

    python benchmarks/gpu_check.py --out gpu_check_results            # on a CUDA machine
    python benchmarks/gpu_check.py --smoke --out /tmp/gpu_check_smoke   # anywhere, seconds
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
REPO = BENCHMARKS.parent
NO_CUDA = "gpu_check: no CUDA device (torch.cuda.is_available() is False); run with --smoke for the CPU smoke check"


@dataclasses.dataclass(frozen=True)
class Step:
    name: str
    command: list[str]
    timeout_s: int
    outputs: list[str]  # files under --out the step must leave


def gpu_test_files() -> list[str]:
    """Test files that use the ``gpu`` marker: collecting only these keeps the step fast."""
    return sorted(str(path.relative_to(REPO)) for path in (REPO / "tests").rglob("test_*.py")
                  if "mark.gpu" in path.read_text())


def plan(out: Path, smoke: bool) -> list[Step]:
    """The four steps; ``smoke`` swaps CUDA and the benchmark sizes for the CPU and tiny ones."""
    python = sys.executable
    device = "cpu" if smoke else "cuda"
    tests = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu", *gpu_test_files(),
             f"--junitxml={out / 'gpu_tests.xml'}"]
    train = [python, str(BENCHMARKS / "train_step.py"), "--device", device, "--precisions", "bf16", "--out", str(out)]
    mrbp = [python, str(BENCHMARKS / "mrbp_memory.py"), "--device", device, "--out", str(out)]
    generation = [python, str(BENCHMARKS / "generation.py"), "--device", device, "--out", str(out)]
    if smoke:
        train += ["--size", "tiny", "--steps", "2", "--warmup", "1", "--hot-seconds", "0.001", "--threads", "1"]
        mrbp += ["--size", "tiny", "--ks", "1", "--methods", "bptt,mrbp", "--batch", "2", "--warmup-segments", "1",
                 "--repeats", "1"]
        sizes = ["--size", "tiny", "--positions", "16", "--tokens", "8", "--repeats", "1", "--threads", "1"]
    else:
        mrbp += ["--size", "paper", "--ks", "1,4,16", "--repeats", "2"]
        sizes = ["--positions", "1024,16384", "--tokens", "256", "--repeats", "3"]
    # The time limits sum to 600 s: the whole check ends within 10 minutes whatever hangs.
    return [
        Step("gpu_tests", tests, 120, ["gpu_tests.xml"]),
        Step("train_step", train, 120, ["train_step.json"]),
        Step("mrbp_memory", mrbp, 180, ["mrbp_memory.json"]),
        Step("generation_batch1", generation + sizes + ["--batch", "1", "--name", "generation_batch1"], 60,
             ["generation_batch1.json"]),
        Step("generation_batch32", generation + sizes + ["--batch", "2" if smoke else "32", "--baselines", "xtransformers_xl,project_xl",
                                                         "--name", "generation_batch32"], 120,
             ["generation_batch32.json"]),
    ]


def run_step(step: Step, out: Path) -> dict:
    """Run one step with its time limit, its output in ``<name>.log``; what it did, as a dict."""
    log = out / f"{step.name}.log"
    # This checkout first on the path, whatever copy of the package the interpreter has installed.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    start = time.perf_counter()
    with log.open("w") as handle:
        try:
            returncode = subprocess.run(step.command, cwd=REPO, stdout=handle, stderr=subprocess.STDOUT,
                                        env=env, timeout=step.timeout_s).returncode
        except subprocess.TimeoutExpired:
            returncode = None
    missing = [name for name in step.outputs if not (out / name).is_file()]
    return {"name": step.name, "command": step.command, "timeout_s": step.timeout_s, "returncode": returncode,
            "seconds": round(time.perf_counter() - start, 1), "log": log.name, "missing_outputs": missing,
            "ok": returncode == 0 and not missing}


def test_counts(junit_xml: Path) -> dict:
    """Passed / failed / errors / skipped of a pytest junit report, and each test's outcome."""
    suite = ElementTree.parse(junit_xml).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    outcomes = {}
    for case in suite.iter("testcase"):
        outcome = next((child.tag for child in case if child.tag in ("failure", "error", "skipped")), "passed")
        outcomes[f"{case.get('classname')}::{case.get('name')}"] = outcome
    counts = {kind: sum(1 for o in outcomes.values() if o == kind) for kind in ("passed", "failure", "error", "skipped")}
    return {"counts": counts, "tests": outcomes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for every JSON, plot and log")
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny sizes, seconds: checks the plumbing only")
    args = parser.parse_args()
    import torch

    if not args.smoke and not torch.cuda.is_available():
        raise SystemExit(NO_CUDA)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    steps = []
    for step in plan(out, args.smoke):
        result = run_step(step, out)
        if step.name == "gpu_tests" and (out / "gpu_tests.xml").is_file():
            result["tests"] = test_counts(out / "gpu_tests.xml")
            (out / "gpu_tests.json").write_text(json.dumps(result["tests"], indent=2) + "\n")
            # On a GPU every GPU test must run; in a smoke run they are all skipped, by design.
            if not args.smoke and result["tests"]["counts"]["skipped"]:
                result["ok"] = False
        print(f"{step.name:>20}: {'ok' if result['ok'] else 'FAILED'} in {result['seconds']} s "
              f"(log {out / result['log']})", flush=True)
        steps.append(result)
    summary = {"smoke": args.smoke, "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
               "torch": torch.__version__, "ok": all(step["ok"] for step in steps),
               "seconds": round(sum(step["seconds"] for step in steps), 1), "steps": steps}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"gpu_check: {'all steps ok' if summary['ok'] else 'some steps FAILED'} in {summary['seconds']} s; "
          f"results in {out}")
    sys.exit(0 if summary["ok"] else 1)


if __name__ == "__main__":
    main()
