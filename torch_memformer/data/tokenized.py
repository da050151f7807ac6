"""A tokenized split: every document's token ids back to back, plus where each document starts.

This is what the token cache stores on disk (``cache.py``, memory-mapped) and what the stream
and evaluation layouts read (``streams.py``, ``evaluation.py``).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import numpy as np


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 while every id fits (vocab_size <= 65,536), else uint32."""
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


@dataclasses.dataclass(frozen=True, eq=False)
class TokenizedCorpus:
    """The token ids of a corpus split.

    tokens: (T,) unsigned ints, all documents back to back (often a read-only ``np.memmap``).
    doc_offsets: (D + 1,) int64, increasing; document d is ``tokens[doc_offsets[d]:doc_offsets[d + 1]]``.
    doc_bytes: (D,) int64, the UTF-8 bytes of each document's text (for bits per byte).
    token_bytes: (V,) int64, the UTF-8 bytes each token id stands for; V is the tokenizer's vocabulary.
    name: a short description for messages ("debtext/valid.jsonl.xz, byte").
    scored: None (every token is a target), or (T,) bool: the tokens a model is trained and
        scored on; the others get label -100 like padding, while still being read as input.
        For synthetic tasks where only some tokens are predictable (``data/recall.py``).
    """

    tokens: np.ndarray
    doc_offsets: np.ndarray
    doc_bytes: np.ndarray
    token_bytes: np.ndarray
    name: str = "corpus"
    scored: np.ndarray | None = None

    def __post_init__(self) -> None:
        offsets = self.doc_offsets
        if self.tokens.ndim != 1 or offsets.ndim != 1 or self.doc_bytes.ndim != 1 or self.token_bytes.ndim != 1:
            raise ValueError("tokens, doc_offsets, doc_bytes and token_bytes must be 1-D arrays")
        if len(offsets) != len(self.doc_bytes) + 1:
            raise ValueError(
                f"doc_offsets needs one entry more than doc_bytes, got {len(offsets)} and {len(self.doc_bytes)}"
            )
        if offsets[0] != 0 or offsets[-1] != len(self.tokens) or np.any(np.diff(offsets) < 0):
            raise ValueError("doc_offsets must start at 0, never decrease, and end at len(tokens)")
        if not np.issubdtype(self.tokens.dtype, np.integer):
            raise ValueError(f"tokens must be integers, got {self.tokens.dtype}")
        if self.scored is not None and (self.scored.dtype != np.bool_ or self.scored.shape != self.tokens.shape):
            raise ValueError(
                f"scored must be a bool array shaped like tokens {self.tokens.shape}, got {self.scored.dtype} "
                f"{self.scored.shape}"
            )

    @classmethod
    def from_documents(
        cls,
        documents: Sequence[Sequence[int]],
        *,
        vocab_size: int,
        doc_bytes: Sequence[int] | None = None,
        token_bytes: np.ndarray | None = None,
        name: str = "corpus",
        scored: Sequence[Sequence[bool]] | None = None,
    ) -> "TokenizedCorpus":
        """Build one in memory from lists of ids (tests, small experiments).

        Without ``token_bytes`` every token counts one byte (a byte-level vocabulary); without
        ``doc_bytes`` a document's bytes are the sum of its tokens'. ``scored``, one bool list per
        document, marks the tokens that are targets (default: all).
        """
        arrays = [np.asarray(doc, dtype=np.int64).reshape(-1) for doc in documents]
        tokens = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int64)
        if tokens.size and (tokens.min() < 0 or tokens.max() >= vocab_size):
            bad = int(tokens.min()) if tokens.min() < 0 else int(tokens.max())
            raise ValueError(f"token id {bad} is outside the vocabulary [0, {vocab_size})")
        offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(a) for a in arrays])
        table = np.ones(vocab_size, dtype=np.int64) if token_bytes is None else np.asarray(token_bytes, dtype=np.int64)
        if doc_bytes is None:
            doc_bytes = [int(table[a].sum()) for a in arrays]
        mask = None
        if scored is not None:
            masks = [np.asarray(m, dtype=bool).reshape(-1) for m in scored]
            if len(masks) != len(arrays) or any(len(m) != len(a) for m, a in zip(masks, arrays)):
                raise ValueError("scored needs one bool per token of every document")
            mask = np.concatenate(masks) if masks else np.zeros(0, dtype=bool)
        return cls(tokens.astype(token_dtype(vocab_size)), offsets, np.asarray(doc_bytes, dtype=np.int64), table, name,
                   mask)

    @property
    def vocab_size(self) -> int:
        return len(self.token_bytes)

    @property
    def num_documents(self) -> int:
        return len(self.doc_bytes)

    @property
    def num_tokens(self) -> int:
        return len(self.tokens)

    @property
    def num_bytes(self) -> int:
        return int(self.doc_bytes.sum())

    @property
    def doc_lengths(self) -> np.ndarray:
        """(D,) int64: tokens per document."""
        return np.diff(self.doc_offsets)

    def document(self, index: int) -> np.ndarray:
        return self.tokens[self.doc_offsets[index] : self.doc_offsets[index + 1]]

    @functools.cached_property
    def max_token_id(self) -> int:
        """The largest id present (-1 when there are no tokens); one pass over the tokens, then remembered."""
        return int(self.tokens.max()) if len(self.tokens) else -1

    def check_vocab(self, vocab_size: int) -> None:
        """Raise ValueError if an id is outside a model vocabulary of ``vocab_size``."""
        if self.max_token_id >= vocab_size:
            where = int(np.argmax(np.asarray(self.tokens) >= vocab_size))
            raise ValueError(
                f"token id {int(self.tokens[where])} (token {where:,} of {self.name}) is outside the model's "
                f"vocabulary of {vocab_size}; the data was tokenized with a vocabulary of {self.vocab_size}: "
                f"set the model's vocab_size to at least {self.vocab_size} or use the matching tokenizer"
            )
