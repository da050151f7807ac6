"""What the memory slots do over documents (the paper's Fig. 6): which keep their content, which
are overwritten, and how that relates to each slot's forgetting bias.

Shape legend: P segments, H write heads, S slots.

A slot's **self weight** at a write is a_i[0] (``writer_attention.py``). Each write head has its
own softmax and writes its own chunk of the slot (D / H of its dimensions), so there is one self
weight per (slot, head) pair; their mean over heads is the share of its old vector the slot keeps.
Both levels are reported: a writer may keep whole chunks in some heads and overwrite the others.

Per the paper (spec section 3), mid-document 60-80% of the slots attend almost only to
themselves, 5-10% are overwritten almost entirely each segment, and at a document's start nearly
every slot takes new content; slots that are often overwritten have larger forgetting-bias norms
||v_i|| (about 3.2 against 1.15). The thresholds that turn "almost only" and "almost entirely"
into numbers are ours: self weight > 0.5 keeps, < 0.1 is overwritten.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from ..data import TokenizedCorpus
from ..model import Memformer
from .trace import trace_memory
from .writer_attention import check_has_memory

KEEP_THRESHOLD = 0.5
OVERWRITE_THRESHOLD = 0.1
# Writes from this segment of a document on count as "mid-document".
MID_DOCUMENT_FROM = 8
# Documents traced together (documents of equal traced length share a batch).
BATCH_ROWS = 32


@dataclasses.dataclass(frozen=True)
class SlotAnalysis:
    """The memory analysis of one model over the first segments of some documents.

    document: the corpus index of the document of ``document_keep_PHS``.
    document_keep_PHS: (P, H, S) the self weight of every (slot, head) at every write of that
    document; ``document_keep_PS`` is its mean over heads.
    documents: corpus indices of the documents traced; segments: how many segments each.
    keep_share_P / overwrite_share_P: at the write after segment p, the share of slots with a self
    weight above KEEP_THRESHOLD / below OVERWRITE_THRESHOLD, averaged over the documents that reach
    p (``documents_P`` of them); pair_keep_share_P / pair_overwrite_share_P: the same over (slot,
    head) pairs.
    head_first_keep_H / head_mid_keep_H: each head's mean self weight at a document's first write /
    mid-document.
    slot_mean_keep_S / slot_overwrite_rate_S: per slot over every write but a document's first
    (where all slots start blank): the mean self weight, and how often it is below OVERWRITE_THRESHOLD.
    bias_norm_S: ||v_i|| of the forgetting bias.
    often_overwritten / rarely_overwritten: the quarter of the slots with the lowest / highest
    mean self weight (at least one each).
    summary: the numbers the paper states (see ``summarize``).
    """

    document: int
    document_keep_PHS: np.ndarray
    documents: list[int]
    segments: list[int]
    keep_share_P: np.ndarray
    overwrite_share_P: np.ndarray
    pair_keep_share_P: np.ndarray
    pair_overwrite_share_P: np.ndarray
    documents_P: np.ndarray
    head_first_keep_H: np.ndarray
    head_mid_keep_H: np.ndarray
    slot_mean_keep_S: np.ndarray
    slot_overwrite_rate_S: np.ndarray
    bias_norm_S: np.ndarray
    often_overwritten: list[int]
    rarely_overwritten: list[int]
    summary: dict[str, Any]

    @property
    def document_keep_PS(self) -> np.ndarray:
        return self.document_keep_PHS.mean(axis=1)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: arrays become (nested) lists of floats."""
        values = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            values[field.name] = value.tolist() if isinstance(value, np.ndarray) else value
        values["document_keep_PS"] = self.document_keep_PS.tolist()
        return values


