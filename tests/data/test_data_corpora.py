"""Corpus readers: text, folders, JSON Lines (plain / .xz / .gz), split directories, the stdlib
corpus, Hugging Face datasets on a local file, and their error messages."""

from __future__ import annotations

import gzip
import json
import logging
import lzma
import sys
from pathlib import Path

import pytest

from torch_memformer.data import DataSpec, open_corpus, split_of, stdlib_corpus, stdlib_files
from torch_memformer.data.corpora import stdlib_root


def docs(spec: DataSpec, split: str = "all") -> list[str]:
    return list(open_corpus(spec, split).documents())


def write_jsonl(path: Path, texts: list[str], opener=open) -> None:
    with opener(path, "wt", encoding="utf-8") as handle:
        for i, text in enumerate(texts):
            handle.write(json.dumps({"id": i, "text": text}) + "\n")


def test_text_file_is_one_document_split_by_position(tmp_path):
    text = "".join(f"line {i}\n" for i in range(100))
    path = tmp_path / "book.txt"
    path.write_text(text)
    assert docs(DataSpec(str(path))) == [text]
    parts = [docs(DataSpec(str(path)), split)[0] for split in ("train", "valid", "test")]
    assert "".join(parts) == text  # consecutive, disjoint, complete
    assert len(parts[0]) == round(0.9 * len(text)) and len(parts[2]) == len(text) - round(0.95 * len(text))


@pytest.mark.parametrize("suffix, opener", [("", open), (".xz", lzma.open), (".gz", gzip.open)])
def test_compressed_text_and_jsonl(tmp_path, suffix, opener):
    texts = [f"document {i} " * (i + 1) for i in range(40)]
    write_jsonl(tmp_path / f"d.jsonl{suffix}", texts, opener)
    assert docs(DataSpec(str(tmp_path / f"d.jsonl{suffix}"))) == texts
    with opener(tmp_path / f"t.txt{suffix}", "wt", encoding="utf-8") as handle:
        handle.write("plain text ü")
    assert docs(DataSpec(str(tmp_path / f"t.txt{suffix}"))) == ["plain text ü"]


def test_jsonl_hash_split_is_disjoint_and_complete(tmp_path):
    texts = [f"doc {i}" for i in range(400)]
    write_jsonl(tmp_path / "d.jsonl", texts)
    spec = DataSpec(str(tmp_path / "d.jsonl"))
    parts = {split: docs(spec, split) for split in ("train", "valid", "test")}
    assert sorted(sum(parts.values(), []), key=lambda t: int(t.split()[1])) == texts
    assert all(parts[s] for s in parts)
    expected = [t for t in texts if split_of(t.split()[1], valid_fraction=0.05, test_fraction=0.05) == "valid"]
    assert parts["valid"] == expected


