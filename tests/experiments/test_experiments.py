"""``memformer bench``: the experiments' --quick runs write their files, the results page keeps
every other section when a block is replaced, and mistakes end as one line with exit code 2.

The quick runs check the output files and their keys, never the numbers (those are measured in
the default runs and recorded in docs/results.md).
"""

from __future__ import annotations

import json

import pytest

from torch_memformer import experiments
from torch_memformer.cli import main
from torch_memformer.experiments.common import report

PAGE = "# Results\n\nIntro.\n\n## Someone else's section\n\nTheir numbers.\n"
SHARED_KEYS = {"name", "title", "quick", "environment", "load_average_end", "arguments", "markdown", "files"}
ENVIRONMENT_KEYS = {"date", "command", "cpu", "cpu_count", "load_average", "torch_threads", "python", "torch"}


def _run_quick(name, tmp_path, capsys, *extra):
    page = tmp_path / "results.md"
    page.write_text(PAGE)
    out = tmp_path / "out"
    code = main(["bench", name, "--quick", *extra, "--out", str(out), "--update-results", "--results-doc", str(page)])
    printed = capsys.readouterr().out
    assert code == 0
    result = json.loads((out / f"{name}.json").read_text())
    assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert SHARED_KEYS <= set(result)
    assert ENVIRONMENT_KEYS <= set(result["environment"])
    assert result["name"] == name and result["quick"] is True
    assert result["environment"]["command"].startswith(f"memformer bench {name} --quick")
    assert result["files"] == {"json": str(out / f"{name}.json"), "png": str(out / f"{name}.png")}
    # The command prints the table, and the page holds it in the experiment's block, links
    # relative to the page, with the other sections untouched.
    assert result["markdown"].strip() in printed
    text = page.read_text()
    begin, end = report.markers(name)
    assert text.startswith(PAGE.rstrip())
    block = text[text.index(begin) : text.index(end)]
    assert result["markdown"].strip() in block
    assert f"](out/{name}.png)" in block and f"](out/{name}.json)" in block
    assert "Quick run" in block
    return result


@pytest.mark.slow  # an experiment run end to end
def test_efficiency_quick_writes_its_files(tmp_path, capsys):
    result = _run_quick("efficiency", tmp_path, capsys)
    assert {"sizes", "plan", "parameters", "length_sweep", "memory_sweep", "comparison"} <= set(result)
    lengths, memory_sizes = result["plan"]["lengths"], result["plan"]["memory_sizes"]
    assert [row["length"] for row in result["length_sweep"]] == lengths
    for row in result["length_sweep"]:
        for name in ("transformer", "transformer-xl", "memformer"):
            assert {"flops", "flops_per_token", "seconds", "seconds_all", "us_per_token", "cpu_us_per_token"} <= set(
                row[name])
    assert [row["memory_size"] for row in result["memory_sweep"]] == memory_sizes
    for row in result["memory_sweep"]:
        for name in ("transformer-xl", "memformer"):
            assert {"state_bytes_per_row", "inference_peak_growth_bytes", "training_peak_growth_bytes",
                    "flops_per_token"} <= set(row[name])
    assert {"flops_ratio_vs_memformer", "training_peak_growth", "state_ratio_txl_vs_memformer"} <= set(
        result["comparison"])


@pytest.mark.slow  # an experiment run end to end
def test_streaming_quick_writes_its_files(tmp_path, capsys):
    result = _run_quick("streaming", tmp_path, capsys)
    assert {"sizes", "plan", "models", "rows", "memformer_round_robin", "summary", "memory_limit_bytes"} <= set(result)
    assert [row["position"] for row in result["rows"]] == result["plan"]["positions"]
    for row in result["rows"]:
        for name in ("memformer", "transformer"):
            assert {"ms_per_token", "ms_per_token_windows", "cpu_ms_per_token", "rss_bytes", "peak_rss_bytes",
                    "state_bytes", "advance_seconds", "cache_positions_repeated"} <= set(row[name])
    assert [entry["position"] for entry in result["memformer_round_robin"]] == result["plan"]["positions"]
    assert all({"ms_per_token", "cpu_ms_per_token", "ms_per_token_windows"} <= set(entry)
               for entry in result["memformer_round_robin"])
    # The quick plan grows the Transformer's cache past --advance-limit by repetition.
    assert result["rows"][-1]["transformer"]["cache_positions_repeated"] > 0
    assert {"memformer_time_spread", "memformer_cpu_time_spread", "memformer_flat", "transformer_time_growth"} <= set(
        result["summary"])


