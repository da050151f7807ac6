"""Text in, text out: files that are not text are skipped (folders) or refused (a single file,
exit code 2) unless ``--allow-binary``; ``generate``, ``demo`` and ``eval`` show control characters
escaped on a terminal, and unchanged under ``--raw`` or into a pipe."""

from __future__ import annotations

import gzip
import io
import logging
import tarfile
import unicodedata

import pytest

from torch_memformer.checkpoint import save_model
from torch_memformer.cli import main
from torch_memformer.commands._terminal import TextOut, escape_controls
from torch_memformer.data import ByteTokenizer
from torch_memformer.data.corpora import DataSpec, open_corpus, stdlib_corpus
from torch_memformer.data.text_files import sniff_binary

from conftest import tiny_model

TEXT = "def f(x):\n    return x + 1  # ordinary source\n" * 40
ELF = b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 8  # what a copy of /bin/ls starts like
COMPRESSED = bytes(range(0x80, 0x100)) * 40  # no NUL, almost nothing decodes: a PDF stream, a JPEG body


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_sniff_binary():
    assert sniff_binary(TEXT.encode()) is None
    assert sniff_binary(b"") is None
    assert sniff_binary("Grüße, café, naïve: ünïcödé\n".encode() * 50) is None
    assert sniff_binary("caf\xe9 cr\xe8me, na\xefve, d\xe9j\xe0 vu\n".encode("latin-1") * 50) is None  # not UTF-8, still text
    assert sniff_binary(ELF) == "it holds NUL bytes"
    assert sniff_binary("text".encode("utf-16")) == "it holds NUL bytes"
    assert "are not UTF-8" in sniff_binary(COMPRESSED)


