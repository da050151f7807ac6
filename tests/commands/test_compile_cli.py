"""``memformer train --compile`` and ``memformer eval --compile``: the same losses and scores as
eager (float rounding apart), and a baseline refused in one line."""

from __future__ import annotations

import json

import pytest
import torch

from torch_memformer.cli import main

from train_support import make_corpus, train_losses


@pytest.mark.slow  # compiles the tiny model's step for training and evaluation
def test_compiled_training_and_evaluation_match_eager(tmp_path, capsys, monkeypatch):
    # The flags' wiring is what is tested here, so the graphs are traced (forward and backward, as
    # inductor gets them) but not code-generated: inductor's kernels would cost minutes of CPU,
    # and tests/model/test_compile_step.py checks them against eager.
    compiled_functions = []
    real_compile = torch.compile

    def traced_compile(fn, **options):
        compiled_functions.append(fn.__name__)
        return real_compile(fn, **{**options, "backend": "aot_eager"})

    monkeypatch.setattr(torch, "compile", traced_compile)
    corpus = make_corpus(tmp_path / "corpus")
    common = ["--cache-dir", str(tmp_path / "cache")]
    runs = {}
    for name, flags in (("eager", []), ("compiled", ["--compile"])):
        assert main(["train", "--preset", "tiny", "--data", str(corpus), "--steps", "3", "--eval-every", "0",
                     "--threads", "1", "--out", str(tmp_path / name), *common, *flags]) == 0
        runs[name] = train_losses(tmp_path / name)
    assert [step for step, _ in runs["compiled"]] == [1, 2, 3]
    assert compiled_functions == ["encode_and_write", "decode"]
    compiled, eager = [loss for _, loss in runs["compiled"]], [loss for _, loss in runs["eager"]]
    # Step 1 is scored before any update: the traced graphs compute the same loss up to rounding.
    assert compiled[0] == pytest.approx(eager[0], abs=1e-5)
    # Later steps follow AdamW updates, and AdamW divides each coordinate's gradient by its own
    # size: where the true gradient is near zero (the attention key biases' is exactly zero) the
    # step is about the learning rate in a direction that rounding picks, so the two runs part by
    # more than their first losses do (5.9e-4 at step 3 with decision 20's starting weights,
    # against a loss that falls by ~0.5 over these steps).
    assert compiled[1:] == pytest.approx(eager[1:], abs=2e-3)
    assert eager[0] - eager[-1] > 0.1
    capsys.readouterr()
    scores = {}
    for name, flags in (("eager", []), ("compiled", ["--compile"])):
        assert main(["eval", "--checkpoint", str(tmp_path / "eager"), "--max-batches", "2", "--memory", "carried",
                     "--threads", "1", "--json", *common, *flags]) == 0
        scores[name] = json.loads(capsys.readouterr().out)
    assert compiled_functions == ["encode_and_write", "decode"] * 2
    carried = {name: score["carried"]["bits_per_byte"] for name, score in scores.items()}
    assert carried["compiled"] == pytest.approx(carried["eager"], abs=1e-5)


def test_compile_with_a_baseline_is_refused_in_one_line(tmp_path, capsys):
    code = main(["train", "--model", "transformer", "--compile", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "--compile compiles a Memformer's segment step" in err and "Traceback" not in err
