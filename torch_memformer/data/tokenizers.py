"""Tokenizers: UTF-8 bytes (the default) and byte-level BPE trained locally.

Both map any text to ids and back without loss, and both can say how many UTF-8 bytes each token
id stands for (``token_byte_lengths``), which is what bits per byte needs: the loss summed over
predicted tokens divided by the bytes those tokens spell (``docs/data.md``).

A tokenizer is saved in a directory (usually the checkpoint's) as ``tokenizer_meta.json``, which
says which kind it is, plus ``tokenizer.json`` (the Hugging Face ``tokenizers`` file) for BPE;
``load_tokenizer(dir)`` reads either back.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .. import json_input

META_FILE = "tokenizer_meta.json"
BPE_FILE = "tokenizer.json"
_FORMAT_VERSION = 1
# The largest BPE vocabulary we accept; ids are stored as uint32 beyond 65,536.
MAX_VOCAB_SIZE = 1_000_000
# BPE encodes one piece at a time; a huge single document (a 100 MB text file) would otherwise
# build one Encoding object of tens of millions of tokens (offsets, strings: gigabytes).
_BPE_PIECE_CHARS = 1 << 20


@runtime_checkable
class Tokenizer(Protocol):
    """What the data layer, the trainer and the generator need from a tokenizer."""

    @property
    def name(self) -> str:
        """The kind, ``"byte"`` or ``"bpe"``."""

    @property
    def vocab_size(self) -> int:
        """Number of token ids; every id is in [0, vocab_size)."""

    def encode(self, text: str) -> list[int]:
        """The ids of ``text``."""

    def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
        """The ids of several texts at once, one 1-D integer array per text (faster than ``encode``)."""

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids``; raises ValueError for an id outside the vocabulary."""

    def token_byte_lengths(self) -> np.ndarray:
        """(vocab_size,) int64: the number of UTF-8 bytes each token id stands for."""

    def identity(self) -> dict[str, Any]:
        """A JSON-able value that changes whenever the mapping text -> ids changes (cache keys)."""

    def save(self, directory: str | Path) -> None:
        """Write the tokenizer into ``directory`` (created if needed); ``load_tokenizer`` reads it."""


class ByteTokenizer:
    """Each UTF-8 byte is a token: vocabulary 256, nothing to train, nothing unknown."""

    name = "byte"
    vocab_size = 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
        return [np.frombuffer(text.encode("utf-8"), dtype=np.uint8) for text in texts]

    def decode(self, ids: Sequence[int]) -> str:
        ids = _checked_ids(ids, self.vocab_size, self.name)
        # A sampled byte sequence need not be valid UTF-8; show what it can.
        return bytes(ids).decode("utf-8", errors="replace")

    def token_byte_lengths(self) -> np.ndarray:
        return np.ones(self.vocab_size, dtype=np.int64)

    def identity(self) -> dict[str, Any]:
        return {"kind": "byte"}

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        _write_meta(directory, {"kind": "byte", "vocab_size": self.vocab_size})

    def __repr__(self) -> str:
        return "ByteTokenizer()"