def test_update_results_doc_replaces_only_its_block(tmp_path):
    page = tmp_path / "results.md"
    page.write_text(PAGE)
    report.update_results_doc(page, "efficiency", "## Efficiency\n\nfirst\n")
    report.update_results_doc(page, "streaming", "## Streaming\n\nS\n")
    report.update_results_doc(page, "efficiency", "## Efficiency\n\nsecond\n")
    text = page.read_text()
    assert text.startswith(PAGE.rstrip())
    assert "first" not in text and text.count("second") == 1 and text.count("## Streaming\n\nS") == 1
    # Prose after a block (outside the markers) survives a re-run.
    page.write_text(text.replace("<!-- /bench:efficiency -->", "<!-- /bench:efficiency -->\n\nHand-written reading."))
    report.update_results_doc(page, "efficiency", "## Efficiency\n\nthird\n")
    text = page.read_text()
    assert "third" in text and "second" not in text and "Hand-written reading." in text
    assert text.index("third") < text.index("Hand-written reading.") < text.index("## Streaming")


def test_update_results_doc_refuses_broken_markers(tmp_path):
    page = tmp_path / "results.md"
    page.write_text(PAGE + "\n<!-- /bench:efficiency -->\n<!-- bench:efficiency -->\n")
    with pytest.raises(ValueError, match="fix the page by hand"):
        report.update_results_doc(page, "efficiency", "x")


def test_experiments_are_discovered():
    assert {"efficiency", "streaming"} <= set(experiments.names())
    assert "common" not in experiments.names()
    with pytest.raises(ValueError, match="the experiments are: .*efficiency"):
        experiments.load("nope")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["bench"], "name an experiment: "),
        (["bench", "nope"], "unknown experiment 'nope'; the experiments are: "),
        (["bench", "efficiency", "--lengths", "64,32"], "increasing order"),
        (["bench", "streaming", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
        (["bench", "efficiency", "--quick", "--update-results", "--results-doc", "/nonexistent/results.md"],
         "does not exist; run from the repository root"),
    ],
)
def test_bench_mistakes_are_one_line(argv, message, capsys):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("memformer: error: ") and message in err and err.count("\n") == 1
    if argv[1:2] == ["nope"] or argv == ["bench"]:
        assert "efficiency" in err and "streaming" in err


# ---------------------------------------------------------------------------- experiments 2, 6 and 7
# They train small models on a tiny corpus written here (the default runs use debtext).


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    from train_support import make_corpus

    root = tmp_path_factory.mktemp("lm-data")
    make_corpus(root / "corpus")
    return ["--data", str(root / "corpus"), "--cache-dir", str(root / "cache")]


@pytest.mark.slow  # an experiment run end to end
def test_language_model_quick_writes_its_files(tmp_path, capsys, tiny_corpus):
    from torch_memformer.experiments.common.trained_models import read_manifest

    result = _run_quick("language-model", tmp_path, capsys, *tiny_corpus)
    assert {"plan", "recipe", "data", "threads", "checkpoints", "models", "comparison"} <= set(result)
    rows = result["models"]
    assert [row["key"] for row in rows] == ["memformer", "no-memory", "txl-8", "txl-16"]
    budget = result["recipe"]["seconds_per_model"]
    for row in rows:
        assert {"parameters", "steps", "train_cpu_seconds", "train_wall_seconds", "valid_bits_per_byte",
                "inference_flops_per_token", "train_curve", "command"} <= set(row)
        # Equal time: each model's steps are the budget over its calibrated CPU seconds per step.
        assert row["steps"] == max(1, round(budget / row["step_seconds"]))
        assert row["command"].startswith(f"memformer train --model {row['model']}")
        assert (row["valid_reset_bits_per_byte"] is not None) == (row["key"] == "memformer")
    assert result["comparison"]["parameter_spread"] < 0.1
    root = tmp_path / "out" / "language-model-checkpoints"
    manifest = read_manifest(root)
    assert [record["key"] for record in manifest["models"]] == [row["key"] for row in rows]
    assert all((root / record["checkpoint"] / "model.safetensors").is_file() for record in manifest["models"])
    assert (root / ".gitignore").read_text().splitlines()[-1] == "*"


