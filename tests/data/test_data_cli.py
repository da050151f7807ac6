"""``memformer tokenizer train`` end to end, and its one-line errors (exit code 2)."""

from __future__ import annotations

import lzma
import json

from torch_memformer.cli import main
from torch_memformer.data import BPETokenizer, load_tokenizer


def test_tokenizer_train_end_to_end(tmp_path, capsys):
    text = "".join(f"the {w} of the {w}s is in the {w}house.\n" for w in ("cat", "dog", "bird", "fish") * 30)
    (tmp_path / "tiny.txt").write_text(text)
    code = main(["tokenizer", "train", "--data", str(tmp_path / "tiny.txt"), "--split", "all",
                 "--vocab-size", "280", "--out", str(tmp_path / "tok")])
    out = capsys.readouterr().out
    assert code == 0
    tokenizer = load_tokenizer(tmp_path / "tok")
    assert isinstance(tokenizer, BPETokenizer) and tokenizer.vocab_size == 280
    assert "vocabulary: 280 ids (asked 280)" in out and "bytes per token" in out
    assert f"saved to {tmp_path / 'tok'}" in out
    assert tokenizer.decode(tokenizer.encode(text)) == text
    assert len(tokenizer.encode(text)) < len(text) / 2
    # The same --out again is refused rather than overwriting a tokenizer a checkpoint may rely on.
    assert main(["tokenizer", "train", "--data", str(tmp_path / "tiny.txt"), "--vocab-size", "300",
                 "--out", str(tmp_path / "tok")]) == 2
    assert "already holds a tokenizer" in capsys.readouterr().err


def test_tokenizer_train_on_a_split_directory_with_max_bytes(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    with lzma.open(data / "train.jsonl.xz", "wt") as handle:
        for i in range(50):
            handle.write(json.dumps({"text": f"document number {i}, " * 20}) + "\n")
    assert main(["tokenizer", "train", "--data", str(data), "--vocab-size", "280", "--max-bytes", "2000",
                 "--out", str(tmp_path / "tok")]) == 0
    # 380 bytes each: the sixth document passes 2,000 bytes and is the last one read.
    assert "on 6 documents (2,280 bytes)" in capsys.readouterr().out


def test_tokenizer_train_errors_are_one_line(tmp_path, capsys):
    cases = [
        (["--data", str(tmp_path / "missing.txt"), "--vocab-size", "300"], "does not exist"),
        (["--data", str(tmp_path), "--data-format", "folder", "--vocab-size", "300"], "holds no files"),
        (["--data", "stdlib", "--vocab-size", "10"], "vocab_size must be an integer in [256"),
    ]
    for args, message in cases:
        code = main(["tokenizer", "train", *args, "--out", str(tmp_path / "out")])
        err = capsys.readouterr().err
        assert code == 2
        assert err.startswith("memformer: error: ") and message in err and err.count("\n") == 1
        assert "Traceback" not in err
