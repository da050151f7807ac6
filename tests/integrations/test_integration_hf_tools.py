"""The Hugging Face adapter with the tools practitioners use, through those tools' own APIs:
loading with trust_remote_code in a fresh process, Trainer (train, evaluate with compute_metrics,
predict), gradient checkpointing, resize_token_embeddings, PEFT LoRA."""

import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never touch the network (read when huggingface_hub loads)
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest
import torch

pytest.importorskip("transformers")


from torch_memformer.checkpoint import save_model  # noqa: E402
from torch_memformer.data import ByteTokenizer  # noqa: E402
from torch_memformer.integrations.hf import MemformerForCausalLM, from_native, native_to_hf  # noqa: E402
from torch_memformer.integrations.hf.remote_code import AUTO_MAP  # noqa: E402

from conftest import tiny_model  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def ids_of(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (batch, length), generator=torch.Generator().manual_seed(seed))


def fresh_hf(seed: int = 3) -> MemformerForCausalLM:
    return from_native(tiny_model(seed=seed, vocab_size=256))


# ---------------------------------------------------------------------------- trust_remote_code

FRESH_PROCESS = """
import json, sys, torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
directory, ids_file = sys.argv[1], sys.argv[2]
assert "torch_memformer.integrations.hf" not in sys.modules
try:
    AutoModelForCausalLM.from_pretrained(directory)
    refused = ""
except ValueError as error:
    refused = str(error)
model = AutoModelForCausalLM.from_pretrained(directory, trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained(directory)
ids = torch.tensor(json.load(open(ids_file)))
with torch.no_grad():
    logits = model(ids).logits
model.save_pretrained(sys.argv[3])  # a model loaded through remote code saves the same remote code
print("\\nRESULT", json.dumps({"class": type(model).__name__, "refused": refused,
                  "config": type(AutoConfig.from_pretrained(directory, trust_remote_code=True)).__name__,
                  "tokens": tokenizer("héllo").input_ids, "logits": logits.tolist()}))
"""


def run_fresh(directory: Path, ids: torch.Tensor, tmp_path: Path) -> dict:
    (tmp_path / "ids.json").write_text(json.dumps(ids.tolist()))
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"),
               PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(directory), str(tmp_path / "ids.json"),
                             str(tmp_path / "resaved")],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
                            stdin=subprocess.DEVNULL)  # transformers' "run the custom code? [y/N]" reads EOF: no
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.split("\nRESULT ")[-1])


@pytest.mark.slow  # a fresh Python process importing transformers
def test_converted_directory_loads_with_trust_remote_code_in_a_fresh_process(tmp_path):
    model = tiny_model(seed=5, vocab_size=256)
    save_model(tmp_path / "native", model, tokenizer=ByteTokenizer())
    native_to_hf(tmp_path / "native", tmp_path / "hf")
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["auto_map"] == AUTO_MAP
    assert (tmp_path / "hf" / "configuration_memformer.py").is_file()
    assert (tmp_path / "hf" / "modeling_memformer.py").is_file()
    ids = ids_of(2, 21, seed=1)
    got = run_fresh(tmp_path / "hf", ids, tmp_path)
    assert got["class"] == "MemformerForCausalLM" and got["config"] == "MemformerHFConfig"
    assert "trust_remote_code" in got["refused"]  # without it transformers asks for it, as for any code
    assert got["tokens"] == list("héllo".encode())
    with torch.no_grad():
        expected = model(ids).logits
    torch.testing.assert_close(torch.tensor(got["logits"]), expected, rtol=0, atol=1e-5)
    # transformers would otherwise copy the files defining the classes (model.py, config.py) beside
    # ours and point auto_map at them; they cannot be imported on their own.
    resaved = tmp_path / "resaved"
    assert sorted(p.name for p in resaved.glob("*.py")) == ["configuration_memformer.py", "modeling_memformer.py"]
    assert json.loads((resaved / "config.json").read_text())["auto_map"] == AUTO_MAP
    for name in ("configuration_memformer.py", "modeling_memformer.py"):
        assert (resaved / name).read_text() == (tmp_path / "hf" / name).read_text()


# ---------------------------------------------------------------------------- PreTrainedModel contract


