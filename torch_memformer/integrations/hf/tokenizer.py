"""The project's tokenizers as ``transformers`` ``PreTrainedTokenizerFast`` objects, and back.

- A BPE tokenizer (``BPETokenizer``) already is a ``tokenizers`` model: it is wrapped as is.
- The byte tokenizer (``ByteTokenizer``, id = UTF-8 byte value) becomes a small ``tokenizers``
  model that maps each byte to its own id: a byte-level pre-tokenizer turns each byte into one of
  GPT-2's 256 printable stand-in characters, and a BPE model with those 256 characters as its
  vocabulary (id = the byte value) and no merges emits one id per byte. The ids equal
  ``ByteTokenizer``'s on any text (tested).

Special tokens. The byte tokenizer names three control bytes as pad, bos and eos
(``BYTE_SPECIAL_TOKENS``): NUL (0x00) pad, STX (0x02, "start of text") bos, ETX (0x03, "end of
text") eos. They are bytes that already have ids, so the vocabulary stays 256 and every checkpoint
trained on bytes stays valid; what changes is that ``transformers`` tools (collators, batched
pipelines, lm-eval's ``hf`` model, ``generate``'s stopping) find the ids they ask for. Text is still
read byte for byte (``split_special_tokens=True``): the characters that stand for those bytes in
the byte-level vocabulary ("Ā", "Ă", "ă", common in Romanian) encode as their UTF-8 bytes, never as
a special token, and a NUL, STX or ETX in the text is that byte, as for ``ByteTokenizer``.
``decode(..., skip_special_tokens=True)`` drops the three bytes. The BPE tokenizer gets none (its
merges were learned without them); a Memformer's own begin-of-segment input lies past the
vocabulary and is never a token.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ...data.tokenizers import BPE_FILE, BPETokenizer, ByteTokenizer, _gpt2_unicode_to_byte

HF_TOKENIZER_FILE = "tokenizer.json"
# ASCII control bytes, as transformers special tokens of the byte tokenizer (the module docstring).
BYTE_SPECIAL_TOKENS = {"pad_token": 0x00, "bos_token": 0x02, "eos_token": 0x03}


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

    specials: dict[str, Any] = {}
    if isinstance(tokenizer, ByteTokenizer):
        backend = byte_level_backend()
        stand_in = {byte: char for char, byte in _gpt2_unicode_to_byte().items()}
        specials = {name: stand_in[byte] for name, byte in BYTE_SPECIAL_TOKENS.items()}
        # The special tokens' strings are ordinary characters: never match them in text.
        specials["split_special_tokens"] = True
    elif isinstance(tokenizer, BPETokenizer):
        backend = tokenizer.backend
    else:
        raise TypeError(f"cannot convert a {type(tokenizer).__name__} to a transformers tokenizer")
    # Streams are unbounded: no length limit to warn about.
    return PreTrainedTokenizerFast(tokenizer_object=backend, model_max_length=int(1e30),
                                   clean_up_tokenization_spaces=False, **specials)


def special_token_ids(tokenizer: ByteTokenizer | BPETokenizer) -> dict[str, int]:
    """``{"pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 3}`` for the byte tokenizer (what
    ``generation_config.json`` names), ``{}`` for BPE."""
    if isinstance(tokenizer, ByteTokenizer):
        return {f"{name}_id": byte for name, byte in BYTE_SPECIAL_TOKENS.items()}
    return {}


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
    """The byte model, written before special tokens existed (no added tokens) or since (exactly
    the three control bytes, at their own ids)."""
    model = spec.get("model") or {}
    added = {(token.get("id"), token.get("content")) for token in spec.get("added_tokens") or []}
    stand_in = {byte: char for char, byte in _gpt2_unicode_to_byte().items()}
    return (
        model.get("type") == "BPE"
        and not model.get("merges")
        and model.get("vocab") == _gpt2_unicode_to_byte()
        and added <= {(byte, stand_in[byte]) for byte in BYTE_SPECIAL_TOKENS.values()}
    )


__all__ = ["BPE_FILE", "BYTE_SPECIAL_TOKENS", "HF_TOKENIZER_FILE", "special_token_ids", "byte_level_backend", "from_hf_tokenizer_file", "to_hf_tokenizer"]
