"""Adapters to the tools people train and evaluate language models with (optional extras).

- ``torch_memformer.integrations.hf``: Hugging Face ``transformers`` (extra ``hf``):
  ``MemformerHFConfig`` / ``MemformerForCausalLM`` registered with ``AutoConfig`` and
  ``AutoModelForCausalLM`` as model_type ``"memformer"``, tokenizers as ``PreTrainedTokenizerFast``,
  and ``native_to_hf`` / ``hf_to_native`` checkpoint conversion (``docs/huggingface.md``).
- ``torch_memformer.integrations.lm_eval``: EleutherAI's lm-evaluation-harness (extra ``lm-eval``):
  an ``LM`` registered as ``"memformer"`` and a local bits-per-byte task (``docs/lm-eval.md``).

Nothing is imported here, so ``import torch_memformer`` never needs the extras.
"""
