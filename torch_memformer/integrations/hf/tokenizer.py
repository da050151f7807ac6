"""The project's tokenizers as ``transformers`` ``PreTrainedTokenizerFast`` objects, and back.

- A BPE tokenizer (``BPETokenizer``) already is a ``tokenizers`` model: a copy of it is wrapped.
- The byte tokenizer (``ByteTokenizer``, id = UTF-8 byte value) becomes a small ``tokenizers``
  model that maps each byte to its own id: a byte-level pre-tokenizer turns each byte into one of
  GPT-2's 256 printable stand-in characters, and a BPE model with those 256 characters as its
  vocabulary (id = the byte value) and no merges emits one id per byte. The ids equal
  ``ByteTokenizer``'s on any text (tested).

Special tokens. Both tokenizers name three control bytes as pad, bos and eos
(``BYTE_SPECIAL_TOKENS``): NUL (0x00) pad, STX (0x02, "start of text") bos, ETX (0x03, "end of
text") eos. They are bytes that already have ids, so the vocabulary stays 256 and every checkpoint
trained on bytes stays valid; what changes is that ``transformers`` tools (collators, batched
pipelines, lm-eval's ``hf`` model, ``generate``'s stopping) find the ids they ask for. Text is still
read byte for byte (``split_special_tokens=True``): the characters that stand for those bytes in
the byte-level vocabulary ("Ā", "Ă", "ă", common in Romanian) encode as their UTF-8 bytes, never as
a special token, and a NUL, STX or ETX in the text is that byte, as for ``ByteTokenizer``.
``decode(..., skip_special_tokens=True)`` drops the three bytes. A byte-level BPE tokenizer names
its single-byte tokens of the same three bytes (every byte is in its alphabet), so its ids do not
change either. A Memformer's own begin-of-segment input lies past the vocabulary and is never a
token. ``from_hf_tokenizer_file`` drops these registrations again: the native tokenizers read text
byte for byte and carry no special tokens.
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
    """A ``PreTrainedTokenizerFast`` giving the same ids as ``tokenizer``, with pad / bos / eos
    naming the tokens of the bytes NUL / STX / ETX (``special_token_ids``)."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    if isinstance(tokenizer, ByteTokenizer):
        backend = byte_level_backend()
    elif isinstance(tokenizer, BPETokenizer):
        # A copy: transformers registers the special tokens in the backend it is given, and the
        # native tokenizer's own backend must keep reading text without them.
        backend = Tokenizer.from_str(tokenizer.backend.to_str())
    else:
        raise TypeError(f"cannot convert a {type(tokenizer).__name__} to a transformers tokenizer")
    specials = {name[: -len("_id")]: backend.id_to_token(token_id)
                for name, token_id in special_token_ids(tokenizer).items()}
    # Streams are unbounded: no length limit to warn about. The special tokens' strings are
    # ordinary characters of the byte-level alphabet: split_special_tokens never matches them in text.
    return PreTrainedTokenizerFast(tokenizer_object=backend, model_max_length=int(1e30),
                                   clean_up_tokenization_spaces=False, split_special_tokens=True, **specials)


def special_token_ids(tokenizer: ByteTokenizer | BPETokenizer) -> dict[str, int]:
    """``pad_token_id`` / ``bos_token_id`` / ``eos_token_id``: the ids of the single-byte tokens of
    NUL / STX / ETX (0 / 2 / 3 for bytes; a byte-level BPE has every byte in its alphabet, a token
    it lacks is left out). What ``generation_config.json`` names."""
    if isinstance(tokenizer, ByteTokenizer):
        return {f"{name}_id": byte for name, byte in BYTE_SPECIAL_TOKENS.items()}
    if not isinstance(tokenizer, BPETokenizer):
        raise TypeError(f"no special tokens for a {type(tokenizer).__name__}")
    stand_in = _stand_in_characters()
    ids = {f"{name}_id": tokenizer.backend.token_to_id(stand_in[byte]) for name, byte in BYTE_SPECIAL_TOKENS.items()}
    return {name: token_id for name, token_id in ids.items() if token_id is not None}


def from_hf_tokenizer_file(path: str | Path) -> ByteTokenizer | BPETokenizer:
    """The native tokenizer of a ``tokenizer.json``: ``ByteTokenizer`` if it is the byte model
    above, else a ``BPETokenizer`` (which must be byte-level BPE). The special tokens that
    ``to_hf_tokenizer`` registered are dropped: the native tokenizers read text byte for byte."""
    from tokenizers import Tokenizer

    path = Path(path)
    try:
        spec = json.loads(path.read_text())
        backend = Tokenizer.from_str(json.dumps(_without_byte_specials(spec)))
    except Exception as error:  # the Rust library raises plain Exception for any bad file
        raise ValueError(f"cannot read the tokenizer {path}: {error}") from None
    if _is_byte_level_identity(spec):
        return ByteTokenizer()
    return BPETokenizer(backend)


def _stand_in_characters() -> dict[int, str]:
    """byte -> the character that stands for it in the byte-level vocabulary (GPT-2's map)."""
    return {byte: char for char, byte in _gpt2_unicode_to_byte().items()}


# The post-processor transformers installs when a tokenizer has none: it adds nothing.
_TRIVIAL_TEMPLATE = {
    "type": "TemplateProcessing",
    "single": [{"Sequence": {"id": "A", "type_id": 0}}],
    "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
    "special_tokens": {},
}


def _without_byte_specials(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` as the native tokenizer wrote it: without added tokens that are NUL / STX / ETX's
    own vocabulary entries, and without the do-nothing post-processor transformers adds (so a
    round trip keeps the tokenizer's identity, which keys the token caches)."""
    vocab = (spec.get("model") or {}).get("vocab") or {}
    names = {_stand_in_characters()[byte] for byte in BYTE_SPECIAL_TOKENS.values()}
    kept = [token for token in spec.get("added_tokens") or []
            if not (token.get("content") in names and vocab.get(token.get("content")) == token.get("id"))]
    post_processor = None if spec.get("post_processor") == _TRIVIAL_TEMPLATE else spec.get("post_processor")
    return {**spec, "added_tokens": kept, "post_processor": post_processor}


def _is_byte_level_identity(spec: dict[str, Any]) -> bool:
    """The byte model, written before special tokens existed (no added tokens) or since (exactly
    the three control bytes, at their own ids)."""
    model = spec.get("model") or {}
    return (
        model.get("type") == "BPE"
        and not model.get("merges")
        and model.get("vocab") == _gpt2_unicode_to_byte()
        and not _without_byte_specials(spec)["added_tokens"]
    )


__all__ = [
    "BPE_FILE",
    "BYTE_SPECIAL_TOKENS",
    "HF_TOKENIZER_FILE",
    "byte_level_backend",
    "from_hf_tokenizer_file",
    "special_token_ids",
    "to_hf_tokenizer",
]
