"""The baselines' sizes under each training preset (``training/presets.py`` holds the presets'
training settings and looks these up through the registry). vocab_size always comes from the
tokenizer.

Sizes are matched to Memformer's in the same preset (``model/presets.py``): the same width, FFN
and segment, about as many layers as Memformer's encoder and decoder together (16 in the paper's
Transformer-XL), a cache of one segment (Transformer-XL) or a window of two (the Transformer).
"""

from __future__ import annotations

from typing import Any

TRANSFORMER_XL_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"d_model": 32, "num_heads": 2, "d_ff": 64, "num_layers": 2, "mem_len": 16, "segment_len": 16},
    "quickstart": {"d_model": 128, "num_heads": 4, "d_ff": 384, "num_layers": 4, "mem_len": 64, "segment_len": 64},
    "cpu-20min": {"d_model": 192, "num_heads": 6, "d_ff": 768, "num_layers": 6, "mem_len": 64, "segment_len": 64},
    "paper-base": {"d_model": 512, "num_heads": 8, "d_ff": 2048, "num_layers": 16, "mem_len": 128,
                   "segment_len": 128, "dropout": 0.1},
}

TRANSFORMER_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"d_model": 32, "num_heads": 2, "d_ff": 64, "num_layers": 2, "context_len": 32, "segment_len": 16},
    "quickstart": {"d_model": 128, "num_heads": 4, "d_ff": 384, "num_layers": 4, "context_len": 128,
                   "segment_len": 64},
    "cpu-20min": {"d_model": 192, "num_heads": 6, "d_ff": 768, "num_layers": 6, "context_len": 128,
                  "segment_len": 64},
    "paper-base": {"d_model": 512, "num_heads": 8, "d_ff": 2048, "num_layers": 16, "context_len": 256,
                   "segment_len": 128, "dropout": 0.1},
}
