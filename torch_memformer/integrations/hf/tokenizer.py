"""The project's tokenizers as ``transformers`` ``PreTrainedTokenizerFast`` objects, and back.

- A BPE tokenizer (``BPETokenizer``) already is a ``tokenizers`` model: it is wrapped as is.
- The byte tokenizer (``ByteTokenizer``, id = UTF-8 byte value) becomes a small ``tokenizers``
  model that maps each byte to its own id: a byte-level pre-tokenizer turns each byte into one of
  GPT-2's 256 printable stand-in characters, and a BPE model with those 256 characters as its
  vocabulary (id = the byte value) and no merges emits one id per byte. The ids equal
  ``ByteTokenizer``'s on any text (tested).

Neither adds special tokens: a Memformer's begin-of-segment id lies past the vocabulary and is
never an input.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ...data.tokenizers import BPE_FILE, BPETokenizer, ByteTokenizer, _gpt2_unicode_to_byte

HF_TOKENIZER_FILE = "tokenizer.json"


def byte_level_backend() -> Any:
    """A ``tokenizers.Tokenizer`` whose ids are the UTF-8 bytes of the text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = {char: byte for char, byte in _gpt2_unicode_to_byte().items()}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    # use_regex=False: no word splitting, every byte of the text becomes one symbol.
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    return backend


def to_hf_tokenizer(tokenizer: ByteTokenizer | BPETokenizer) -> Any:
    """A ``PreTrainedTokenizerFast`` giving the same ids as ``tokenizer``."""
    from transformers import PreTrainedTokenizerFast

    if isinstance(tokenizer, ByteTokenizer):
        backend = byte_level_backend()
    elif isinstance(tokenizer, BPETokenizer):
        backend = tokenizer.backend
    else:
        raise TypeError(f"cannot convert a {type(tokenizer).__name__} to a transformers tokenizer")
    # Streams are unbounded: no length limit to warn about.
    return PreTrainedTokenizerFast(tokenizer_object=backend, model_max_length=int(1e30), clean_up_tokenization_spaces=False)


def from_hf_tokenizer_file(path: str | Path) -> ByteTokenizer | BPETokenizer:
    """The native tokenizer of a ``tokenizer.json``: ``ByteTokenizer`` if it is the byte model
    above, else a ``BPETokenizer`` (which must be byte-level BPE)."""
    from tokenizers import Tokenizer

    path = Path(path)
    try:
        backend = Tokenizer.from_file(str(path))
    except Exception as error:  # the Rust library raises plain Exception for any bad file
        raise ValueError(f"cannot read the tokenizer {path}: {error}") from None
    if _is_byte_level_identity(json.loads(path.read_text())):
        return ByteTokenizer()
    return BPETokenizer(backend)


def _is_byte_level_identity(spec: dict[str, Any]) -> bool:
    model = spec.get("model") or {}
    return (
        model.get("type") == "BPE"
        and not model.get("merges")
        and model.get("vocab") == _gpt2_unicode_to_byte()
        and not spec.get("added_tokens")
    )


__all__ = ["BPE_FILE", "HF_TOKENIZER_FILE", "byte_level_backend", "from_hf_tokenizer_file", "to_hf_tokenizer"]
