"""Memformer's sizes under each training preset (``training/presets.py`` holds the presets'
training settings and looks these up through the registry). vocab_size always comes from the
tokenizer.

The baselines' sizes under the same presets (``baselines/presets.py``) are matched to these.
"""

from __future__ import annotations

from typing import Any

MEMFORMER_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"d_model": 32, "num_heads": 2, "d_ff": 64, "num_encoder_layers": 1, "num_decoder_layers": 1,
             "num_slots": 4, "segment_len": 16},
    "quickstart": {"d_model": 128, "num_heads": 4, "d_ff": 384, "num_encoder_layers": 2, "num_decoder_layers": 2,
                   "num_slots": 16, "segment_len": 64},
    "cpu-20min": {"d_model": 192, "num_heads": 6, "d_ff": 768, "num_encoder_layers": 2, "num_decoder_layers": 4,
                  "num_slots": 16, "segment_len": 64},
    # The paper's WikiText-103 sizes (spec 3: hidden 512, FFN 2048, heads of 64, 4 + 16 layers).
    "paper-base": {"d_model": 512, "num_heads": 8, "d_ff": 2048, "num_encoder_layers": 4, "num_decoder_layers": 16,
                   "num_slots": 32, "segment_len": 128, "dropout": 0.1},
}