class BPETokenizer:
    """Byte-level BPE (GPT-2 style) from the Hugging Face ``tokenizers`` library.

    Byte-level means the base alphabet is the 256 bytes, so every text encodes (no unknown token)
    and decodes back exactly; the merges learned by ``train_bpe`` only make tokens longer. There
    are no special tokens: the model's BOS id lies past the vocabulary (``MemformerConfig``).
    """

    name = "bpe"

    def __init__(self, backend: Any) -> None:
        from tokenizers import Tokenizer as HFTokenizer

        if not isinstance(backend, HFTokenizer):
            raise TypeError(f"BPETokenizer wraps a tokenizers.Tokenizer, got {type(backend).__name__}")
        self._backend = backend
        self._vocab_size = backend.get_vocab_size(with_added_tokens=True)
        self._byte_lengths = _byte_level_token_lengths(backend.get_vocab(with_added_tokens=True), self._vocab_size)
        canonical = json.dumps(json.loads(backend.to_str()), sort_keys=True, separators=(",", ":"))
        self._sha256 = hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    @property
    def backend(self) -> Any:
        """The wrapped ``tokenizers.Tokenizer``."""
        return self._backend

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for piece in _pieces(text, _BPE_PIECE_CHARS):
            ids.extend(self._backend.encode(piece, add_special_tokens=False).ids)
        return ids

    def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
        # Cut long texts into pieces at places where the byte-level pre-tokenizer splits anyway,
        # encode all pieces in one parallel call, then glue each text's pieces back together.
        pieces: list[str] = []
        owners: list[int] = []
        for index, text in enumerate(texts):
            for piece in _pieces(text, _BPE_PIECE_CHARS):
                pieces.append(piece)
                owners.append(index)
        encodings = self._backend.encode_batch_fast(pieces, add_special_tokens=False) if pieces else []
        parts: list[list[np.ndarray]] = [[] for _ in texts]
        for owner, encoding in zip(owners, encodings):
            parts[owner].append(np.asarray(encoding.ids, dtype=np.uint32))
        return [np.concatenate(p) if p else np.zeros(0, dtype=np.uint32) for p in parts]

    def decode(self, ids: Sequence[int]) -> str:
        ids = _checked_ids(ids, self._vocab_size, self.name)
        return self._backend.decode(ids, skip_special_tokens=False)

    def token_byte_lengths(self) -> np.ndarray:
        return self._byte_lengths.copy()

    def identity(self) -> dict[str, Any]:
        return {"kind": "bpe", "vocab_size": self._vocab_size, "sha256": self._sha256}

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self._backend.save(str(directory / BPE_FILE))
        _write_meta(directory, {"kind": "bpe", "vocab_size": self._vocab_size})

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={self._vocab_size})"


def train_bpe(
    texts: Iterable[str], *, vocab_size: int, min_frequency: int = 2, show_progress: bool = False
) -> BPETokenizer:
    """Learn a byte-level BPE vocabulary of at most ``vocab_size`` ids from ``texts``.

    The 256 byte symbols are always in the vocabulary, so ``vocab_size`` must be at least 256; a
    small corpus may yield fewer merges than asked for (``BPETokenizer.vocab_size`` says how many).
    Deterministic for a given input order.
    """
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or not 256 <= vocab_size <= MAX_VOCAB_SIZE:
        raise ValueError(
            f"vocab_size must be an integer in [256, {MAX_VOCAB_SIZE:,}] (the 256 bytes are always "
            f"tokens), got {vocab_size!r}"
        )
    if isinstance(min_frequency, bool) or not isinstance(min_frequency, int) or min_frequency < 1:
        raise ValueError(f"min_frequency must be an integer >= 1, got {min_frequency!r}")
    backend = HFTokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=show_progress,
    )
    seen = _CountingIterator(texts)
    backend.train_from_iterator(seen, trainer=trainer)
    if seen.characters == 0:
        raise ValueError("cannot train a BPE tokenizer on no text: the training documents are empty")
    return BPETokenizer(backend)


def load_tokenizer(directory: str | Path) -> ByteTokenizer | BPETokenizer:
    """Read a tokenizer written by ``save`` from ``directory``."""
    directory = Path(directory)
    meta_path = directory / META_FILE
    try:
        meta = json_input.loads(meta_path.read_text())
    except FileNotFoundError:
        raise ValueError(f"no tokenizer in {directory}: {META_FILE} is missing") from None
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read {meta_path}: {error}") from None
    kind = meta.get("kind") if isinstance(meta, dict) else None
    if kind == "byte":
        return ByteTokenizer()
    if kind == "bpe":
        from tokenizers import Tokenizer as HFTokenizer

        try:
            backend = HFTokenizer.from_file(str(directory / BPE_FILE))
        except Exception as error:  # the Rust library raises plain Exception for any bad file
            raise ValueError(f"cannot read the BPE tokenizer {directory / BPE_FILE}: {error}") from None
        tokenizer = BPETokenizer(backend)
        if meta.get("vocab_size") not in (None, tokenizer.vocab_size):
            raise ValueError(
                f"{meta_path} says vocab_size {meta['vocab_size']} but {BPE_FILE} has {tokenizer.vocab_size}; "
                "the directory mixes two tokenizers, save it again"
            )
        return tokenizer
    raise ValueError(f"{meta_path} names an unknown tokenizer kind {kind!r}; expected 'byte' or 'bpe'")