def _archive(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.fixture
def mixed_folder(tmp_path):
    """Three text documents (one gzipped) among a binary, a PDF-like file, a tar.gz and a broken .gz."""
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text(TEXT)
    (folder / "b.md").write_text(TEXT.upper())
    (folder / "c.txt.gz").write_bytes(gzip.compress(TEXT[::-1].encode()))
    (folder / "ls").write_bytes(ELF)
    (folder / "manual.pdf").write_bytes(b"%PDF-1.4\n" + COMPRESSED)
    _archive(folder / "bundle.tar.gz", {"inside.txt": TEXT.encode()})
    (folder / "broken.gz").write_bytes(b"not gzip at all")
    return folder


def test_a_folder_skips_files_that_are_not_text_with_one_warning(mixed_folder, caplog):
    corpus = open_corpus(DataSpec(source=str(mixed_folder)), "all")
    with caplog.at_level(logging.WARNING):
        documents = list(corpus.documents())
    assert sorted(documents) == sorted([TEXT, TEXT.upper(), TEXT[::-1]])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    # Four skipped, the first three named (sorted by path), and how to read them anyway.
    assert "skipped 4 file(s) that are not text (broken.gz, bundle.tar.gz, ls, ...)" in warnings[0]
    assert "--allow-binary" in warnings[0]


def test_allow_binary_reads_them_and_is_part_of_the_cache_key(mixed_folder):
    skipping = open_corpus(DataSpec(source=str(mixed_folder)), "all")
    reading = open_corpus(DataSpec(source=str(mixed_folder), allow_binary=True), "all")
    documents = list(reading.documents())
    assert len(documents) == 6  # all but the .gz that does not decompress
    assert any(doc.startswith("\x7fELF") for doc in documents)
    assert skipping.identity != reading.identity


def test_a_single_binary_file_is_refused_unless_allowed(tmp_path, capsys):
    binary = tmp_path / "ls-copy"
    binary.write_bytes(ELF * 4)
    base = ["train", "--preset", "tiny", "--steps", "1", "--eval-every", "0", "--data", str(binary),
            "--cache-dir", str(tmp_path / "cache")]
    assert main([*base, "--out", str(tmp_path / "refused")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"memformer: error: {binary} is not a text file (it holds NUL bytes)") and "--allow-binary" in err
    assert not (tmp_path / "refused").exists()

    assert main([*base, "--allow-binary", "--out", str(tmp_path / "allowed")]) == 0


def test_the_standard_librarys_broken_test_files_are_not_an_alarm(tmp_path, caplog):
    root = tmp_path / "lib"
    (root / "test" / "tokenizedata").mkdir(parents=True)
    (root / "os.py").write_text("import sys\n")
    (root / "test" / "tokenizedata" / "badsyntax_pep3120.py").write_bytes(b"print('\xf6')\n")
    with caplog.at_level(logging.INFO):
        list(stdlib_corpus("all", root=root).documents())
    messages = [r for r in caplog.records if "not valid UTF-8" in r.getMessage()]
    assert len(messages) == 1 and messages[0].levelno == logging.INFO
    assert "expected: test files of the standard library" in messages[0].getMessage()

    caplog.clear()
    (root / "json.py").write_bytes(b"x = '\xff'\n")  # not a test: a real problem, a real warning
    with caplog.at_level(logging.INFO):
        list(stdlib_corpus("all", root=root).documents())
    messages = [r for r in caplog.records if "not valid UTF-8" in r.getMessage()]
    assert len(messages) == 1 and messages[0].levelno == logging.WARNING and "2 document(s)" in messages[0].getMessage()


def test_escape_controls():
    text = "ok\tline\nESC\x1b[2J NUL\x00 BEL\x07 CR\r DEL\x7f C1\x9b bidi\u202eevil\u2066 é ü 中"
    escaped = escape_controls(text)
    assert escaped == ("ok\tline\nESC\\x1b[2J NUL\\x00 BEL\\x07 CR\\x0d DEL\\x7f C1\\x9b bidi\\u202eevil\\u2066 "
                       "é ü 中")
    assert not [ch for ch in escaped if unicodedata.category(ch) == "Cc" and ch not in "\n\t"]


@pytest.mark.parametrize("stream, raw, escaped", [(_Terminal(), False, True), (_Terminal(), True, False),
                                                   (io.StringIO(), False, False)],
                         ids=["terminal", "terminal --raw", "pipe"])
def test_text_out_escapes_on_a_terminal_only(stream, raw, escaped):
    out = TextOut(raw=raw, stream=stream)
    out.write("a\x1b[31mb")
    out.print("!")
    assert stream.getvalue() == ("a\\x1b[31mb!\n" if escaped else "a\x1b[31mb!\n")


@pytest.fixture
def byte_checkpoint(tmp_path):
    return save_model(tmp_path / "ckpt", tiny_model(vocab_size=ByteTokenizer.vocab_size), tokenizer=ByteTokenizer())


@pytest.mark.parametrize("raw", [False, True])
def test_generate_escapes_control_characters_on_a_terminal(byte_checkpoint, monkeypatch, raw):
    import torch_memformer.generate as generate

    monkeypatch.setattr(generate, "generate_text", lambda *a, **k: iter(["\x1b]0;title\x07", "plain\n"]))
    terminal = _Terminal()
    monkeypatch.setattr("sys.stdout", terminal)
    args = ["generate", "--checkpoint", str(byte_checkpoint), "--prompt", "p\x1b[2J", "--threads", "1"]
    assert main([*args, *(["--raw"] if raw else [])]) == 0
    expected = "p\x1b[2J\x1b]0;title\x07plain\n\n"
    assert terminal.getvalue() == (expected if raw else escape_controls(expected))


def test_demo_and_eval_escape_control_characters_on_a_terminal(byte_checkpoint, tmp_path, monkeypatch):
    text = tmp_path / "odd\x1b[31mname.txt"  # a file name is text the user did not write either
    text.write_text(TEXT)
    terminal = _Terminal()
    monkeypatch.setattr("sys.stdout", terminal)
    assert main(["demo", "--text", str(text), "--max-new-tokens", "64"]) == 0
    shown = terminal.getvalue()
    assert "odd\\x1b[31mname.txt" in shown
    assert not [ch for ch in shown if unicodedata.category(ch) == "Cc" and ch not in "\n\t"]  # the sample too

    terminal = _Terminal()
    monkeypatch.setattr("sys.stdout", terminal)
    assert main(["eval", "--checkpoint", str(byte_checkpoint), "--data", str(text), "--split", "all",
                 "--memory", "carried", "--max-batches", "1", "--threads", "1",
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    assert "odd\\x1b[31mname.txt" in terminal.getvalue() and "\x1b" not in terminal.getvalue()