@pytest.mark.slow  # an experiment run end to end
def test_matched_inference_quick_trains_then_measures(tmp_path, capsys, tiny_corpus):
    # No checkpoints under --out: it trains the language-model experiment's models first.
    result = _run_quick("matched-inference", tmp_path, capsys, *tiny_corpus)
    assert result["trained_here"] is True
    assert {"plan", "matched", "rows", "comparison", "data"} <= set(result)
    rows = result["rows"]
    assert rows[0]["key"] == "memformer" and [row["matched"] for row in rows] == [False, True]
    assert rows[1]["key"] == result["matched"] and rows[1]["model"] == "transformer-xl"
    for row in rows:
        assert {"state_bytes_per_row", "read_peak_growth_bytes", "generate_peak_growth_bytes",
                "process_peak_rss_bytes", "read_tokens_per_second", "generate_tokens_per_second",
                "read_tokens_per_second_cpu", "generate_tokens_per_second_cpu",
                "stream_bits_per_byte", "valid_bits_per_byte"} <= set(row)
        assert row["state_bytes_per_row"] > 0 and row["read_tokens_per_second"] > 0
    assert {"ratios_matched", "memory_target_met", "speed_target_met"} <= set(result["comparison"])


@pytest.mark.slow  # an experiment run end to end
def test_memory_analysis_quick_writes_its_files(tmp_path, capsys, tiny_corpus):
    result = _run_quick("memory-analysis", tmp_path, capsys, *tiny_corpus)
    assert {"origin", "checkpoint", "summary", "analysis", "config"} <= set(result)
    assert result["origin"].startswith("trained here")
    analysis = result["analysis"]
    assert len(analysis["document_keep_PHS"]) == len(analysis["document_keep_PS"]) == result["max_segments"] == 6
    assert len(analysis["bias_norm_S"]) == result["config"]["num_slots"]
    assert {"mid_document_keep_share", "first_write_overwrite_share", "bias_norm_ratio"} <= set(result["summary"])


