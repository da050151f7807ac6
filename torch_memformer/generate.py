"""Streaming text generation: sample from a model and yield text as it is produced.

    for piece in generate_text(model, tokenizer, "def main(", max_new_tokens=200, seed=0):
        print(piece, end="", flush=True)

The model samples ``chunk_tokens`` tokens per call to its own ``generate`` (a cached decoder
step per token, the memory carried across segments); the state is carried from call to call.
The generator's return value (``yield from``, or ``StopIteration.value``) is the stream's state
after the prompt and every new token, which ``state=`` continues later (``state_file.py`` keeps it
in a file). Text is decoded incrementally: a byte (or byte-level BPE) token may end inside a multi-byte UTF-8
character, so a trailing incomplete character is held back until the bytes that finish it
arrive (``IncrementalDecoder``). Bytes that never form a character come out as U+FFFD.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

import torch
from torch import nn

_REPLACEMENT = "\ufffd"
# A UTF-8 character is at most 4 bytes; a byte-level BPE token holds at most one partial
# character at each end. Held-back ids beyond this are bytes that will never complete.
_MAX_PENDING = 8


class IncrementalDecoder:
    """Turns a growing list of token ids into text pieces without splitting a character.

    ``push(ids)`` returns the text that is now certain; ``flush()`` returns the rest. The
    concatenation of all pieces equals ``tokenizer.decode(all ids)``.
    """

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self._pending: list[int] = []
        self._shown = 0

    def push(self, ids: Sequence[int]) -> str:
        self._pending.extend(int(i) for i in ids)
        text = self._tokenizer.decode(self._pending)
        if not text.endswith(_REPLACEMENT) or len(self._pending) > _MAX_PENDING:
            return self._commit(text)
        # The trailing U+FFFD may be a character whose last bytes have not been sampled yet.
        stable = text.rstrip(_REPLACEMENT)
        piece = stable[self._shown :]
        self._shown = max(self._shown, len(stable))
        return piece

    def flush(self) -> str:
        return self._commit(self._tokenizer.decode(self._pending)) if self._pending else ""

    def _commit(self, text: str) -> str:
        piece = text[self._shown :]
        self._pending, self._shown = [], 0
        return piece


def generate_text(
    model: nn.Module,
    tokenizer: Any,
    prompt: str,
    *,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    chunk_tokens: int = 8,
    state: Any | None = None,
) -> Generator[str, None, Any]:
    """Yield the text of ``max_new_tokens`` sampled tokens following ``prompt``, piece by piece;
    return the state after the prompt and every new token.

    ``prompt`` must encode to at least one token (the first token of a stream is never
    predicted, spec decision 6, so there must be something to continue). ``temperature`` 0 is
    greedy. ``seed`` fixes the sample (None: the global generator). ``state`` (batch 1) continues
    a stream: the prompt is read after it; None starts a fresh one.
    """
    if not isinstance(prompt, str) or not prompt:
        raise ValueError("the prompt is empty; give at least one character to continue from")
    if isinstance(chunk_tokens, bool) or not isinstance(chunk_tokens, int) or chunk_tokens < 1:
        raise ValueError(f"chunk_tokens must be a positive integer, got {chunk_tokens!r}")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be a non-negative integer, got {max_new_tokens!r}")
    device = next(model.parameters()).device
    ids = tokenizer.encode(prompt)
    vocab = model.config.vocab_size
    if max(ids) >= vocab:
        raise ValueError(f"the prompt holds token id {max(ids)}, outside the model's vocabulary of {vocab}; "
                         "the tokenizer does not match the model")
    generator = None
    if seed is not None:
        generator = torch.Generator(device=device).manual_seed(seed)
    model.eval()
    decoder = IncrementalDecoder(tokenizer)
    # The state covers everything but the last token, which each call reads before sampling.
    with torch.no_grad():
        prompt_1N = torch.tensor([ids], dtype=torch.long, device=device)
        state = model.advance(prompt_1N[:, :-1], state=state) if prompt_1N.size(1) > 1 else state
        last_11 = prompt_1N[:, -1:]
        unread_1U = last_11  # tokens not yet in the state
        remaining = max_new_tokens
        while remaining > 0:
            count = min(chunk_tokens, remaining)
            out = model.generate(last_11, count, state=state, temperature=temperature, top_k=top_k, top_p=top_p,
                                 generator=generator)
            new_1C = out.tokens
            remaining -= count
            unread_1U = torch.cat([last_11, new_1C], dim=1)
            piece = decoder.push(new_1C[0].tolist())
            if piece:
                yield piece
            if remaining > 0:
                # The next call reads the last sampled token itself; carry the state before it.
                state = model.advance(torch.cat([last_11, new_1C[:, :-1]], dim=1), state=state)
                last_11 = new_1C[:, -1:]
        final_state = model.advance(unread_1U, state=state)
    tail = decoder.flush()
    if tail:
        yield tail
    return final_state
