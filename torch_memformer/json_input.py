"""``loads``: ``json.loads`` for JSON that comes from outside (a user's config, a checkpoint, a
corpus line), where every way the text can be wrong is a ``json.JSONDecodeError``.

``json.loads`` itself has two other ways to fail on bad input, both found by fuzzing
(``tests/fuzz/test_fuzz_config.py``): arrays or objects nested a few thousand deep raise
``RecursionError`` (a traceback, not a message), and an integer of more than 4300 digits raises a
plain ``ValueError`` that names neither the file nor the line. Callers already turn a
``JSONDecodeError`` into a message that says where the text came from.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def loads(text: str | bytes) -> Any:
    """The value of the JSON ``text``; ``json.JSONDecodeError`` for anything that is not JSON we
    can hold (including nesting too deep for the parser and integers too long to convert)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise json.JSONDecodeError("arrays or objects nested too deeply", _as_str(text), 0) from None
    except ValueError:  # int('9' * 5000): Python's limit on converting long digit strings
        limit = sys.get_int_max_str_digits()
        raise json.JSONDecodeError(f"a number with more than {limit} digits", _as_str(text), 0) from None


def _as_str(text: str | bytes) -> str:
    return text if isinstance(text, str) else text.decode("utf-8", errors="replace")