def test_folder_documents_sorted_with_one_warning_for_invalid_utf8(tmp_path, caplog):
    (tmp_path / "sub").mkdir()
    (tmp_path / "b.txt").write_bytes(b"bad \xff byte")
    (tmp_path / "a.txt").write_text("first")
    (tmp_path / "sub" / "c.txt").write_bytes(b"also \xc3 bad")
    (tmp_path / ".hidden").write_text("skipped")
    with lzma.open(tmp_path / "sub" / "d.txt.xz", "wt") as handle:
        handle.write("compressed")
    with caplog.at_level(logging.WARNING, logger="torch_memformer.data"):
        got = docs(DataSpec(str(tmp_path), format="folder"))
    assert got == ["first", "bad \ufffd byte", "also \ufffd bad", "compressed"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "2 document(s)" in warnings[0].getMessage() and "U+FFFD" in warnings[0].getMessage()


def test_split_directory_like_debtext(tmp_path):
    write_jsonl(tmp_path / "train.jsonl.xz", ["t1", "t2"], lzma.open)
    write_jsonl(tmp_path / "valid.jsonl.gz", ["v1"], gzip.open)
    (tmp_path / "MANIFEST.md").write_text("not a split")
    spec = DataSpec(str(tmp_path))
    assert docs(spec, "train") == ["t1", "t2"]
    assert docs(spec, "valid") == ["v1"]
    assert docs(spec, "all") == ["t1", "t2", "v1"]
    assert open_corpus(spec, "train").description.endswith("/train.jsonl.xz")
    with pytest.raises(ValueError, match="has no test split .*holds: train.jsonl.xz, valid.jsonl.gz"):
        open_corpus(spec, "test")


def test_split_directory_of_folders(tmp_path):
    for split in ("train", "validation"):
        (tmp_path / split).mkdir()
        (tmp_path / split / "x.txt").write_text(f"{split} x")
        (tmp_path / split / "y.txt").write_text(f"{split} y")
    assert docs(DataSpec(str(tmp_path)), "valid") == ["validation x", "validation y"]
    # An explicit folder format ignores split entries: every file is a document.
    assert len(docs(DataSpec(str(tmp_path), format="folder"))) == 4


def test_stdlib_split_is_stable_and_disjoint():
    files = stdlib_files()
    assert len(files) > 500 and "os.py" in files
    assert not any("site-packages" in f for f in files)
    assigned = {f: split_of(f, valid_fraction=0.05, test_fraction=0.05) for f in files}
    counts = {s: sum(v == s for v in assigned.values()) for s in ("train", "valid", "test")}
    assert counts["train"] > 0.85 * len(files)
    assert counts["valid"] > 0.02 * len(files) and counts["test"] > 0.02 * len(files)
    # Pinned: the split is a SHA-256 of the relative path, the same on every machine and run.
    assert [split_of(f, valid_fraction=0.05, test_fraction=0.05) for f in
            ("os.py", "asynchat.py", "bz2.py", "calendar.py", "chunk.py", "copyreg.py", "typing.py")] == [
        "train", "valid", "valid", "valid", "test", "test", "train"]


def test_stdlib_corpus_reads_python_sources(tmp_path):
    # A fake stdlib of a handful of files keeps this fast; the reader is the real one.
    root = tmp_path / "lib"
    (root / "pkg").mkdir(parents=True)
    (root / "site-packages").mkdir()
    (root / "site-packages" / "thirdparty.py").write_text("x = 1\n")
    (root / "pkg" / "mod.py").write_text("def f():\n    return 1\n")
    (root / "latin.py").write_bytes(b"# -*- coding: latin-1 -*-\ns = '\xe9'\n")
    (root / "notes.txt").write_text("not python")
    names = stdlib_files(root)
    assert names == ["latin.py", "pkg/mod.py"]
    corpus = stdlib_corpus("all", root=root)
    assert list(corpus.documents()) == ["# -*- coding: latin-1 -*-\ns = '\u00e9'\n", "def f():\n    return 1\n"]
    parts = [list(stdlib_corpus(s, root=root).documents()) for s in ("train", "valid", "test")]
    assert sorted(sum(parts, [])) == sorted(corpus.documents())
    assert corpus.identity["python"] == sys.version.split()[0]
    assert open_corpus(DataSpec(), "valid").identity["root"] == str(stdlib_root())


def test_hf_datasets_on_a_local_file(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    texts = [f"row {i}" for i in range(60)]
    write_jsonl(tmp_path / "rows.jsonl", texts)
    spec = DataSpec(str(tmp_path / "rows.jsonl"), format="hf")
    assert docs(spec) == texts
    # One split only (local files load as "train"): held-out splits are hashed out of it like JSON Lines.
    jsonl_valid = docs(DataSpec(str(tmp_path / "rows.jsonl")), "valid")
    assert docs(spec, "valid") == jsonl_valid
    with pytest.raises(ValueError, match="no 'body' column .*columns: id, text.*--text-field"):
        open_corpus(DataSpec(str(tmp_path / "rows.jsonl"), format="hf", text_field="body"), "train")


def test_hf_missing_package_message(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    with pytest.raises(ValueError, match=r"pip install 'torch-memformer\[hf\]'"):
        open_corpus(DataSpec("some/hub-name", format="hf"), "train")


def test_error_messages(tmp_path):
    with pytest.raises(ValueError, match="data source .*missing.* does not exist"):
        open_corpus(DataSpec(str(tmp_path / "missing")), "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no files"):
        open_corpus(DataSpec(str(tmp_path / "empty")), "train")
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{"txt": "oops"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl line 2 has no 'text' field \(fields: 'txt'\); .*--text-field"):
        docs(DataSpec(str(tmp_path / "bad.jsonl")))
    (tmp_path / "broken.jsonl").write_text('{"text": "ok"}\n{not json\n')
    with pytest.raises(ValueError, match="broken.jsonl line 2 is not valid JSON"):
        docs(DataSpec(str(tmp_path / "broken.jsonl")))
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(ValueError, match="is a file, but --data-format folder needs a directory"):
        open_corpus(DataSpec(str(tmp_path / "f.txt"), format="folder"), "train")
    with pytest.raises(ValueError, match="split must be one of train, valid, test, all"):
        open_corpus(DataSpec(str(tmp_path / "f.txt")), "dev")
    with pytest.raises(ValueError, match="data format must be one of"):
        DataSpec("x", format="csv")
    with pytest.raises(ValueError, match="valid_fraction \\+ test_fraction must leave something to train on"):
        DataSpec("x", valid_fraction=0.5, test_fraction=0.5)
    (tmp_path / "train.txt").write_text("a")
    (tmp_path / "train.jsonl").write_text("")
    with pytest.raises(ValueError, match="several entries for the train split"):
        open_corpus(DataSpec(str(tmp_path)), "train")


def test_lone_surrogates_in_json_are_replaced(tmp_path, caplog):
    (tmp_path / "s.jsonl").write_text('{"text": "a\\ud800b"}\n{"text": "pair \\ud83d\\ude00"}\n')
    with caplog.at_level(logging.WARNING, logger="torch_memformer.data"):
        assert docs(DataSpec(str(tmp_path / "s.jsonl"))) == ["a\ufffdb", "pair \U0001f600"]
    assert sum(r.levelno == logging.WARNING for r in caplog.records) == 1