def resolve_tokenizer(name_or_dir: str | Path) -> ByteTokenizer | BPETokenizer:
    """``"byte"`` -> ``ByteTokenizer()``; anything else is a directory holding a saved tokenizer."""
    if str(name_or_dir) == "byte":
        return ByteTokenizer()
    path = Path(name_or_dir)
    if not path.is_dir():
        raise ValueError(
            f"tokenizer {str(name_or_dir)!r} is neither 'byte' nor a directory; train one with "
            "`memformer tokenizer train --out DIR` and pass DIR"
        )
    return load_tokenizer(path)


class _CountingIterator:
    """Passes texts through while counting characters (to reject an empty training corpus)."""

    def __init__(self, texts: Iterable[str]) -> None:
        self._texts = iter(texts)
        self.characters = 0

    def __iter__(self) -> "_CountingIterator":
        return self

    def __next__(self) -> str:
        text = next(self._texts)
        if not isinstance(text, str):
            raise TypeError(f"train_bpe needs str documents, got {type(text).__name__}")
        self.characters += len(text)
        return text


def _write_meta(directory: Path, values: dict[str, Any]) -> None:
    meta = {"format_version": _FORMAT_VERSION, **values}
    (directory / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def _checked_ids(ids: Sequence[int], vocab_size: int, name: str) -> list[int]:
    values = [int(i) for i in ids]
    bad = [i for i in values if not 0 <= i < vocab_size]
    if bad:
        raise ValueError(
            f"token id {bad[0]} is outside the {name} tokenizer's vocabulary [0, {vocab_size}); "
            "the model's vocab_size is larger than the tokenizer's, or the ids come from another tokenizer"
        )
    return values


def _gpt2_unicode_to_byte() -> dict[str, int]:
    """The byte-level alphabet's inverse: each of 256 printable characters stands for one byte
    (GPT-2's ``bytes_to_unicode``, which ``tokenizers``' ByteLevel pre-tokenizer uses)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    byte_values = printable[:]
    code_points = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            byte_values.append(byte)
            code_points.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(byte_values, code_points)}


_UNICODE_TO_BYTE = _gpt2_unicode_to_byte()


def _byte_level_token_lengths(vocab: dict[str, int], vocab_size: int) -> np.ndarray:
    lengths = np.zeros(vocab_size, dtype=np.int64)
    for token, index in vocab.items():
        if all(ch in _UNICODE_TO_BYTE for ch in token):
            lengths[index] = len(token)
        else:  # an added token (none by default) spells its own text
            lengths[index] = len(token.encode("utf-8"))
    return lengths


# A safe cut: just before a newline that is followed by a non-space character. The byte-level
# pre-tokenizer (GPT-2's regex) always splits there: a whitespace run followed by a word ends in
# its own one-character piece ("x", " ", "\n", "Hello"), and the run before it parses the same at
# the end of a piece. So encoding the two sides apart gives exactly the ids of encoding them
# together (a test checks it).
_SAFE_CUT = re.compile(r"\n(?=\S)")


def _pieces(text: str, max_chars: int) -> list[str]:
    if len(text) <= max_chars:
        return [text]
    pieces = []
    start = 0
    while len(text) - start > max_chars:
        match = _SAFE_CUT.search(text, start + max_chars)
        if match is None:
            break
        cut = match.start()
        pieces.append(text[start:cut])
        start = cut
    pieces.append(text[start:])
    return pieces
