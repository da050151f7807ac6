"""The memory analysis in one figure (the paper's Fig. 6, plus the write heads):

(a) the self weight of every slot in every write head at every write over one document;
(b) per segment, the share of slots that mostly keep their content (self weight > 0.5, mean over
    heads) and the share that are overwritten (< 0.1), averaged over all traced documents; the
    same over (slot, head) pairs;
(c) each slot's forgetting-bias norm ||v_i|| against how much new content it takes, the often-
    and rarely-overwritten quarters marked;
(d) each write head's mean self weight at a document's first write and mid-document.
"""

from __future__ import annotations

import numpy as np

from .slots import KEEP_THRESHOLD, OVERWRITE_THRESHOLD, SlotAnalysis

# Paper Fig. 6 / section 5 (spec section 3): mid-document shares and the bias norms.
PAPER_KEEP_SHARE = (0.6, 0.8)
PAPER_OVERWRITE_SHARE = (0.05, 0.10)
PAPER_BIAS_NORMS = (3.2, 1.15)


def plot_slot_analysis(analysis: SlotAnalysis, *, title: str | None = None):
    """A matplotlib Figure of the four panels (the caller saves and closes it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (heat_ax, share_ax, bias_ax, head_ax) = plt.subplots(
        1, 4, figsize=(20, 4.8), gridspec_kw={"width_ratios": [1.3, 1, 1, 0.7]})
    _heat_map(fig, heat_ax, analysis)
    _shares(share_ax, analysis)
    _bias(bias_ax, analysis)
    _heads(head_ax, analysis)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _heat_map(fig, ax, analysis: SlotAnalysis) -> None:
    keep_PHS = analysis.document_keep_PHS
    segments, heads, slots = keep_PHS.shape
    order = np.argsort(-analysis.slot_mean_keep_S, kind="stable")  # slots that keep most first
    rows_RP = np.concatenate([keep_PHS[:, h, order].T for h in range(heads)])  # (H * S, P), head by head
    image = ax.imshow(rows_RP, aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(image, ax=ax, label="self weight a_i[0]")
    for h in range(1, heads):
        ax.axhline(h * slots - 0.5, color="white", lw=0.6)
    ax.set_yticks([h * slots + (slots - 1) / 2 for h in range(heads)], [f"head {h}" for h in range(heads)],
                  fontsize=7)
    ax.set(xlabel="segment of the document",
           ylabel=f"{slots} slots per write head" if heads > 1 else f"{slots} slots",
           title=f"(a) self weight per slot and head, document {analysis.document}")


def _shares(ax, analysis: SlotAnalysis) -> None:
    segments = np.arange(len(analysis.keep_share_P))
    count = len(analysis.documents)
    ax.axhspan(*PAPER_KEEP_SHARE, color="tab:blue", alpha=0.12, label="paper: keep, mid-document")
    ax.axhspan(*PAPER_OVERWRITE_SHARE, color="tab:red", alpha=0.12, label="paper: overwritten")
    ax.plot(segments, analysis.keep_share_P, color="tab:blue", label=f"slots, self weight > {KEEP_THRESHOLD}")
    ax.plot(segments, analysis.overwrite_share_P, color="tab:red", label=f"slots, self weight < {OVERWRITE_THRESHOLD}")
    if analysis.summary["heads"] > 1:
        ax.plot(segments, analysis.pair_keep_share_P, color="tab:blue", ls="--", lw=1,
                label=f"(slot, head) pairs > {KEEP_THRESHOLD}")
        ax.plot(segments, analysis.pair_overwrite_share_P, color="tab:red", ls="--", lw=1,
                label=f"(slot, head) pairs < {OVERWRITE_THRESHOLD}")
    ax.set(xlabel="segment of the document", ylabel=f"share (mean of {count} documents)", ylim=(-0.02, 1.02),
           title="(b) slots that keep / are overwritten")
    ax.legend(fontsize=6.5, loc="center right")
    ax.grid(alpha=0.3)


def _bias(ax, analysis: SlotAnalysis) -> None:
    take_S = 1.0 - analysis.slot_mean_keep_S
    norms_S = analysis.bias_norm_S
    summary = analysis.summary
    ax.scatter(take_S, norms_S, color="0.6", s=18, label="slot")
    for group, color, name, key in ((analysis.often_overwritten, "tab:red", "often overwritten",
                                     "often_overwritten_bias_norm"),
                                    (analysis.rarely_overwritten, "tab:blue", "rarely overwritten",
                                     "rarely_overwritten_bias_norm")):
        ax.scatter(take_S[group], norms_S[group], color=color, s=28, label=f"{name}: mean ||v|| {summary[key]:.2f}")
    rho = summary["spearman_take_vs_bias_norm"]
    ax.set(xlabel="mean share of new content taken (1 - self weight)", ylabel="forgetting bias ||v_i||",
           title="(c) forgetting bias (paper: 3.2 vs 1.15)")
    ax.legend(fontsize=7, title=None if rho is None else f"Spearman {rho:+.2f}", title_fontsize=7)
    ax.grid(alpha=0.3)


def _heads(ax, analysis: SlotAnalysis) -> None:
    heads = np.arange(len(analysis.head_mid_keep_H))
    ax.bar(heads - 0.2, analysis.head_first_keep_H, 0.4, color="tab:orange", label="first write of a document")
    ax.bar(heads + 0.2, analysis.head_mid_keep_H, 0.4, color="tab:purple",
           label=f"mid-document (segment >= {analysis.summary['mid_document_from_segment']})")
    ax.set_xticks(heads, [str(h) for h in heads])
    ax.set(xlabel="write head", ylabel="mean self weight", ylim=(0, 1.25), title="(d) self weight per head")
    ax.legend(fontsize=7, loc="upper right")
    ax.grid(alpha=0.3, axis="y")
