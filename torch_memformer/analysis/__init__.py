"""Looking inside a trained Memformer's memory (the paper's Fig. 6), without touching the model.

    from torch_memformer.analysis import analyze_slots, trace_memory, writer_attention
    analysis = analyze_slots(model, valid_corpus, max_segments=64)
    analysis.summary["mid_document_keep_share"]        # share of slots that keep their content

Modules, one concept each: ``writer_attention`` (the writer's attention recomputed from the
model's parameters, checked against the model's own write), ``trace`` (self weights over a stream
of segments), ``slots`` (statistics over documents and the forgetting-bias norms), ``figure``
(the three-panel plot). ``memformer analyze`` and ``memformer bench memory-analysis`` run them.
"""

from .slots import KEEP_THRESHOLD, OVERWRITE_THRESHOLD, SlotAnalysis, analyze_slots, spearman
from .trace import MemoryTrace, trace_memory
from .writer_attention import WriterAttention, check_has_memory, writer_attention

__all__ = [
    "KEEP_THRESHOLD",
    "OVERWRITE_THRESHOLD",
    "MemoryTrace",
    "SlotAnalysis",
    "WriterAttention",
    "analyze_slots",
    "check_has_memory",
    "spearman",
    "trace_memory",
    "writer_attention",
]
