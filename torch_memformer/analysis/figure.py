"""The memory analysis in one figure (the paper's Fig. 6, three panels):

(a) the self weight of every slot at every write over one document (slots x segments);
(b) per segment, the share of slots that mostly keep their content (self weight > 0.5) and the
    share that are overwritten (< 0.1): the document's, and the mean over all traced documents;
(c) each slot's forgetting-bias norm ||v_i|| against how much new content it takes, the often-
    and rarely-overwritten quarters marked.
"""

from __future__ import annotations

import numpy as np

from .slots import KEEP_THRESHOLD, OVERWRITE_THRESHOLD, SlotAnalysis

# Paper Fig. 6 / section 5 (spec section 3): mid-document shares and the bias norms.
PAPER_KEEP_SHARE = (0.6, 0.8)
PAPER_OVERWRITE_SHARE = (0.05, 0.10)
PAPER_BIAS_NORMS = (3.2, 1.15)


def plot_slot_analysis(analysis: SlotAnalysis, *, title: str | None = None):
    """A matplotlib Figure of the three panels (the caller saves and closes it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (heat_ax, share_ax, bias_ax) = plt.subplots(1, 3, figsize=(16, 4.6),
                                                     gridspec_kw={"width_ratios": [1.3, 1, 1]})
    keep_PS = analysis.document_keep_PS
    order = np.argsort(-analysis.slot_mean_keep_S, kind="stable")  # rarely overwritten slots on top
    image = heat_ax.imshow(keep_PS[:, order].T, aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0,
                           interpolation="nearest")
    fig.colorbar(image, ax=heat_ax, label="self weight a_i[0]")
    heat_ax.set(xlabel="segment of the document", ylabel="slot (by mean self weight, keepers on top)",
                title=f"(a) self weight, document {analysis.document}")
    heat_ax.set_yticks(range(len(order)), [str(i) for i in order], fontsize=6)

    segments = np.arange(len(analysis.keep_share_P))
    document_keep = (keep_PS > KEEP_THRESHOLD).mean(axis=1)
    document_overwrite = (keep_PS < OVERWRITE_THRESHOLD).mean(axis=1)
    share_ax.axhspan(*PAPER_KEEP_SHARE, color="tab:blue", alpha=0.12, label="paper: keep, mid-document")
    share_ax.axhspan(*PAPER_OVERWRITE_SHARE, color="tab:red", alpha=0.12, label="paper: overwritten")
    share_ax.plot(segments, analysis.keep_share_P, color="tab:blue",
                  label=f"self weight > {KEEP_THRESHOLD} (mean of {len(analysis.documents)} docs)")
    share_ax.plot(segments, analysis.overwrite_share_P, color="tab:red",
                  label=f"self weight < {OVERWRITE_THRESHOLD} (mean of {len(analysis.documents)} docs)")
    share_ax.plot(np.arange(len(document_keep)), document_keep, color="tab:blue", lw=0.7, alpha=0.5, ls="--",
                  label=f"> {KEEP_THRESHOLD}, document {analysis.document}")
    share_ax.plot(np.arange(len(document_overwrite)), document_overwrite, color="tab:red", lw=0.7, alpha=0.5,
                  ls="--", label=f"< {OVERWRITE_THRESHOLD}, document {analysis.document}")
    share_ax.set(xlabel="segment of the document", ylabel="share of slots", ylim=(-0.02, 1.02),
                 title="(b) slots that keep / are overwritten")
    share_ax.legend(fontsize=6.5, loc="center right")
    share_ax.grid(alpha=0.3)

    take_S = 1.0 - analysis.slot_mean_keep_S
    norms_S = analysis.bias_norm_S
    bias_ax.scatter(take_S, norms_S, color="0.6", s=18, label="slot")
    summary = analysis.summary
    for group, color, name, key in ((analysis.often_overwritten, "tab:red", "often overwritten",
                                     "often_overwritten_bias_norm"),
                                    (analysis.rarely_overwritten, "tab:blue", "rarely overwritten",
                                     "rarely_overwritten_bias_norm")):
        bias_ax.scatter(take_S[group], norms_S[group], color=color, s=28,
                        label=f"{name}: mean ||v|| {summary[key]:.2f}")
    rho = summary["spearman_take_vs_bias_norm"]
    bias_ax.set(xlabel="mean share of new content taken (1 - self weight)", ylabel="forgetting bias ||v_i||",
                title="(c) forgetting bias (paper: 3.2 vs 1.15)")
    bias_ax.legend(fontsize=7, title=None if rho is None else f"Spearman {rho:+.2f}", title_fontsize=7)
    bias_ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
