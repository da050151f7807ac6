"""Writing model text to a terminal safely: the ``--raw`` flag of ``generate``, ``demo`` and ``eval``
(not a command itself).

A model trained on binary files, or an untrained one, samples control characters: ESC starts a
terminal escape sequence (it can move the cursor, change colours, retitle the window), NUL and
BEL do their own things, CR overwrites the line, and Unicode bidi overrides reorder what the eye
sees. On a terminal they are shown escaped (``\\x1b``, ``\\u202e``); newlines and tabs stay as
they are. A pipe or a file gets the text unchanged, and so does a terminal under ``--raw``.
"""

from __future__ import annotations

import argparse
import sys
import unicodedata
from typing import TextIO

_KEPT = {"\n", "\t"}
# Unicode's bidirectional embedding, override and isolate controls (Trojan Source, CVE-2021-42574).
_BIDI = [chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))]
_ESCAPES = {
    **{ord(ch): f"\\x{ord(ch):02x}" for ch in map(chr, range(0x100))
       if unicodedata.category(ch) == "Cc" and ch not in _KEPT},
    **{ord(ch): f"\\u{ord(ch):04x}" for ch in _BIDI},
}


def add_raw_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--raw", action="store_true",
                        help="write control characters as they are even to a terminal (by default a terminal sees "
                             "them escaped, e.g. \\x1b; pipes and files always get the text unchanged)")


def escape_controls(text: str) -> str:
    """``text`` with control characters (all but newline and tab) and bidi controls escaped."""
    return text.translate(_ESCAPES)


class TextOut:
    """``out = TextOut(raw=args.raw)``; ``out.write(piece)`` / ``out.print(line)``: escaped when
    ``stream`` is a terminal and not ``raw``, unchanged otherwise."""

    def __init__(self, *, raw: bool, stream: TextIO | None = None) -> None:
        self.stream = sys.stdout if stream is None else stream
        isatty = getattr(self.stream, "isatty", None)
        self.escape = not raw and bool(isatty and isatty())

    def write(self, text: str) -> None:
        self.stream.write(escape_controls(text) if self.escape else text)

    def print(self, line: str = "", *, flush: bool = False) -> None:
        self.write(line + "\n")
        if flush:
            self.stream.flush()

    def flush(self) -> None:
        self.stream.flush()
