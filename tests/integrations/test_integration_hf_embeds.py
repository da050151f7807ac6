"""``MemformerForCausalLM(inputs_embeds=...)``: the logits of the ids they embed, through PEFT too;
the paths that need ids (generate, padding, gradient checkpointing) refuse vectors clearly."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never touch the network (read when huggingface_hub loads)

import pytest
import torch

pytest.importorskip("transformers")

from torch_memformer.integrations.hf import from_native  # noqa: E402

from conftest import tiny_model  # noqa: E402


def ids_of(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (batch, length), generator=torch.Generator().manual_seed(seed))


def fresh_hf():
    return from_native(tiny_model(seed=3, vocab_size=256)).eval()


def test_inputs_embeds_give_the_logits_loss_and_state_of_input_ids():
    model = fresh_hf()
    ids = ids_of(2, 16, seed=1)  # two whole segments: the state is returned
    with torch.no_grad():
        reference = model(ids, labels=ids)
        out = model(inputs_embeds=model.get_input_embeddings()(ids), labels=ids)
        torch.testing.assert_close(out.logits, reference.logits, rtol=0, atol=1e-6)
        torch.testing.assert_close(out.loss, reference.loss, rtol=0, atol=1e-6)
        torch.testing.assert_close(out.memformer_state.memory, reference.memformer_state.memory, rtol=0, atol=1e-6)
        # Mid-segment the state cannot keep vectors: none comes back, and the logits still agree.
        short = model(inputs_embeds=model.get_input_embeddings()(ids[:, :11]), logits_to_keep=3)
        assert short.memformer_state is None
        torch.testing.assert_close(short.logits, reference.logits[:, 8:11], rtol=0, atol=1e-6)


@pytest.mark.filterwarnings("ignore:`gradient_checkpointing_enable` is deprecated:FutureWarning")
def test_the_paths_that_need_ids_refuse_vectors_in_one_line():
    model = fresh_hf()
    ids = ids_of(1, 5)
    embeds = model.get_input_embeddings()(ids).detach()
    with pytest.raises(ValueError, match="not both"):
        model(ids, inputs_embeds=embeds)
    with pytest.raises(ValueError, match="generate takes input_ids, not inputs_embeds"):
        model.generate(inputs_embeds=embeds, max_new_tokens=2, do_sample=False)
    with pytest.raises(ValueError, match="with padding is not supported"):
        model(inputs_embeds=embeds, attention_mask=torch.tensor([[0, 1, 1, 1, 1]]))
    model.gradient_checkpointing_enable()
    with pytest.raises(ValueError, match="gradient checkpointing takes input_ids"):
        model.train()(inputs_embeds=embeds)


@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")  # PEFT asks
def test_peft_lora_forward_and_backward_with_inputs_embeds():
    peft = pytest.importorskip("peft")
    base = fresh_hf()
    ids = ids_of(2, 13, seed=5)
    model = peft.get_peft_model(base, peft.LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=8))
    # Make the adapters non-zero, so the check below would see a path that skipped them.
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.05, generator=torch.Generator().manual_seed(len(name)))
    embeds = base.get_input_embeddings()(ids).detach()
    out = model(inputs_embeds=embeds, labels=ids)
    with torch.no_grad():
        torch.testing.assert_close(out.logits, model(input_ids=ids).logits, rtol=0, atol=1e-6)
        with model.disable_adapter():
            assert not torch.allclose(out.logits, model(input_ids=ids).logits, atol=1e-4)  # the adapters count
    out.loss.backward()
    trained = {name for name, p in model.named_parameters() if p.grad is not None}
    assert trained and all("lora_" in name for name in trained)
