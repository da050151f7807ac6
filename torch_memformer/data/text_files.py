"""Reading text from files: transparent .xz/.gz/.bz2, UTF-8 with a tally of replaced bytes.

Undecodable bytes are replaced with U+FFFD rather than rejected (real corpora hold a few), and
counted in a ``DecodeTally`` so the corpus can warn once for all its documents instead of once
per document. A file that is not text at all (``sniff_binary``: NUL bytes, or a large share of
bytes that are not UTF-8: executables, images, PDFs, zip or tar archives) is another matter:
the corpus readers skip it, or refuse it when it is the whole corpus (``corpora.py``).
"""

from __future__ import annotations

import bz2
import dataclasses
import gzip
import json
import lzma
import tokenize
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from .. import json_input

COMPRESSIONS = {".xz": lzma.open, ".gz": gzip.open, ".bz2": bz2.open}


# Bytes of a file looked at by ``sniff_binary``, and the share of them that may fail to decode
# as UTF-8 before the file counts as binary. Text in Latin-1 or cp1252 stays well below it (an
# accented letter every few words); compressed or machine code is mostly undecodable.
SNIFF_BYTES = 64 << 10
BINARY_SHARE = 0.3
# What a damaged compressed file raises while it is read: a cut stream ends early (EOFError), a
# bad checksum or header is an OSError; a damaged deflate stream inside a .gz is zlib.error,
# which is neither (found by fuzzing, tests/fuzz/test_fuzz_regressions.py).
DECOMPRESSION_ERRORS = (OSError, EOFError, lzma.LZMAError, zlib.error)
# How many skipped files a warning names.
NAMED_SKIPPED = 3


@dataclasses.dataclass
class DecodeTally:
    """What reading a corpus ran into: documents that held bytes that are not valid UTF-8 (and
    the first one), of which ``expected`` are known to (tests of the standard library that are
    broken on purpose); files skipped as not text (and the first few names)."""

    documents: int = 0
    first: str | None = None
    expected: int = 0
    skipped: int = 0
    skipped_names: list[str] = dataclasses.field(default_factory=list)

    def record(self, where: str, *, expected: bool = False) -> None:
        self.documents += 1
        self.expected += expected
        if self.first is None:
            self.first = where

    def skip(self, where: str) -> None:
        self.skipped += 1
        if len(self.skipped_names) < NAMED_SKIPPED:
            self.skipped_names.append(where)


def sniff_binary(data: bytes) -> str | None:
    """Why ``data`` (a file's decompressed bytes) looks like binary rather than text, or None.

    Binary: a NUL byte anywhere (text never has one; executables, images, zip and tar archives
    and UTF-16 all do), or more than ``BINARY_SHARE`` of the first ``SNIFF_BYTES`` bytes not
    decodable as UTF-8 (compressed streams, PDFs).
    """
    if b"\x00" in data:
        return "it holds NUL bytes"
    sample = data[:SNIFF_BYTES]
    if sample.isascii():
        return None
    # A character cut at the end of the sample adds at most one replacement: negligible.
    replaced = sample.decode("utf-8", errors="replace").count("\ufffd")
    share = replaced / len(sample)
    if share > BINARY_SHARE:
        return f"{share:.0%} of its bytes are not UTF-8"
    return None


def logical_suffix(path: Path) -> str:
    """The extension that says what a file holds, under any compression: ``a.jsonl.xz`` -> ``.jsonl``."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSIONS:
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def open_binary(path: Path) -> IO[bytes]:
    """Open ``path`` for reading bytes, decompressing by its last extension."""
    opener = COMPRESSIONS.get(path.suffix.lower())
    try:
        return opener(path, "rb") if opener else open(path, "rb")
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror or error}") from None


def read_bytes(path: Path) -> bytes:
    with open_binary(path) as handle:
        try:
            return handle.read()
        except DECOMPRESSION_ERRORS as error:
            raise ValueError(f"cannot decompress {path}: {error}") from None


def decode_utf8(data: bytes, *, where: str, tally: DecodeTally, expected: bool = False) -> str:
    """``data`` as text; invalid UTF-8 becomes U+FFFD and is counted in ``tally`` (as
    ``expected`` when the file is known to be broken on purpose)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        tally.record(where, expected=expected)
        return data.decode("utf-8", errors="replace")


def decode_python_source(data: bytes, *, where: str, tally: DecodeTally, expected: bool = False) -> str:
    """Python source decoded as Python decodes it: the PEP 263 coding cookie, else UTF-8."""
    try:
        encoding, _ = tokenize.detect_encoding(iter(data.splitlines(keepends=True)).__next__)
    except SyntaxError:  # an unknown or contradictory cookie: fall back to UTF-8
        encoding = "utf-8"
    if encoding in ("utf-8", "utf-8-sig"):
        return decode_utf8(data.removeprefix(b"\xef\xbb\xbf"), where=where, tally=tally, expected=expected)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        tally.record(where, expected=expected)
        return data.decode(encoding, errors="replace")


def clean_surrogates(text: str, *, where: str, tally: DecodeTally) -> str:
    """Text from JSON may hold lone surrogates (``"\\ud800"``), which no UTF-8 encoder accepts:
    replace them with U+FFFD (pairs are joined into their character)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        tally.record(where)
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def iter_jsonl(path: Path, *, text_field: str, tally: DecodeTally) -> Iterator[str]:
    """The ``text_field`` of each non-blank line of a JSON Lines file, in order."""
    with open_binary(path) as handle:
        try:
            for number, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                where = f"{path} line {number}"
                line = decode_utf8(raw, where=where, tally=tally)
                try:
                    record = json_input.loads(line)
                except json.JSONDecodeError as error:
                    raise ValueError(
                        f"{where} is not valid JSON ({error.msg}); each line must be one JSON object"
                    ) from None
                if not isinstance(record, dict):
                    kind = type(record).__name__
                    raise ValueError(f"{where} is a JSON {kind}, not an object with a {text_field!r} field")
                if text_field not in record:
                    fields = ", ".join(map(repr, sorted(record))) or "none"
                    raise ValueError(
                        f"{where} has no {text_field!r} field (fields: {fields}); choose the field with --text-field"
                    )
                text = record[text_field]
                if not isinstance(text, str):
                    raise ValueError(f"{where}: field {text_field!r} is a {type(text).__name__}, not a string")
                yield clean_surrogates(text, where=where, tally=tally)
        except DECOMPRESSION_ERRORS as error:
            raise ValueError(f"cannot decompress {path}: {error}") from None
