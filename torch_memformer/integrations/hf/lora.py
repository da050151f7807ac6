"""PEFT: LoRA's default target modules for model_type "memformer".

PEFT looks up the modules ``LoraConfig(task_type="CAUSAL_LM")`` adapts (when ``target_modules`` is
not given) in a table keyed by model_type; importing ``torch_memformer.integrations.hf`` adds
"memformer" to it when PEFT is installed. The defaults are every attention's query, key and value
projections, as PEFT's defaults for other architectures (``c_attn`` for GPT-2, ``q_proj`` /
``v_proj`` for Llama):

    qkv         self-attention of the encoder and the decoder (one fused projection)
    query       memory reading (encoder), cross-attention (decoder), the memory writer
    key_value   memory reading, cross-attention (one fused projection)
    key, value  the memory writer
"""

from __future__ import annotations

import importlib.util

from .config import MODEL_TYPE

LORA_TARGET_MODULES = ("qkv", "query", "key_value", "key", "value")


def declare_lora_target_modules() -> bool:
    """Add ``LORA_TARGET_MODULES`` to PEFT's defaults for model_type "memformer" (an entry already
    there is kept); False when PEFT is not installed."""
    if importlib.util.find_spec("peft") is None:
        return False
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

    TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.setdefault(MODEL_TYPE, list(LORA_TARGET_MODULES))
    return True
