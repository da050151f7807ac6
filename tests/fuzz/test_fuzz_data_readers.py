"""Fuzzing the data readers with the files real corpora hold: JSON Lines with random, broken or
truncated lines, .gz/.xz/.bz2 files cut short or damaged, empty and very long lines, folders of
text mixed with binary. Reading gives the right documents or a ValueError with a message (which
the CLI prints as one line, exit 2), never another exception."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import shutil

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fuzz_support import examples
from torch_memformer.data import DataSpec, open_corpus

# Hundreds of generated examples per test: the fast subset (-m "not slow") leaves them to the full run.
pytestmark = pytest.mark.slow

COMPRESS = {".gz": gzip.compress, ".xz": lzma.compress, ".bz2": bz2.compress}
TEXT = st.text(st.characters(blacklist_categories=["Cs"]), max_size=40)
# A document: usually short, sometimes empty, now and then one very long line.
DOCUMENT = st.one_of(TEXT, TEXT, st.just(""), st.integers(1, 300_000).map(lambda n: "x" * n))
RECORD_LINE = st.one_of(
    DOCUMENT.map(lambda t: json.dumps({"text": t}).encode()),                      # a good record
    DOCUMENT.map(lambda t: json.dumps({"text": t}, ensure_ascii=False).encode()),  # raw UTF-8
    st.binary(max_size=30),                                                        # anything
    st.sampled_from([b"", b"   ", b"{}", b"[]", b"null", b'{"text": 1}', b'{"other": "x"}', b'{"text": "\\ud800"}',
                     b'{"text": "a"', b"[" * 5000, b'{"text": ' + b"9" * 5000 + b"}", b"\xff\xfe", b"\x00"]),
)


def _read(tmp_path, name: str, data: bytes, **spec) -> list[str] | ValueError:
    folder = tmp_path / "corpus"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    path = folder / name
    path.write_bytes(data)
    try:
        return list(open_corpus(DataSpec(str(path), **spec), "all").documents())
    except ValueError as error:
        assert str(error), "a ValueError must say what is wrong"
        return error


def _expected(lines: list[bytes]) -> list[str] | None:
    """The documents of ``lines`` if every non-blank one is a good record, else None (an error)."""
    texts = []
    for line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line.decode("utf-8"))
        except (ValueError, RecursionError):
            return None
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            return None
        texts.append(record["text"].encode("utf-16", "surrogatepass").decode("utf-16", "replace"))
    return texts


@settings(max_examples=examples())
@given(lines=st.lists(RECORD_LINE, max_size=6), suffix=st.sampled_from(["", ".gz", ".xz", ".bz2"]))
def test_jsonl(tmp_path, lines, suffix):
    data = b"\n".join(lines)
    result = _read(tmp_path, "data.jsonl" + suffix, COMPRESS.get(suffix, bytes)(data))
    expected = _expected(data.split(b"\n"))
    if expected is None:
        assert isinstance(result, ValueError)
    else:
        assert result == expected


@settings(max_examples=examples())
@given(texts=st.lists(DOCUMENT, min_size=1, max_size=4), suffix=st.sampled_from([".gz", ".xz", ".bz2"]),
       cut=st.floats(0, 1, exclude_max=True), damage=st.none() | st.tuples(st.floats(0, 1, exclude_max=True),
                                                                            st.integers(1, 255)))
def test_compressed_jsonl_cut_short_or_damaged(tmp_path, texts, suffix, cut, damage):
    whole = COMPRESS[suffix]("".join(json.dumps({"text": t}) + "\n" for t in texts).encode())
    data = bytearray(whole[: int(len(whole) * cut)])
    if damage is not None and data:
        where, xor = damage
        data[int(len(data) * where)] ^= xor
    result = _read(tmp_path, "data.jsonl" + suffix, bytes(data))
    # A cut or damaged stream is refused; the checksums of all three formats make sure of it.
    # (An empty file is read as empty, as Python's gzip and bz2 modules do.)
    assert isinstance(result, ValueError) or result == texts or (not data and result == [])


@settings(max_examples=examples())
@given(data=st.one_of(st.binary(max_size=300), DOCUMENT.map(str.encode)),
       suffix=st.sampled_from(["", ".gz", ".xz", ".bz2"]), compress=st.booleans(), allow_binary=st.booleans())
def test_text_file(tmp_path, data, suffix, compress, allow_binary):
    """A text file (maybe compressed, maybe named compressed but not): its text, or refused."""
    stored = COMPRESS[suffix](data) if compress and suffix else data
    result = _read(tmp_path, "doc.txt" + suffix, stored, allow_binary=allow_binary)
    if not isinstance(result, ValueError):
        assert result == [data.decode("utf-8", errors="replace")]
    elif allow_binary and (compress or not suffix):
        pytest.fail(f"a readable file was refused with allow_binary: {result}")


@settings(max_examples=examples(0.5))
@given(files=st.lists(st.tuples(st.sampled_from(["a", "b.txt", "c.md", "d.gz", "e.xz", "f.bz2", "g.jsonl.gz"]),
                                st.binary(max_size=200)), min_size=1, max_size=5, unique_by=lambda f: f[0]))
def test_folder_of_anything(tmp_path, files):
    """A folder whose files may be binary, or compressed files that are not: every document read
    is text and every other file is skipped, so the reader never raises."""
    folder = tmp_path / "folder"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    for name, data in files:
        (folder / name).write_bytes(data)
    documents = list(open_corpus(DataSpec(str(folder), format="folder"), "all").documents())
    assert len(documents) <= len(files)
    assert all(isinstance(d, str) for d in documents)
