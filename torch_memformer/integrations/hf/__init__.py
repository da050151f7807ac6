"""Hugging Face ``transformers`` adapter (optional extra ``hf``); see ``docs/huggingface.md``.

    import torch_memformer.integrations.hf                    # registers model_type "memformer"
    from transformers import AutoModelForCausalLM, AutoTokenizer
    model = AutoModelForCausalLM.from_pretrained("runs/tiny-hf")   # a MemformerForCausalLM
    tokenizer = AutoTokenizer.from_pretrained("runs/tiny-hf")
    out = model(tokenizer("Hello", return_tensors="pt").input_ids)
    out = model(next_ids, memformer_state=out.memformer_state)       # continue the stream

Importing this module registers ``MemformerHFConfig`` with ``AutoConfig`` and
``MemformerForCausalLM`` with ``AutoModelForCausalLM`` under model_type ``"memformer"``, and, when
PEFT is installed, LoRA's default target modules for it (``lora.py``). A saved directory also
loads without this import, through ``trust_remote_code=True`` (``remote_code.py``).
"""

from __future__ import annotations

from transformers import AutoConfig, AutoModelForCausalLM

from .cache import MemformerCache
from .config import MemformerHFConfig
from .convert import from_native, hf_to_native, native_to_hf
from .lora import LORA_TARGET_MODULES, declare_lora_target_modules
from .model import MemformerCausalLMOutput, MemformerForCausalLM
from .tokenizer import BYTE_SPECIAL_TOKENS, byte_level_backend, from_hf_tokenizer_file, special_token_ids, to_hf_tokenizer

AutoConfig.register(MemformerHFConfig.model_type, MemformerHFConfig, exist_ok=True)
AutoModelForCausalLM.register(MemformerHFConfig, MemformerForCausalLM, exist_ok=True)
declare_lora_target_modules()

__all__ = [
    "BYTE_SPECIAL_TOKENS",
    "LORA_TARGET_MODULES",
    "MemformerCache",
    "MemformerCausalLMOutput",
    "MemformerForCausalLM",
    "MemformerHFConfig",
    "byte_level_backend",
    "from_hf_tokenizer_file",
    "from_native",
    "hf_to_native",
    "native_to_hf",
    "special_token_ids",
    "to_hf_tokenizer",
]
