"""Evaluation: bits per byte and perplexity over a whole split, every token counted once.

Shape legend: B batch, L segment length, V vocabulary.

    result = evaluate(model, valid_corpus, batch_size=8)                       # memory carried
    reset = evaluate(model, valid_corpus, batch_size=8, reset_memory=True)     # memory reset every segment
    print(result.bits_per_byte, reset.bits_per_byte)

The split is laid out as in training (``data.eval_batches``): B rows read in lockstep, the state
carried from segment to segment and from batch to batch, each document starting fresh. Each
segment is scored with decoder-centric logits (``model.predict``: logits[:, i] is the
distribution of token i itself), so the first token of a segment is predicted from the state
like any other, and every token with a label is scored exactly once; the only tokens never
scored are each stream's first (spec decision 6).

``reset_memory=True`` (Memformer only) replaces the memory with the initial memory M_0 before
every segment is encoded, while the decoder still reads the previous segment's encoding: what
is left is the model's short-range context (one segment back), so the difference between the
two results is what the memory carries from further back.

Bits per byte = sum of the loss in nats / ln 2 / UTF-8 bytes of the scored tokens
(``docs/data.md``); comparable across tokenizers. Perplexity is per token of the model's tokenizer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from typing import Any, Callable

import torch
import torch.nn.functional as F
import torch.distributed as dist
from torch import nn

from .data import IGNORE_INDEX, TokenizedCorpus, eval_batches
from .data.evaluation import EvalLayout
from .distance_profile import DistanceBucket, DistanceProfile
from .model import Memformer


@dataclasses.dataclass(frozen=True)
class EvalResult:
    """Sums over the split (over all ranks when distributed) and what follows from them.

    loss_sum: cross-entropy in nats summed over the scored tokens. num_targets: tokens scored.
    num_target_bytes: UTF-8 bytes of the scored tokens. num_batches: batches read (per rank).
    seconds: wall time. reset_memory: whether the memory was reset before every segment.
    by_distance: with ``evaluate(by_distance=True)``, the same sums split by how many segments
    the state had read since its last reset (``distance_profile.py``); they add up to the totals.
    """

    loss_sum: float
    num_targets: int
    num_target_bytes: int
    num_batches: int
    seconds: float
    reset_memory: bool
    by_distance: tuple[DistanceBucket, ...] | None = None

    @property
    def loss(self) -> float:
        """Mean cross-entropy per token, in nats."""
        return self.loss_sum / max(self.num_targets, 1)

    @property
    def bits_per_byte(self) -> float:
        return self.loss_sum / math.log(2) / max(self.num_target_bytes, 1)

    @property
    def bits_per_token(self) -> float:
        return self.loss / math.log(2)

    @property
    def perplexity(self) -> float:
        """Per token of the model's tokenizer (only comparable between runs with the same one)."""
        return math.exp(min(self.loss, 700.0))

    @property
    def tokens_per_second(self) -> float:
        return self.num_targets / self.seconds if self.seconds > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        fields = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        if self.by_distance is None:
            del fields["by_distance"]  # the JSON of a plain evaluation keeps its keys
        else:
            fields["by_distance"] = [bucket.to_dict() for bucket in self.by_distance]
        return {
            **fields,
            "loss": self.loss,
            "bits_per_byte": self.bits_per_byte,
            "bits_per_token": self.bits_per_token,
            "perplexity": self.perplexity,
            "tokens_per_second": self.tokens_per_second,
        }