def analyze_slots(
    model: Memformer,
    corpus: TokenizedCorpus,
    *,
    document: int | None = None,
    max_documents: int | None = None,
    max_segments: int = 64,
) -> SlotAnalysis:
    """Trace the first ``max_segments`` segments of each document (the first ``max_documents`` of
    those at least one segment long; None: all) from a fresh memory, and summarise the slots.

    ``document`` picks the document drawn segment by segment (default: the longest); it is traced
    even when it is not among the first ``max_documents``.
    """
    check_has_memory(model)
    if isinstance(max_segments, bool) or not isinstance(max_segments, int) or max_segments < 1:
        raise ValueError(f"max_segments must be a positive integer, got {max_segments!r}")
    if max_documents is not None and (isinstance(max_documents, bool) or not isinstance(max_documents, int)
                                      or max_documents < 1):
        raise ValueError(f"max_documents must be a positive integer or None, got {max_documents!r}")
    length = model.config.segment_len
    lengths = corpus.doc_lengths
    eligible = [d for d in range(corpus.num_documents) if lengths[d] >= length]
    if not eligible:
        raise ValueError(f"no document of {corpus.name} is at least one segment ({length} tokens) long")
    if document is None:
        document = int(np.argmax(lengths))
    elif isinstance(document, bool) or not isinstance(document, int) or not 0 <= document < corpus.num_documents:
        raise ValueError(f"--document must be an index 0..{corpus.num_documents - 1} of {corpus.name}, got {document!r}")
    elif lengths[document] < length:
        raise ValueError(f"document {document} of {corpus.name} has {lengths[document]} tokens, less than one segment "
                         f"({length}); pick another --document")
    chosen = eligible if max_documents is None else eligible[:max_documents]
    if document not in chosen:
        chosen = chosen + [document]
    keeps = _trace_documents(model, corpus, chosen, max_segments=max_segments)
    bias_norm_S = model.memory_norm.bias().detach().double().norm(dim=-1).cpu().numpy()
    return summarize(keeps, bias_norm_S, document=document)


