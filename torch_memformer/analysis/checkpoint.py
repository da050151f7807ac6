"""A saved checkpoint's memory analysed on a corpus: what ``memformer analyze`` and
``memformer bench memory-analysis`` both run, and the lines they print or report."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .slots import SlotAnalysis


@dataclasses.dataclass(frozen=True)
class CheckpointAnalysis:
    """analysis: the slot statistics; record: a JSON-ready record of them and of what was traced;
    figure: the three-panel matplotlib figure."""

    analysis: SlotAnalysis
    record: dict
    figure: Any


def analyze_checkpoint(checkpoint: Path, *, data: Mapping[str, Any], split: str, document: int | None,
                       documents: int | None, max_segments: int, cache_dir: Path | None) -> CheckpointAnalysis:
    """Load ``checkpoint`` (or a run directory's latest), trace the first ``max_segments`` segments
    of the first ``documents`` documents (None: all) of ``split`` and analyse them.

    data: the ``--data*`` values given (``checkpoint_data.DATA_FIELDS``); those not given come from
    the data the checkpoint was trained on. document: the one drawn in the heat map (None: the
    longest). cache_dir: the token cache (None: the default one).
    """
    from ..checkpoint import load_model
    from ..checkpoint_data import data_spec_for_checkpoint
    from ..data import default_cache_dir, tokenized_split
    from ..errors import UserError
    from ..runs import resolve_checkpoint
    from .figure import plot_slot_analysis
    from .slots import analyze_slots
    from .writer_attention import check_has_memory

    for name, value in (("documents", documents), ("max_segments", max_segments)):
        if value is not None and value < 1:
            raise UserError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    checkpoint = resolve_checkpoint(checkpoint)
    loaded = load_model(checkpoint)
    check_has_memory(loaded.model)
    if loaded.tokenizer is None:
        raise UserError(f"checkpoint {checkpoint} has no tokenizer files, so its token ids cannot be matched to text")
    spec = data_spec_for_checkpoint(checkpoint, data)
    corpus = tokenized_split(spec, split, loaded.tokenizer,
                             cache_dir=cache_dir if cache_dir is not None else default_cache_dir())
    model = loaded.model.eval()
    analysis = analyze_slots(model, corpus, document=document, max_documents=documents, max_segments=max_segments)
    record = {
        "checkpoint": str(checkpoint),
        "data": corpus.name,
        "split": split,
        "parameters": sum(p.numel() for p in model.parameters()),
        "config": loaded.config.to_dict(),
        "max_segments": max_segments,
        "analysis": analysis.to_dict(),
    }
    title = f"{checkpoint} on {corpus.name}"
    return CheckpointAnalysis(analysis=analysis, record=record, figure=plot_slot_analysis(analysis, title=title))


def describe(analysis: SlotAnalysis) -> list[str]:
    """The numbers the paper states, one line each."""
    s = analysis.summary
    return [
        f"traced {s['documents']} document(s), {s['writes']:,} writes; document {analysis.document} drawn",
        f"first write of a document: {100 * s['first_write_keep_share']:.0f}% of slots keep (self weight > "
        f"{s['keep_threshold']}), {100 * s['first_write_overwrite_share']:.0f}% are overwritten (< "
        f"{s['overwrite_threshold']}); mean self weight {s['first_write_mean_keep']:.3f}",
        f"mid-document (segment >= {s['mid_document_from_segment']}): {100 * s['mid_document_keep_share']:.0f}% keep, "
        f"{100 * s['mid_document_overwrite_share']:.0f}% overwritten; mean self weight {s['mid_document_mean_keep']:.3f} "
        "(paper: 60-80% keep, 5-10% overwritten)",
        f"per (slot, write head) pair, mid-document: {100 * s['mid_document_pair_keep_share']:.0f}% keep, "
        f"{100 * s['mid_document_pair_overwrite_share']:.0f}% overwritten; mean self weight per head "
        + " ".join(f"{k:.2f}" for k in analysis.head_mid_keep_H),
        f"forgetting bias ||v||: often overwritten {s['often_overwritten_bias_norm']:.3f}, rarely overwritten "
        f"{s['rarely_overwritten_bias_norm']:.3f} (ratio {s['bias_norm_ratio']:.2f}; paper 3.2 vs 1.15), Spearman "
        + ("n/a" if s["spearman_take_vs_bias_norm"] is None else f"{s['spearman_take_vs_bias_norm']:+.2f}")
        + " between new content taken and ||v||",
    ]