@pytest.mark.slow  # an experiment run end to end
def test_analyze_command_writes_json_and_plot(tmp_path, capsys, tiny_corpus):
    data, cache = tiny_corpus[1], tiny_corpus[3]
    run = tmp_path / "run"
    assert main(["train", "--preset", "tiny", "--data", data, "--cache-dir", cache, "--out", str(run)]) == 0
    out = tmp_path / "analysis"
    code = main(["analyze", "--checkpoint", str(run), "--cache-dir", cache, "--max-segments", "3", "--document", "1",
                 "--out", str(out)])
    assert code == 0
    record = json.loads((out / "memory_analysis.json").read_text())
    assert (out / "memory_analysis.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert record["split"] == "valid" and record["analysis"]["document"] == 1
    assert "forgetting bias" in capsys.readouterr().out
    # Mistakes are one line with exit code 2.
    assert main(["analyze", "--checkpoint", str(run), "--cache-dir", cache, "--document", "99", "--out", str(out)]) == 2
    assert "--document must be an index 0..2" in capsys.readouterr().err



# ---------------------------------------------------------------------------- experiments 4 and 5
# Tiny models trained for two steps on the real digits / synthetic recall data: the files and
# their keys, never the numbers.


@pytest.mark.slow  # an experiment run end to end
def test_digits_quick_writes_its_files(tmp_path, capsys):
    result = _run_quick("digits", tmp_path, capsys)
    assert {"plan", "data", "runs", "summary"} <= set(result)
    plan = result["plan"]
    assert {(r["variant"], r["seed"]) for r in result["runs"]} == {
        (v, s) for v in plan["variants"] for s in plan["seeds"]}
    for run in result["runs"]:
        assert {"perplexity", "loss", "targets", "train_loss", "curve", "train_seconds"} <= set(run)
        # Every held-out pixel but each image's first is scored.
        assert run["targets"] == result["data"]["held_out_images"] * 63
    variants = result["summary"]["variants"]
    assert set(variants) == set(plan["variants"])
    for entry in variants.values():
        assert {"perplexity_mean", "perplexity_std", "perplexity_seeds", "flops_per_image",
                "state_bytes_per_row", "parameters"} <= set(entry)
    # The Transformer-XL's cache is matched to Memformer's state bytes.
    assert variants["transformer-xl"]["state_bytes_per_row"] <= variants["memformer"]["state_bytes_per_row"]
    assert {check["claim"] for check in result["summary"]["checks"]} >= {"without memory is the worst model"}


def test_digits_checks_tell_a_clear_reversal_from_noise():
    from torch_memformer.experiments.digits.writeup import paper_checks

    def entry(mean, std):
        return {"perplexity_mean": mean, "perplexity_std": std}

    checks = {c["claim"]: c for c in paper_checks({
        "memformer": entry(3.95, 0.02), "transformer": entry(3.77, 0.01),  # reversed by 0.18 > 0.03
        "transformer-xl": entry(3.97, 0.05),  # in the paper's order, by less than the noise
        "no-memory": entry(4.20, 0.02),  # the worst, beyond noise of every other model
    })}
    against_transformer = checks["Memformer beats Transformer (whole image)"]
    assert not against_transformer["holds"] and against_transformer["reversed_beyond_noise"]
    against_txl = checks["Memformer beats Transformer-XL (same state bytes)"]
    assert against_txl["holds"] and not against_txl["beyond_noise"] and not against_txl["reversed_beyond_noise"]
    worst = checks["without memory is the worst model"]
    assert worst["holds"] and worst["beyond_noise"]


@pytest.mark.parametrize("name, scored", [("recall", "num_pairs"), ("copy-after-gap", "payload_len"),
                                           ("value-tracking", None)])
@pytest.mark.slow  # an experiment run end to end
def test_memory_task_quick_writes_its_files(tmp_path, capsys, name, scored):
    result = _run_quick(name, tmp_path, capsys)
    assert {"plan", "task", "runs", "summary", "tokens_per_model"} <= set(result)
    gaps = [str(g) for g in result["plan"]["test_gaps"]]
    assert {r["model"] for r in result["runs"]} == {"memformer", "transformer-xl", "no-memory"}
    per_document = 1 if scored is None else result["task"][scored]
    for run in result["runs"]:
        assert list(run["by_gap"]) == gaps
        for scored_values in run["by_gap"].values():
            assert 0.0 <= scored_values["accuracy"] <= 1.0
            assert scored_values["values"] == result["plan"]["test_documents"] * per_document
    summary = result["summary"]
    assert summary["chance"] == result["task"]["chance"]
    assert summary["targets"] and all({"gaps", "accuracy", "met", "observed"} <= set(t) for t in summary["targets"])
    assert "transformer_xl_at_chance_from_gap" in summary
    txl = summary["models"]["transformer-xl"]
    assert txl["state_bytes_per_row"] <= summary["models"]["memformer"]["state_bytes_per_row"]
    assert txl["receptive_field"] == txl["mem_len"] * 2


def test_memory_task_ablation_flags_reach_the_memformer_models(tmp_path, capsys):
    result = _run_quick("recall", tmp_path, capsys, "--models", "memformer,no-memory",
                        "--model-config", '{"write_keep_init": null, "context_positions": "none"}')
    assert {r["model"] for r in result["runs"]} == {"memformer", "no-memory"}
    for run in result["runs"]:
        assert run["model_config"]["write_keep_init"] is None
        assert run["model_config"]["context_positions"] == "none"
    assert main(["bench", "recall", "--quick", "--models", "lstm", "--out", str(tmp_path / "x")]) == 2