def _trace_documents(model: Memformer, corpus: TokenizedCorpus, documents: list[int], *,
                     max_segments: int) -> dict[int, np.ndarray]:
    """(P_d, H, S) self weights per document; documents with the same P_d are traced as one batch."""
    length = model.config.segment_len
    device = next(model.parameters()).device
    by_segments: dict[int, list[int]] = {}
    for d in documents:
        by_segments.setdefault(min(max_segments, len(corpus.document(d)) // length), []).append(d)
    keeps = {}
    for segments, group in by_segments.items():
        for start in range(0, len(group), BATCH_ROWS):
            rows = group[start:start + BATCH_ROWS]
            tokens_BN = torch.as_tensor(np.stack([np.asarray(corpus.document(d)[:segments * length], dtype=np.int64)
                                                  for d in rows]), device=device)
            keep_BPHS = trace_memory(model, tokens_BN).keep_BPHS.double().cpu().numpy()
            keeps.update(zip(rows, keep_BPHS))
    return {d: keeps[d] for d in documents}


def summarize(keeps: dict[int, np.ndarray], bias_norm_S: np.ndarray, *, document: int) -> SlotAnalysis:
    """The statistics of ``SlotAnalysis`` from each document's (P_d, H, S) self weights."""
    documents = list(keeps)
    longest = max(k.shape[0] for k in keeps.values())
    sums = {name: np.zeros(longest) for name in ("keep", "overwrite", "pair_keep", "pair_overwrite", "documents")}
    for keep_PHS in keeps.values():
        p, slot_PS = keep_PHS.shape[0], keep_PHS.mean(axis=1)
        sums["keep"][:p] += (slot_PS > KEEP_THRESHOLD).mean(axis=1)
        sums["overwrite"][:p] += (slot_PS < OVERWRITE_THRESHOLD).mean(axis=1)
        sums["pair_keep"][:p] += (keep_PHS > KEEP_THRESHOLD).mean(axis=(1, 2))
        sums["pair_overwrite"][:p] += (keep_PHS < OVERWRITE_THRESHOLD).mean(axis=(1, 2))
        sums["documents"][:p] += 1
    documents_P = sums.pop("documents")
    shares = {name: total / documents_P for name, total in sums.items()}
    # Per-slot statistics skip each document's first write, where every slot starts from blank.
    later = [k[1:] for k in keeps.values() if k.shape[0] > 1]
    writes_WHS = np.concatenate(later) if later else np.concatenate(list(keeps.values()))
    writes_WS = writes_WHS.mean(axis=1)
    slot_mean_keep_S = writes_WS.mean(axis=0)
    slot_overwrite_rate_S = (writes_WS < OVERWRITE_THRESHOLD).mean(axis=0)
    order = np.argsort(slot_mean_keep_S, kind="stable")
    quarter = max(1, len(order) // 4)
    often, rarely = sorted(order[:quarter].tolist()), sorted(order[-quarter:].tolist())
    mid_from = MID_DOCUMENT_FROM if longest > MID_DOCUMENT_FROM else 1
    mid = [k[mid_from:] for k in keeps.values() if k.shape[0] > mid_from]
    mid_WHS = np.concatenate(mid) if mid else writes_WHS
    mid_WS = mid_WHS.mean(axis=1)
    first_HS = np.stack([k[0] for k in keeps.values()])  # (documents, H, S)
    first_S = first_HS.mean(axis=1)
    summary = {
        "documents": len(documents),
        "writes": int(sum(k.shape[0] for k in keeps.values())),
        "heads": int(first_HS.shape[1]),
        "first_write_keep_share": float((first_S > KEEP_THRESHOLD).mean()),
        "first_write_overwrite_share": float((first_S < OVERWRITE_THRESHOLD).mean()),
        "first_write_mean_keep": float(first_S.mean()),
        "first_write_pair_keep_share": float((first_HS > KEEP_THRESHOLD).mean()),
        "first_write_pair_overwrite_share": float((first_HS < OVERWRITE_THRESHOLD).mean()),
        "mid_document_from_segment": mid_from,
        "mid_document_writes": int(mid_WS.shape[0]),
        "mid_document_keep_share": float((mid_WS > KEEP_THRESHOLD).mean()),
        "mid_document_overwrite_share": float((mid_WS < OVERWRITE_THRESHOLD).mean()),
        "mid_document_mean_keep": float(mid_WS.mean()),
        "mid_document_pair_keep_share": float((mid_WHS > KEEP_THRESHOLD).mean()),
        "mid_document_pair_overwrite_share": float((mid_WHS < OVERWRITE_THRESHOLD).mean()),
        "often_overwritten_bias_norm": float(bias_norm_S[often].mean()),
        "rarely_overwritten_bias_norm": float(bias_norm_S[rarely].mean()),
        "bias_norm_ratio": float(bias_norm_S[often].mean() / bias_norm_S[rarely].mean()),
        "spearman_take_vs_bias_norm": spearman(1.0 - slot_mean_keep_S, bias_norm_S),
        "keep_threshold": KEEP_THRESHOLD,
        "overwrite_threshold": OVERWRITE_THRESHOLD,
    }
    return SlotAnalysis(
        document=document, document_keep_PHS=keeps[document], documents=documents,
        segments=[int(keeps[d].shape[0]) for d in documents], keep_share_P=shares["keep"],
        overwrite_share_P=shares["overwrite"], pair_keep_share_P=shares["pair_keep"],
        pair_overwrite_share_P=shares["pair_overwrite"], documents_P=documents_P,
        head_first_keep_H=first_HS.mean(axis=(0, 2)), head_mid_keep_H=mid_WHS.mean(axis=(0, 2)),
        slot_mean_keep_S=slot_mean_keep_S, slot_overwrite_rate_S=slot_overwrite_rate_S, bias_norm_S=bias_norm_S,
        often_overwritten=often, rarely_overwritten=rarely, summary=summary,
    )


def spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    """Spearman's rank correlation (average ranks for ties); None when either side is constant."""
    rx, ry = _ranks(np.asarray(x, dtype=np.float64)), _ranks(np.asarray(y, dtype=np.float64))
    if rx.std() == 0 or ry.std() == 0:
        return None
    return float(np.corrcoef(rx, ry)[0, 1])


def _ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values), dtype=np.float64)
    for value in np.unique(values):  # ties share their average rank
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks
