"""``MemformerForCausalLM``: the native ``Memformer`` inside a ``transformers`` ``PreTrainedModel``.

Shape legend: B batch, N tokens in a call, V vocabulary.

The wrapper holds the native model as ``self.memformer``, so its weights are the native ones with
the prefix ``memformer.`` (``convert.py`` relies on that). It adds nothing to the computation:

- ``forward(input_ids, memformer_state=None, attention_mask=None, labels=None, reset=None)``
  returns ``MemformerCausalLMOutput(loss, logits, memformer_state)``. ``logits[:, i]`` is the
  distribution of the token after ``input_ids[:, i]`` (the Hugging Face convention, as the native
  ``forward``), and the stream state is an explicit input and output, never kept on the module:
  pass ``out.memformer_state`` back in to continue the streams.
- ``attention_mask`` (B, N) may pad a row on the left and/or the right (zeros, then ones, then
  zeros). Padding is not read at all: rows with the same padding are run together on their real
  tokens only, so the logits, the loss and the returned state are exactly those of the unpadded
  rows (logits at padded positions are 0). Holes inside a row are refused.
- ``gradient_checkpointing_enable()`` makes a training forward one ``torch.utils.checkpoint`` per
  segment (only the state between segments and the logits are kept; backward re-runs each
  segment). ``resize_token_embeddings`` to another size is refused before anything changes.
  ``output_attentions`` and ``output_hidden_states`` are accepted as None only (PEFT passes them).
- ``inputs_embeds`` (B, N, D) instead of ``input_ids`` (training, scoring, PEFT): the native
  ``Memformer.forward_embeds``. The state keeps the current segment's token ids, so it is returned
  only when the call ends at a segment boundary (else None); padding, gradient checkpointing and
  ``generate`` take ids only and refuse vectors with that reason.
- ``generate`` (from ``GenerationMixin``) runs on a ``MemformerCache`` (``cache.py``): the
  memory state plus the decoder's KV cache in the current segment, so each new token costs one
  cached decoder step, as ``stream_generate`` (the native generator) does. Beam search reorders
  it; ``use_cache=False`` re-reads the whole sequence every step (the slow reference).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from transformers import GenerationMixin, PreTrainedModel
from transformers.utils import ModelOutput

from ...model import GenerationOutput, Memformer, MemformerState
from ...model.attention import Rotary
from ...model.loss import shifted_cross_entropy
from ...model.memory import BiasedMemoryNormalization
from .cache import MemformerCache
from .cached_forward import cached_forward
from .config import MemformerHFConfig
from .padding import real_spans


@dataclasses.dataclass
class MemformerCausalLMOutput(ModelOutput):
    """loss: shifted mean cross-entropy or None; logits: (B, N, V); memformer_state: the streams'
    state after the last real token of each row (feed it to the next call)."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    memformer_state: MemformerState | None = None
    # The cache given to forward, after this call's tokens: ``generate`` takes it from here.
    cache: MemformerCache | None = None


class MemformerForCausalLM(PreTrainedModel, GenerationMixin):
    """A Memformer language model with the ``transformers`` API (see the module docstring)."""

    config_class = MemformerHFConfig
    base_model_prefix = "memformer"
    main_input_name = "input_ids"
    # One stream step touches every part of the model; device maps must keep it on one device.
    _no_split_modules = ["Memformer"]
    # transformers' gradient_checkpointing_enable sets ``gradient_checkpointing`` and
    # ``_gradient_checkpointing_func`` (torch.utils.checkpoint, non-reentrant) on this module.
    supports_gradient_checkpointing = True

    def __init__(self, config: MemformerHFConfig) -> None:
        super().__init__(config)
        self.memformer = Memformer(config.to_memformer_config())
        self.gradient_checkpointing = False
        self.post_init()

    # ------------------------------------------------------------------ transformers hooks

    def _init_weights(self, module: torch.nn.Module) -> None:
        """Called by transformers for each module not loaded from a checkpoint (and after __init__).

        The native model initialises itself; this re-runs that scheme (transformers guards the
        ``torch.nn.init`` calls so loaded tensors keep their values) and rebuilds the rotary tables,
        which are buffers that are never saved.
        """
        if isinstance(module, Rotary):
            fresh = Rotary(module.cos_TK.size(1), module.cos_TK.size(0), self.config.rope_base)
            with torch.no_grad():
                module.cos_TK.copy_(fresh.cos_TK)
                module.sin_TK.copy_(fresh.sin_TK)
        elif isinstance(module, BiasedMemoryNormalization):
            fresh = BiasedMemoryNormalization(*module.initial_memory().shape, forgetting=module.forgetting,
                                              init_norm=self.config.forgetting_init_norm, form=module.form)
            with torch.no_grad():
                for name, parameter in module.named_parameters(recurse=False):
                    if not getattr(parameter, "_is_hf_initialized", False):
                        parameter.copy_(getattr(fresh, name))
        elif isinstance(module, Memformer):
            module._init_weights()

    def get_input_embeddings(self) -> torch.nn.Module:
        # The table has vocab_size + 1 rows: the last is the decoder's BOS (not a token id).
        return self.memformer.embedding

    def get_output_embeddings(self) -> None:
        # Tied by slicing the input table (or a separate head when tie_embeddings is false); either
        # way there is nothing for transformers to tie.
        return None

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        # The stream state is not a per-layer key/value cache: generate must not build a DynamicCache;
        # prepare_inputs_for_generation builds a MemformerCache instead.
        return False

    def resize_token_embeddings(
        self, new_num_tokens: int | None = None, pad_to_multiple_of: int | None = None, mean_resizing: bool = True
    ) -> torch.nn.Module:
        """Returns the input embedding when asked for the current size; any other size is refused
        with a ValueError before anything changes.

        The table has vocab_size + 1 rows (the last is the decoder's begin-of-segment input), the
        output head is a slice of it (or its own matrix), and the native config fixes vocab_size:
        growing it in place is not supported yet.
        """
        del mean_resizing
        vocab = self.config.vocab_size
        same_size = new_num_tokens is None or new_num_tokens == vocab
        if same_size and (pad_to_multiple_of is None or vocab % pad_to_multiple_of == 0):
            return self.get_input_embeddings()
        target = vocab if new_num_tokens is None else new_num_tokens
        if pad_to_multiple_of:
            target = -(-target // pad_to_multiple_of) * pad_to_multiple_of
        raise ValueError(
            f"MemformerForCausalLM cannot resize its vocabulary ({vocab} -> {target}); nothing was changed. Its "
            "embedding has vocab_size + 1 rows (the last is the decoder's begin-of-segment input) and the output "
            "head slices it; train or convert a model with the vocabulary you need"
        )

    @classmethod
    def register_for_auto_class(cls, auto_class: Any = "AutoModel") -> None:
        """A no-op. transformers calls it after loading through ``trust_remote_code`` and then, on
        save, copies the file defining the class (``model.py``, whose package-relative imports
        cannot work on their own); ``save_pretrained`` writes the re-exporting modules instead
        (``MemformerHFConfig.save_pretrained``, ``remote_code.py``)."""
        del auto_class

    @classmethod
    def from_pretrained(cls, *args: Any, **kwargs: Any) -> "MemformerForCausalLM":
        """As ``PreTrainedModel.from_pretrained``, but reading safetensors only (never a pickle)."""
        if kwargs.get("use_safetensors") is False:
            raise ValueError("Memformer checkpoints are read from safetensors only; drop use_safetensors=False")
        kwargs["use_safetensors"] = True
        wants_info = kwargs.pop("output_loading_info", False)
        model, info = super().from_pretrained(*args, output_loading_info=True, **kwargs)
        if any(key.endswith("memory_norm.bias_SD") for key in info.get("unexpected_keys", ())):
            # Converted before decision 15: its forgetting bias is one vector, and its config.json
            # has no forgetting_form, which now defaults to "polar" (a direction and a log-norm).
            raise ValueError("this Hugging Face directory was converted before forgetting_form existed; "
                             "convert the native checkpoint again with 'memformer convert --to hf'")
        if any(key.endswith(("null_slot", "null_logit_H")) for key in info.get("missing_keys", ())):
            # A config.json that says read_null_slot without the weights (hand-edited, or written
            # by a version whose default differed): the null slots would start random, silently.
            raise ValueError("this Hugging Face directory has no null-slot weights but its config asks for "
                             "read_null_slot (or read_null_logit_init); set them to false / null in its "
                             "config.json or convert the "
                             "native checkpoint again with 'memformer convert --to hf'")
        return (model, info) if wants_info else model

    # ------------------------------------------------------------------ the model

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        memformer_state: MemformerState | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        reset: torch.Tensor | None = None,
        use_cache: bool | None = None,
        return_dict: bool | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        cache: MemformerCache | None = None,
        logits_to_keep: int = 0,
    ) -> MemformerCausalLMOutput | tuple:
        """Read ``input_ids`` (B, N) after ``memformer_state`` (fresh streams if None).

        ``labels`` (B, N): loss of logits[:, i] against labels[:, i + 1], -100 ignored (padding is
        ignored too). ``reset`` (B,) bool: those rows start new streams at their first real token.
        ``use_cache`` is accepted for transformers' sake and has no effect (the state is always
        returned). ``return_dict=False`` gives the tuple (loss, logits, memformer_state) without Nones.
        ``cache`` (a ``MemformerCache``, what ``generate`` passes) reads the tokens into it, one
        cached decoder step each after the prompt (``cached_forward.py``), and is returned as
        ``cache`` (no loss then); ``logits_to_keep`` K > 0 returns only the last K positions'
        logits (0: all).
        ``inputs_embeds`` (B, N, D) replaces ``input_ids`` (``Memformer.forward_embeds``); the
        returned state is None unless the call ends at a segment boundary.
        ``output_attentions`` and ``output_hidden_states`` exist because PEFT passes them; only
        their default (None or False) is accepted.
        """
        del use_cache
        if output_attentions or output_hidden_states:
            raise ValueError("MemformerForCausalLM returns neither attentions nor hidden states; leave "
                             "output_attentions and output_hidden_states unset")
        if isinstance(logits_to_keep, bool) or not isinstance(logits_to_keep, int) or logits_to_keep < 0:
            raise ValueError(f"logits_to_keep must be a non-negative integer (0 keeps all), got {logits_to_keep!r}")
        use_dict = self.config.return_dict if return_dict is None else return_dict
        if inputs_embeds is not None:
            if input_ids is not None:
                raise ValueError("pass input_ids or inputs_embeds, not both")
            self._check_embeds_call(cache, attention_mask)
            out = self.memformer.forward_embeds(inputs_embeds, state=memformer_state, labels=labels, reset=reset)
            logits = out.logits[:, -logits_to_keep:] if logits_to_keep else out.logits
            output = MemformerCausalLMOutput(loss=out.loss, logits=logits, memformer_state=out.state)
            return output if use_dict else output.to_tuple()
        if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2:
            raise ValueError("input_ids must be a (batch, tokens) tensor of token ids")
        if cache is not None:
            if not isinstance(cache, MemformerCache):
                raise TypeError(f"cache must be a MemformerCache, got {type(cache).__name__}")
            if labels is not None or reset is not None:
                raise ValueError("labels and reset are not taken with a cache, which is for generation")
            logits = cached_forward(self.memformer, input_ids, state=memformer_state, attention_mask=attention_mask,
                                    cache=cache, logits_to_keep=logits_to_keep, full_forward=self._full_forward)
            output = MemformerCausalLMOutput(logits=logits, memformer_state=cache.memformer_state, cache=cache)
            return output if use_dict else output.to_tuple()
        if (attention_mask is None or bool(attention_mask.all())) and self._checkpointing():
            logits, state = self._checkpointed_forward(input_ids, memformer_state, reset)
            loss = None
            if labels is not None:
                loss = shifted_cross_entropy(logits, _mask_labels(labels, torch.ones_like(input_ids)))
        elif attention_mask is None or bool(attention_mask.all()):
            out = self.memformer(input_ids, state=memformer_state, labels=labels, reset=reset)
            logits, state, loss = out.logits, out.state, out.loss
        else:
            logits, state = self._forward_padded(input_ids, memformer_state, attention_mask, reset)
            loss = None
            if labels is not None:
                loss = shifted_cross_entropy(logits, _mask_labels(labels, attention_mask))
        if logits_to_keep:
            logits = logits[:, -logits_to_keep:]
        output = MemformerCausalLMOutput(loss=loss, logits=logits, memformer_state=state)
        return output if use_dict else output.to_tuple()

    def _check_embeds_call(self, cache: MemformerCache | None, attention_mask: torch.Tensor | None) -> None:
        """The paths that need token ids refuse vectors, each with its reason."""
        if cache is not None:
            raise ValueError("generate takes input_ids, not inputs_embeds: the cache keeps the current segment's "
                             "token ids, which the encoder embeds when the segment ends")
        if attention_mask is not None and not bool(attention_mask.all()):
            raise ValueError("inputs_embeds with padding is not supported; pass unpadded rows (or input_ids)")
        if self._checkpointing():
            raise ValueError("gradient checkpointing takes input_ids, not inputs_embeds; call "
                             "gradient_checkpointing_disable() or pass input_ids")

    def _full_forward(
        self, input_ids: torch.Tensor, state: MemformerState | None, attention_mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, MemformerState]:
        """Every position's logits and the state after them (padding not read): a cache's prefill."""
        if attention_mask is None or bool(attention_mask.all()):
            out = self.memformer(input_ids, state=state)
            return out.logits, out.state
        return self._forward_padded(input_ids, state, attention_mask, None)

    def _forward_padded(
        self,
        input_ids: torch.Tensor,
        state: MemformerState | None,
        attention_mask: torch.Tensor,
        reset: torch.Tensor | None,
    ) -> tuple[torch.Tensor, MemformerState]:
        """Run each group of rows that share their padding on its real tokens only."""
        batch, n = input_ids.shape
        spans_B2 = real_spans(attention_mask, (batch, n))
        if state is None:
            state = self.memformer.init_state(batch, device=input_ids.device)
        keys = [tuple(span) for span in spans_B2.tolist()]
        groups: dict[tuple[int, int], list[int]] = {}
        for row, key in enumerate(keys):
            groups.setdefault(key, []).append(row)
        pieces: list[tuple[list[int], int, torch.Tensor | None, MemformerState]] = []
        for (start, end), rows in groups.items():
            rows_state = state.select(rows)
            if end == start:  # nothing real in these rows: their streams do not move
                pieces.append((rows, start, None, rows_state))
                continue
            rows_reset = None if reset is None else reset[rows]
            if self._checkpointing():
                logits, rows_state = self._checkpointed_forward(input_ids[rows, start:end], rows_state, rows_reset)
            else:
                out = self.memformer(input_ids[rows, start:end], state=rows_state, reset=rows_reset)
                logits, rows_state = out.logits, out.state
            pieces.append((rows, start, logits, rows_state))
        weight = self.memformer.embedding.weight
        logits_BNV = weight.new_zeros(batch, n, self.config.vocab_size)
        for rows, start, logits, _ in pieces:
            if logits is not None:
                logits_BNV[rows, start : start + logits.size(1)] = logits.to(logits_BNV.dtype)
        order = torch.tensor([row for rows, _, _, _ in pieces for row in rows], device=input_ids.device)
        new_state = MemformerState.cat([s for _, _, _, s in pieces]).select(torch.argsort(order))
        return logits_BNV, new_state

    def _checkpointing(self) -> bool:
        return self.gradient_checkpointing and self.training and torch.is_grad_enabled()

    def _checkpointed_forward(
        self, input_ids_BN: torch.Tensor, state: MemformerState | None, reset: torch.Tensor | None
    ) -> tuple[torch.Tensor, MemformerState]:
        """The native forward in pieces that end at segment boundaries, each one checkpoint.

        Reading a stream in pieces gives the logits and state of one call (the state carries
        everything), so only the state between pieces and the logits are kept for backward, which
        runs each piece forward again. A piece's last logits predict the next piece's first token,
        so each piece also encodes the segment it completes: the same work as one call. Where the
        pieces are cut never changes a value, only the memory held.
        """
        batch, n = input_ids_BN.shape
        if state is None:
            state = self.memformer.init_state(batch, device=input_ids_BN.device)
        length = self.config.segment_len
        first = length - int(state.position[0]) if reset is None else length
        cuts = [0, *range(first, n, length), n] if first < n else [0, n]
        names = list(state.tensors())

        def piece(ids_BT: torch.Tensor, piece_reset: torch.Tensor | None, *tensors: torch.Tensor):
            out = self.memformer(ids_BT, state=MemformerState.from_tensors(dict(zip(names, tensors))), reset=piece_reset)
            return (out.logits, *out.state.tensors().values())

        logits_parts = []
        for i, (start, end) in enumerate(zip(cuts[:-1], cuts[1:])):
            piece_reset = reset if i == 0 else None
            logits_BTV, *tensors = self._gradient_checkpointing_func(
                piece, input_ids_BN[:, start:end], piece_reset, *state.tensors().values()
            )
            logits_parts.append(logits_BTV)
            state = MemformerState.from_tensors(dict(zip(names, tensors)))
        return torch.cat(logits_parts, dim=1), state

    # ------------------------------------------------------------------ generation

    def prepare_inputs_for_generation(
        self,
        input_ids: torch.Tensor,
        next_sequence_length: int | None = None,
        cache: MemformerCache | None = None,
        attention_mask: torch.Tensor | None = None,
        memformer_state: MemformerState | None = None,
        use_cache: bool = True,
        logits_to_keep: int | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """The inputs of one ``generate`` step.

        With ``use_cache`` (the default) a ``MemformerCache`` is built at the first step, which
        reads the prompt after ``memformer_state`` (if given); later steps pass only the new
        column. ``generate(..., use_cache=False)`` re-reads the whole sequence every step instead:
        the slow reference the cache is tested against. A starting state for one row per prompt
        is repeated for beams and ``num_return_sequences`` (transformers expands tensors only).
        Other transformers arguments (``is_first_iteration``, ...) are not needed. ``inputs_embeds``
        is named only so that generate reaches this one-line refusal instead of its own.
        """
        del kwargs
        if inputs_embeds is not None:
            self._check_embeds_call(MemformerCache(), None)
        inputs: dict[str, Any] = {"attention_mask": attention_mask}
        if logits_to_keep is not None:
            inputs["logits_to_keep"] = logits_to_keep
        if not use_cache:
            return {**inputs, "input_ids": input_ids, "memformer_state": _expand_state(memformer_state, input_ids)}
        cache = MemformerCache() if cache is None else cache
        if cache.is_initialized:
            # memformer_state stays among generate's arguments every step; only the prompt reads it
            # (a cache that has read a prompt holds its own state).
            if next_sequence_length is not None:
                input_ids = input_ids[:, -next_sequence_length:]
            return {**inputs, "input_ids": input_ids, "cache": cache}
        return {**inputs, "input_ids": input_ids, "cache": cache,
                "memformer_state": _expand_state(memformer_state, input_ids)}

    @torch.no_grad()
    def stream_generate(
        self,
        input_ids: torch.Tensor,
        max_new_tokens: int,
        *,
        memformer_state: MemformerState | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
    ) -> GenerationOutput:
        """The fast path: the native generator (``Memformer.generate``). Returns the new tokens
        (B, max_new_tokens) and the state after them; ``temperature=0`` is greedy."""
        return self.memformer.generate(
            input_ids, max_new_tokens, state=memformer_state, temperature=temperature, top_k=top_k,
            top_p=top_p, generator=generator,
        )


def _expand_state(state: MemformerState | None, input_ids: torch.Tensor) -> MemformerState | None:
    """``state`` with each row repeated for the rows ``generate`` made of its prompt (beams,
    return sequences: consecutive copies, as ``repeat_interleave``)."""
    if state is None or state.batch_size == input_ids.size(0):
        return state
    rows, prompts = input_ids.size(0), state.batch_size
    if rows % prompts:
        raise ValueError(f"memformer_state holds {prompts} streams but generate has {rows} rows; give one state "
                         "row per prompt")
    return state.select(torch.arange(prompts, device=state.memory.device).repeat_interleave(rows // prompts))


def _mask_labels(labels: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """-100 where the label is padding or where the position predicting it is padding."""
    if not isinstance(labels, torch.Tensor) or labels.shape != attention_mask.shape:
        got = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"labels must have the shape of input_ids {tuple(attention_mask.shape)}, got {got}")
    mask_BN = attention_mask.to(torch.bool)
    predictor_BN = torch.cat([mask_BN[:, :1], mask_BN[:, :-1]], dim=1)
    return labels.long().masked_fill(~(mask_BN & predictor_BN), -100)
