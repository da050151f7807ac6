"""lm-evaluation-harness adapter (optional extra ``lm-eval``); see ``docs/lm-eval.md``.

    import lm_eval, torch_memformer.integrations.lm_eval     # registers the model "memformer"
    lm_eval.simple_evaluate(model="memformer", model_args="checkpoint=runs/tiny/checkpoints/final",
                            tasks=["memformer_bpb"], task_manager=task_manager(), metadata={"data": "x.jsonl"})

or ``memformer lm-eval --checkpoint DIR --tasks ...``. Any checkpoint of this project works
(Memformer and the baselines share one stream contract). Text goes through the checkpoint's own
tokenizer; nothing is truncated, since a stream has no context limit.

How the three request types map onto the stream contract (the model never predicts the first
token of a stream, spec decision 6, and there is no end-of-text token to condition it on):

- ``loglikelihood(context, continuation)``: the context is read into the state (``advance``,
  encoder only), then the continuation is scored from that state (``predict``). With an empty
  context the continuation's first token starts the stream and is not scored (a warning says so
  once); every other token is.
- ``loglikelihood_rolling(text)``: the whole document is one stream, read window by window with
  the memory carried (no sliding window, no truncation); the sum of the log-probabilities of every
  token but the first. That is exactly what ``memformer eval`` sums per document, and the shipped
  task ``memformer_bpb`` divides it by the bytes of the same tokens, so the two report the same
  bits per byte (``tests/integrations/test_integration_lm_eval.py``).
- ``generate_until(context, gen_kwargs)``: the native generator (KV cache inside a segment,
  memory across segments) in chunks, stopping each row at its first stop string or after
  ``max_gen_toks`` tokens. Greedy unless ``do_sample``. Needs a non-empty context.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lm_eval.models  # noqa: F401  (before register_model: see below)
import torch
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model

from ..checkpoint import load_model
from ..data.tokenizers import resolve_tokenizer
from ..runs import resolve_checkpoint

logger = logging.getLogger(__name__)

MODEL_NAME = "memformer"
TASKS_DIR = Path(__file__).resolve().parent / "lm_eval_tasks"
DEFAULT_BATCH_SIZE = 8
DEFAULT_MAX_GEN_TOKS = 256
# Tokens per row per model call when streaming a document; values never depend on it, only memory
# (batch x window x vocabulary logits) and speed.
DEFAULT_WINDOW_SEGMENTS = 8
# Tokens generated per call before the stop strings are checked.
GENERATION_CHUNK = 32


# lm-eval fills its registry with the built-in models ("hf", "vllm", ...) only when the registry is
# empty at the first lookup; importing lm_eval.models above fills it first (lazily: names only), so
# registering "memformer" does not hide them.
@register_model(MODEL_NAME)
class MemformerLM(LM):
    """An lm-eval ``LM`` over a checkpoint of this project (``checkpoint.save_model``).

    Args (all keyword; lm-eval passes ``model_args`` as strings, converted here):
        checkpoint: a checkpoint directory or a run directory (its latest checkpoint); or pass
            ``model`` (and ``tokenizer``) directly.
        tokenizer: ``"byte"`` or a tokenizer directory; default: the checkpoint's own.
        batch_size: rows per model call. ``max_batch_size`` is accepted and ignored.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` ...; default cuda when available.
        window: tokens per row per call when streaming a document (default 8 segments).
        max_gen_toks: the generation limit when a request does not set one.
        seed: seeds the sampler when a request asks for ``do_sample``.
    """

    def __init__(
        self,
        checkpoint: str | None = None,
        *,
        model: torch.nn.Module | None = None,
        tokenizer: Any = None,
        batch_size: int | str | None = DEFAULT_BATCH_SIZE,
        max_batch_size: int | str | None = None,
        device: str | None = None,
        window: int | None = None,
        max_gen_toks: int = DEFAULT_MAX_GEN_TOKS,
        seed: int = 1234,
    ) -> None:
        super().__init__()
        del max_batch_size  # no automatic batch sizing: batch_size is what runs
        if (checkpoint is None) == (model is None):
            raise ValueError("give exactly one of checkpoint (a directory) or model")
        if checkpoint is not None:
            loaded = load_model(resolve_checkpoint(checkpoint))
            model, saved_tokenizer = loaded.model, loaded.tokenizer
        else:
            saved_tokenizer = None
        if isinstance(tokenizer, (str, Path)):
            tokenizer = resolve_tokenizer(tokenizer)
        tokenizer = tokenizer if tokenizer is not None else saved_tokenizer
        if tokenizer is None:
            raise ValueError(
                "the checkpoint holds no tokenizer; pass tokenizer=byte or tokenizer=DIR (model_args) for the "
                "tokenizer the model was trained with"
            )
        if tokenizer.vocab_size > model.config.vocab_size:
            raise ValueError(
                f"the tokenizer has {tokenizer.vocab_size} ids but the model only {model.config.vocab_size}; "
                "they do not belong together"
            )
        self.batch_size = _positive_int("batch_size", DEFAULT_BATCH_SIZE if batch_size is None else batch_size)
        segment_len = model.config.segment_len
        self.window = _positive_int("window", window if window is not None else segment_len * DEFAULT_WINDOW_SEGMENTS)
        self.max_gen_toks = _positive_int("max_gen_toks", max_gen_toks)
        self._device = torch.device(device if device else ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.to(self._device).eval()
        self.tokenizer = tokenizer
        self.generator = torch.Generator(device=self._device).manual_seed(int(seed))
        self._warned_empty_context = False

    # ------------------------------------------------------------------ lm-eval API

    def loglikelihood(self, requests: list, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        pairs = [self._encode_pair(*request.args) for request in requests]
        results = self.score_continuations(pairs)
        for request, result in zip(requests, results):
            self.cache_hook.add_partial("loglikelihood", request.args, result)
        return results

    def loglikelihood_rolling(self, requests: list, disable_tqdm: bool = False) -> list[float]:
        documents = [self.tokenizer.encode(request.args[0]) for request in requests]
        results = self.score_documents(documents)
        for request, result in zip(requests, results):
            self.cache_hook.add_partial("loglikelihood_rolling", request.args, result)
        return results

    def generate_until(self, requests: list, disable_tqdm: bool = False) -> list[str]:
        results: list[str | None] = [None] * len(requests)
        # Requests with the same generation settings are batched together.
        groups: dict[str, list[int]] = {}
        for index, request in enumerate(requests):
            groups.setdefault(repr(sorted(_gen_kwargs(request.args[1]).items())), []).append(index)
        for indices in groups.values():
            settings = _gen_kwargs(requests[indices[0]].args[1])
            for start in range(0, len(indices), self.batch_size):
                batch = indices[start : start + self.batch_size]
                texts = self.generate_texts([requests[i].args[0] for i in batch], settings)
                for index, text in zip(batch, texts):
                    results[index] = text
                    self.cache_hook.add_partial("generate_until", requests[index].args, text)
        return [text if text is not None else "" for text in results]

    # ------------------------------------------------------------------ scoring

    @torch.no_grad()
    def score_documents(self, documents: Sequence[Sequence[int]]) -> list[float]:
        """Sum of log p(token) over every token but the first of each document (one stream each)."""
        results = [0.0] * len(documents)
        order = sorted(range(len(documents)), key=lambda i: -len(documents[i]))
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            lengths_B = torch.tensor([len(documents[i]) for i in rows], device=self._device)
            ids_BN = _pad([documents[i] for i in rows], self._device)
            totals_B = torch.zeros(len(rows), dtype=torch.float64, device=self._device)
            state, carry_BV = None, None
            for w0 in range(0, ids_BN.size(1), self.window):
                chunk_BT = ids_BN[:, w0 : w0 + self.window]
                out = self.model(chunk_BT, state=state)
                state = out.state
                logp_BTV = out.logits.float().log_softmax(dim=-1)
                # Column i predicts token w0 + i + 1; the window's first token was predicted by the
                # previous window's last column (the stream's very first token by nothing).
                if carry_BV is not None:
                    first_B = carry_BV.gather(1, chunk_BT[:, :1]).squeeze(1)
                    totals_B += torch.where(lengths_B > w0, first_B, 0.0).double()
                inner_BT = logp_BTV[:, :-1].gather(2, chunk_BT[:, 1:, None]).squeeze(2)
                positions_T = w0 + 1 + torch.arange(inner_BT.size(1), device=self._device)
                totals_B += torch.where(positions_T[None, :] < lengths_B[:, None], inner_BT, 0.0).double().sum(1)
                carry_BV = logp_BTV[:, -1]
            for row, total in zip(rows, totals_B.tolist()):
                results[row] = total
        return results

    @torch.no_grad()
    def score_continuations(self, pairs: Sequence[tuple[list[int], list[int]]]) -> list[tuple[float, bool]]:
        """(sum of log p, greedy?) of each continuation after its context (read into the state)."""
        results: list[tuple[float, bool]] = [(0.0, True)] * len(pairs)
        order = sorted(range(len(pairs)), key=lambda i: (-len(pairs[i][0]), pairs[i][0], -len(pairs[i][1])))
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            contexts = [pairs[i][0] for i in rows]
            continuations = [pairs[i][1] for i in rows]
            unique = sorted({tuple(c) for c in contexts}, key=len)
            unique_state = self.read_contexts([list(c) for c in unique])
            state = unique_state.select([unique.index(tuple(c)) for c in contexts])
            cont_BC = _pad(continuations, self._device)
            logp_BCV = self.model.predict(cont_BC, state=state).float().log_softmax(dim=-1)
            token_logp_BC = logp_BCV.gather(2, cont_BC[..., None]).squeeze(2)
            greedy_BC = logp_BCV.argmax(dim=-1) == cont_BC
            for b, (row, context, continuation) in enumerate(zip(rows, contexts, continuations)):
                # With no context the continuation's first token starts the stream: not predicted.
                first = 1 if not context else 0
                if not context:
                    self._warn_empty_context()
                n = len(continuation)
                results[row] = (float(token_logp_BC[b, first:n].double().sum()), bool(greedy_BC[b, first:n].all()))
        return results

    def read_contexts(self, contexts: Sequence[Sequence[int]]):
        """The state after each context (rows in order), reading only real tokens: rows are advanced
        together as far as the shortest remaining one reaches, then the shorter rows drop out."""
        state = self.model.init_state(len(contexts), device=self._device)
        lengths = sorted({len(c) for c in contexts if len(c)})
        done = 0
        for length in lengths:
            active = [row for row, c in enumerate(contexts) if len(c) >= length]
            chunk = torch.tensor([list(contexts[row][done:length]) for row in active], dtype=torch.long,
                                 device=self._device)
            new = self.model.advance(chunk, state=state.select(active))
            state = _scatter_rows(state, active, new)
            done = length
        return state

    # ------------------------------------------------------------------ generation

    @torch.no_grad()
    def generate_texts(self, contexts: Sequence[str], settings: dict[str, Any]) -> list[str]:
        """Continue each context until a stop string or ``max_gen_toks`` tokens; the text before the stop."""
        until = settings.get("until") or []
        until = [until] if isinstance(until, str) else list(until)
        limit = _positive_int("max_gen_toks", settings.get("max_gen_toks", self.max_gen_toks))
        sampling = bool(settings.get("do_sample", False))
        temperature = float(settings.get("temperature", 1.0 if sampling else 0.0)) if sampling else 0.0
        top_k = settings.get("top_k")
        top_p = settings.get("top_p")
        encoded = [self.tokenizer.encode(text) for text in contexts]
        if any(not ids for ids in encoded):
            raise ValueError(
                "generate_until needs a non-empty context: a Memformer stream has no start-of-text token to "
                "generate the first token from"
            )
        # The state holds every token but the last, which goes in as the generator's input.
        state = self.read_contexts([ids[:-1] for ids in encoded])
        pending_BP = torch.tensor([[ids[-1]] for ids in encoded], dtype=torch.long, device=self._device)
        generated: list[list[int]] = [[] for _ in contexts]
        texts = [""] * len(contexts)
        active = list(range(len(contexts)))
        produced = 0
        while active and produced < limit:
            n = min(GENERATION_CHUNK, limit - produced)
            out = self.model.generate(pending_BP, n, state=state, temperature=temperature,
                                      top_k=None if top_k is None else int(top_k),
                                      top_p=None if top_p is None else float(top_p), generator=self.generator)
            produced += n
            # Keep the last new token out of the state again, so the next call has an input.
            state = self.model.advance(torch.cat([pending_BP, out.tokens[:, :-1]], dim=1), state=state)
            pending_BP = out.tokens[:, -1:]
            keep = []
            for b, row in enumerate(active):
                generated[row].extend(out.tokens[b].tolist())
                texts[row] = self.tokenizer.decode(generated[row])
                # A character cut in two by the chunk shows as U+FFFD until its other bytes come:
                # look for stops only in what is final.
                settled = texts[row] if produced >= limit else texts[row].rstrip("\ufffd")
                cut = _first_stop(settled, until)
                if cut is None:
                    keep.append(b)
                else:
                    texts[row] = texts[row][:cut]
            if len(keep) < len(active):
                active = [active[b] for b in keep]
                state, pending_BP = state.select(keep), pending_BP[keep]
        return texts

    # ------------------------------------------------------------------ helpers

    def _encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """lm-eval's convention: trailing spaces of the context belong to the continuation, and the
        continuation's ids are those of context + continuation after the context's ids."""
        spaces = len(context) - len(context.rstrip())
        if spaces:
            context, continuation = context[:-spaces], context[-spaces:] + continuation
        context_ids = self.tokenizer.encode(context) if context else []
        whole = self.tokenizer.encode(context + continuation)
        return context_ids, whole[len(context_ids):]

    def _warn_empty_context(self) -> None:
        if not self._warned_empty_context:
            logger.warning(
                "a loglikelihood request has an empty context: its continuation's first token starts the stream "
                "and is not scored (a Memformer never predicts a stream's first token)"
            )
            self._warned_empty_context = True

    @property
    def tokenizer_name(self) -> str:
        return repr(self.tokenizer.identity())


def _gen_kwargs(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"generate_until expects a dict of generation settings, got {type(value).__name__}")
    return dict(value)


def _first_stop(text: str, until: Sequence[str]) -> int | None:
    cuts = [text.find(stop) for stop in until if stop and stop in text]
    return min(cuts) if cuts else None


def _pad(rows: Sequence[Sequence[int]], device: torch.device) -> torch.Tensor:
    """Right-padded (B, max length) ids. Padding only follows real tokens, and every view of the
    stream is causal, so it never changes a value that is read."""
    width = max(1, max(len(r) for r in rows))
    out = torch.zeros(len(rows), width, dtype=torch.long)
    for b, row in enumerate(rows):
        out[b, : len(row)] = torch.as_tensor(list(row), dtype=torch.long)
    return out.to(device)


def _scatter_rows(state: Any, rows: list[int], new: Any) -> Any:
    """``state`` with ``rows`` replaced by the rows of ``new`` (states are immutable values)."""
    index = torch.tensor(rows, dtype=torch.long, device=state.tensors()["position"].device)
    tensors = {name: value.index_copy(0, index, new.tensors()[name].to(value.dtype))
               for name, value in state.tensors().items()}
    return type(state).from_tensors(tensors)


def _positive_int(name: str, value: Any) -> int:
    """lm-eval hands ``model_args`` over as strings ("8"); anything but a whole number >= 1 is refused."""
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or int(text) < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r} ('auto' is not supported)")
    return int(text)


def task_manager(include_path: Sequence[str | Path] = (), *, include_defaults: bool = False,
                 metadata: dict[str, Any] | None = None):
    """An lm-eval ``TaskManager`` that knows the shipped tasks (``lm_eval_tasks/``) and ``include_path``.

    ``include_defaults=True`` also indexes lm-eval's own tasks (several seconds).
    """
    from lm_eval.tasks import TaskManager

    paths = [str(TASKS_DIR), *(str(p) for p in include_path)]
    return TaskManager(include_path=paths, include_defaults=include_defaults, metadata=metadata)


__all__ = ["MODEL_NAME", "TASKS_DIR", "MemformerLM", "task_manager"]