def evaluate(
    model: nn.Module,
    corpus: TokenizedCorpus,
    *,
    batch_size: int = 8,
    segments_per_batch: int = 8,
    reset_memory: bool = False,
    layout: EvalLayout = "contiguous",
    max_batches: int | None = None,
    autocast_dtype: torch.dtype | None = None,
    rank: int = 0,
    world_size: int = 1,
    progress: Callable[[int, int], None] | None = None,
    by_distance: bool = False,
) -> EvalResult:
    """Score ``corpus`` with ``model`` (a Memformer or a baseline with the same stream contract).

    Args:
        model: the model, on the device to evaluate on; put in eval mode for the call.
        corpus: a tokenized split (``data.tokenized_split``), tokenized as the model was trained.
        batch_size: rows read in lockstep (this rank's, when distributed).
        segments_per_batch: segments per batch read from the corpus (only the read granularity:
            the state is carried across batches, so the result does not depend on it).
        reset_memory: replace the memory with M_0 before every segment (Memformer only).
        layout: "contiguous" (the training layout, least padding) or "documents" (each document
            whole in one row, so the result does not depend on ``batch_size``).
        max_batches: stop after this many batches (a quick estimate; None = the whole split).
        autocast_dtype: run under ``torch.autocast`` with this dtype (the loss is float32).
        rank, world_size: read this rank's rows and sum the results over ranks
            (``torch.distributed`` must be initialised when world_size > 1).
        progress: called as ``progress(batches_done, batches_total)`` after each batch.
        by_distance: also split the sums by the segments read since each row's state was last
            reset (``EvalResult.by_distance``): where in a document the memory helps.

    Returns:
        EvalResult with the sums and bits per byte, per-token loss and perplexity.
    """
    if reset_memory and not isinstance(model, Memformer):
        raise ValueError(f"reset_memory applies to a Memformer's memory; {type(model).__name__} has none to reset")
    if isinstance(segments_per_batch, bool) or not isinstance(segments_per_batch, int) or segments_per_batch < 1:
        raise ValueError(f"segments_per_batch must be a positive integer, got {segments_per_batch!r}")
    if max_batches is not None and (
        isinstance(max_batches, bool) or not isinstance(max_batches, int) or max_batches < 1
    ):
        raise ValueError(f"max_batches must be a positive integer or None, got {max_batches!r}")
    config = model.config
    segment_len = config.segment_len
    batches = eval_batches(corpus, batch_size=batch_size, segment_len=segment_len,
                           window=segments_per_batch * segment_len, layout=layout, rank=rank,
                           world_size=world_size, vocab_size=config.vocab_size)
    total = len(batches) if max_batches is None else min(len(batches), max_batches)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    start = time.perf_counter()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    num_targets = num_bytes = 0
    state = model.init_state(batch_size, device=device)
    profile = DistanceProfile(device) if by_distance else None
    if profile is not None:
        token_bytes_V = torch.from_numpy(corpus.token_bytes).to(device)
        distance_B = torch.zeros(batch_size, dtype=torch.long, device=device)  # segments since the last reset
    autocast = (torch.autocast(device_type=device.type, dtype=autocast_dtype) if autocast_dtype is not None
                else contextlib.nullcontext())
    try:
        with torch.no_grad(), autocast:
            for index in range(total):
                batch = batches.batch_at(index).to(device)
                for start_token in range(0, batch.input_ids.size(1), segment_len):
                    piece = slice(start_token, start_token + segment_len)
                    logits_BLV, state = score_segment(model, batch.input_ids[:, piece], state=state,
                                                      reset_B=batch.reset[:, start_token], reset_memory=reset_memory)
                    if logits_BLV.dtype in (torch.bfloat16, torch.float16):
                        logits_BLV = logits_BLV.float()  # autocast's logits: the loss in float32
                    labels_BL = batch.labels[:, piece]
                    if profile is None:
                        loss_sum += F.cross_entropy(logits_BLV.flatten(0, 1), labels_BL.flatten(),
                                                    ignore_index=IGNORE_INDEX, reduction="sum").double()
                    else:
                        token_loss_BL = F.cross_entropy(logits_BLV.flatten(0, 1), labels_BL.flatten(),
                                                        ignore_index=IGNORE_INDEX, reduction="none").view_as(labels_BL)
                        loss_sum += token_loss_BL.double().sum()
                        distance_B = distance_B.masked_fill(batch.reset[:, start_token], 0)
                        profile.add(distance_B, token_loss_BL, labels_BL, token_bytes_V, IGNORE_INDEX)
                        distance_B = distance_B + 1
                num_targets += batch.num_targets
                num_bytes += batch.num_target_bytes
                if progress is not None:
                    progress(index + 1, total)
    finally:
        model.train(was_training)
    sums = torch.tensor([float(loss_sum), num_targets, num_bytes], dtype=torch.float64)
    if world_size > 1:
        sums = sums.to(device)
        dist.all_reduce(sums, op=dist.ReduceOp.SUM)
        sums = sums.cpu()
        if profile is not None:
            dist.all_reduce(profile.sums_3N, op=dist.ReduceOp.SUM)
    return EvalResult(
        loss_sum=float(sums[0]),
        num_targets=int(sums[1]),
        num_target_bytes=int(sums[2]),
        num_batches=total,
        seconds=time.perf_counter() - start,
        reset_memory=reset_memory,
        by_distance=None if profile is None else profile.buckets(),
    )


def score_segment(model: nn.Module, ids_BL: torch.Tensor, *, state, reset_B: torch.Tensor,
                  reset_memory: bool = False) -> tuple[torch.Tensor, Any]:
    """Decoder-centric logits (B, L, V) of one segment-aligned piece, and the state after it.

    logits[:, i] is the distribution of ids_BL[:, i] given the state and ids_BL[:, :i], for a
    Memformer or a baseline alike; what ``evaluate`` scores, and what experiments that score
    particular positions (``experiments/recall.py``) read. Call it under ``torch.no_grad()``.
    """
    if isinstance(model, Memformer):
        if reset_memory:
            memory_BSD = model.initial_memory().to(state.memory.dtype).expand_as(state.memory)
            state = state.replace(memory=memory_BSD)
        # predict decodes the piece against the previous segment's encoding; advance encodes it
        # and writes the memory: one decoder and one encoder pass per segment, nothing twice.
        logits_BLV = model.predict(ids_BL, state=state, reset=reset_B)
        return logits_BLV, model.advance(ids_BL, state=state, reset=reset_B)
    # The decoder-only baselines: forward's logits[:, i] predicts token i + 1, and the state's
    # last hidden state predicts the piece's first token (zeros, never scored, on a fresh row).
    first_B1V = model.logits_from_hidden(state.last_hidden).unsqueeze(1)
    out = model(ids_BL, state=state, reset=reset_B)
    return torch.cat([first_B1V, out.logits[:, :-1]], dim=1), out.state