def test_resize_token_embeddings_refuses_without_changing_anything():
    model = fresh_hf()
    before = {name: value.clone() for name, value in model.state_dict().items()}
    assert model.resize_token_embeddings() is model.get_input_embeddings()
    assert model.resize_token_embeddings(256, pad_to_multiple_of=8) is model.get_input_embeddings()
    with pytest.raises(ValueError, match=r"cannot resize its vocabulary \(256 -> 260\); nothing was changed"):
        model.resize_token_embeddings(260)
    with pytest.raises(ValueError, match=r"\(256 -> 384\)"):
        model.resize_token_embeddings(pad_to_multiple_of=384)
    assert model.config.vocab_size == 256 and model.memformer.config.vocab_size == 256
    after = model.state_dict()
    assert set(after) == set(before) and all(torch.equal(after[k], v) for k, v in before.items())


@pytest.mark.filterwarnings("ignore:`(gradient|is_gradient)_checkpointing.*` is deprecated:FutureWarning")
def test_gradient_checkpointing_gives_the_same_loss_and_gradients_and_recomputes():
    ids = ids_of(2, 29, seed=7)  # 3 segments of 8 and a part (segment_len 8)
    mask = torch.ones_like(ids)
    mask[1, :3] = 0  # a left-padded row goes through the same path
    results = {}
    for checkpointed in (False, True):
        model = fresh_hf().train()
        if checkpointed:
            model.gradient_checkpointing_enable()
            assert model.is_gradient_checkpointing
        calls = []
        model.memformer.decoder.register_forward_hook(lambda *_: calls.append(1))
        state = model.memformer.init_state(2)
        out = model(ids, attention_mask=mask, labels=ids, memformer_state=state)
        forward_calls = len(calls)
        out.loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results[checkpointed] = (out.loss.detach(), out.logits.detach(), out.memformer_state, grads,
                                 forward_calls, len(calls) - forward_calls)
    plain, ckpt = results[False], results[True]
    torch.testing.assert_close(ckpt[0], plain[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(ckpt[1], plain[1], rtol=0, atol=1e-5)
    for name, value in plain[2].tensors().items():
        torch.testing.assert_close(ckpt[2].tensors()[name], value, rtol=0, atol=1e-5)
    assert set(ckpt[3]) == set(plain[3]) and len(plain[3]) > 10
    for name, grad in plain[3].items():
        torch.testing.assert_close(ckpt[3][name], grad, rtol=1e-4, atol=1e-6, msg=name)
    assert plain[5] == 0 and ckpt[5] == ckpt[4] > 0  # backward re-ran every checkpointed decoder call
    # In eval mode (or under no_grad) nothing is checkpointed.
    model = fresh_hf()
    model.activation_checkpointing_enable()  # the transformers 5 name of the same switch
    assert model.gradient_checkpointing and not model._checkpointing()
    assert model.train()._checkpointing()


def test_hidden_outputs_are_refused_clearly():
    model = fresh_hf()
    with pytest.raises(ValueError, match="neither attentions nor hidden states"):
        model(ids_of(1, 4), output_hidden_states=True)


# ---------------------------------------------------------------------------- Trainer


def lm_examples(count: int, length: int, seed: int) -> list[dict[str, torch.Tensor]]:
    ids = ids_of(count, length, seed=seed)
    return [{"input_ids": row, "labels": row.clone()} for row in ids]


@pytest.mark.filterwarnings("ignore:`(gradient|is_gradient)_checkpointing.*` is deprecated:FutureWarning")
def test_trainer_trains_evaluates_with_compute_metrics_and_predicts(tmp_path):
    from transformers import Trainer, TrainingArguments

    model = fresh_hf()
    train, held_out = lm_examples(8, 20, seed=11), lm_examples(6, 20, seed=12)

    def accuracy(eval_pred):
        # predictions: (examples, tokens, vocab) logits; logits[:, i] predicts labels[:, i + 1]
        predicted = eval_pred.predictions[:, :-1].argmax(-1)
        return {"accuracy": float((predicted == eval_pred.label_ids[:, 1:]).mean())}

    args = TrainingArguments(output_dir=str(tmp_path / "out"), max_steps=3, per_device_train_batch_size=4,
                             per_device_eval_batch_size=2, learning_rate=1e-2, report_to="none", use_cpu=True,
                             save_strategy="no", logging_steps=1, seed=0, dataloader_num_workers=0,
                             gradient_checkpointing=True)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=held_out, compute_metrics=accuracy)
    result = trainer.train()
    assert result.global_step == 3 and torch.isfinite(torch.tensor(result.training_loss))
    assert model.gradient_checkpointing  # switched on by TrainingArguments
    assert any(not torch.equal(value, before[name]) for name, value in model.state_dict().items())

    metrics = trainer.evaluate()
    model.eval()
    with torch.no_grad():
        batches = [torch.stack([e["input_ids"] for e in held_out[i : i + 2]]) for i in range(0, 6, 2)]
        outs = [model(ids, labels=ids) for ids in batches]
    logits = torch.cat([out.logits for out in outs])
    labels = torch.stack([e["labels"] for e in held_out])
    expected_accuracy = float((logits[:, :-1].argmax(-1) == labels[:, 1:]).float().mean())
    assert metrics["eval_loss"] == pytest.approx(sum(float(o.loss) for o in outs) / 3, rel=1e-5)
    assert metrics["eval_accuracy"] == pytest.approx(expected_accuracy)

    predicted = trainer.predict(held_out)
    assert predicted.predictions.shape == (6, 20, 256)  # the logits only: the state is not gathered
    torch.testing.assert_close(torch.from_numpy(predicted.predictions), logits, rtol=0, atol=1e-5)
    assert predicted.metrics["test_accuracy"] == pytest.approx(expected_accuracy)


# ---------------------------------------------------------------------------- PEFT


@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")  # PEFT asks
def test_peft_lora_with_default_target_modules():
    peft = pytest.importorskip("peft")
    from torch_memformer.integrations.hf import LORA_TARGET_MODULES

    base = fresh_hf()
    ids = ids_of(2, 19, seed=13)
    with torch.no_grad():
        base_logits = base(ids).logits
    targets = [name for name, module in base.named_modules()
               if isinstance(module, torch.nn.Linear) and name.rsplit(".", 1)[-1] in LORA_TARGET_MODULES]
    model = peft.get_peft_model(base, peft.LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=8))
    adapted = [name for name, module in model.named_modules() if isinstance(module, peft.tuners.lora.LoraLayer)]
    assert len(adapted) == len(targets) > 10
    assert {name.rsplit(".", 1)[-1] for name in adapted} == set(LORA_TARGET_MODULES)
    with torch.no_grad():  # LoRA starts as the identity (B = 0)
        torch.testing.assert_close(model(input_ids=ids).logits, base_logits, rtol=0, atol=1e-6)
    # Train the adapters a little; the stream state passes through PEFT's forward.
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    first = model(input_ids=ids[:, :10], labels=ids[:, :10])
    out = model(input_ids=ids[:, 10:], labels=ids[:, 10:], memformer_state=first.memformer_state)
    (first.loss + out.loss).backward()
    trained = {name for name, p in model.named_parameters() if p.grad is not None}
    assert trained and all("lora_" in name for name in trained)
    optimizer.step()
    model.eval()
    with torch.no_grad():
        adapted_logits = model(input_ids=ids).logits
        assert not torch.allclose(adapted_logits, base_logits, atol=1e-4)
        merged = model.merge_and_unload()
        assert type(merged) is MemformerForCausalLM
        torch.testing.assert_close(merged(ids).logits, adapted_logits, rtol=0, atol=1e-5)


def test_the_adapters_state_goes_to_a_file_like_the_native_one(tmp_path):
    from torch_memformer.state_file import load_state, save_state

    model = fresh_hf()
    ids = ids_of(1, 30, seed=14)
    with torch.no_grad():
        first = model(ids[:, :19])
        save_state(tmp_path / "hf.state", first.memformer_state, model=model.memformer)
        state = load_state(tmp_path / "hf.state", model=model.memformer)
        assert torch.equal(model(ids[:, 19:], memformer_state=state).logits,
                           model(ids[:, 19:], memformer_state=first.memformer_state).logits)
