"""Training one variant on the digits and scoring its held-out images (``train_and_score`` runs
in a fresh process when several run at a time)."""

from __future__ import annotations

from typing import Any

import torch

from ...data.digits import GREY_LEVELS, PIXELS_PER_IMAGE, digits_corpus, load_digit_images, split_digits
from ...evaluate import evaluate
from ...training import InMemoryData, TrainConfig
from ..common.flops import count_flops
from ..common.matching import matched_transformer_xl, state_bytes_per_row
from ..common.models import parameter_count
from ..common.training import experiment_train_config, train_in_memory
from .plan import VARIANTS, Plan


def model_config(plan: Plan, name: str) -> dict[str, Any]:
    """The model_config fields of variant ``name`` (its ablation is applied by the trainer)."""
    sizes = dict(vocab_size=GREY_LEVELS, segment_len=plan.segment_len)
    model = VARIANTS[name].model
    if model == "memformer":
        return plan.memformer_fields(**sizes)
    if model == "transformer-xl":
        return matched_transformer_xl(model_config(plan, "memformer"), plan.baseline_fields(**sizes),
                                      vocab_size=GREY_LEVELS)
    # The plain Transformer's window covers a whole image (and the state resets between images).
    return dict(plan.baseline_fields(**sizes), context_len=PIXELS_PER_IMAGE)


def train_config(plan: Plan, name: str, *, seed: int, threads: int) -> TrainConfig:
    variant = VARIANTS[name]
    return experiment_train_config(
        model=variant.model, ablation=variant.ablation, model_config=model_config(plan, name),
        data="in-memory: sklearn digits", **plan.recipe(), seed=seed, threads=threads,
        log_every=max(1, plan.steps // 4),
    )


def corpora(plan: Plan):
    """(train, held-out) TokenizedCorpus of the fixed split (seed 0)."""
    split = split_digits(load_digit_images(), held_out=plan.held_out, seed=0)
    train_images = split.train if plan.train_images is None else split.train[: plan.train_images]
    return digits_corpus(train_images, name="digits/train"), digits_corpus(split.held_out, name="digits/held-out")


def train_and_score(*, plan: Plan, name: str, seed: int, threads: int, count_cost: bool) -> dict:
    """Train variant ``name`` with ``seed`` and score the held-out images (module level: runs in a
    fresh process). ``count_cost`` also counts its FLOPs per image (the same for every seed)."""
    train_corpus, held_out = corpora(plan)
    config = train_config(plan, name, seed=seed, threads=threads)
    run = train_in_memory(config, InMemoryData(train=train_corpus), curve_every=max(1, plan.steps // 60))
    scored = evaluate(run.model, held_out, batch_size=plan.eval_batch_size, layout="documents")
    row = {
        "variant": name, "seed": seed, "perplexity": scored.perplexity, "loss": scored.loss,
        "targets": scored.num_targets, "train_loss": run.final_loss, "curve": run.curve,
        "train_seconds": run.seconds, "tokens_per_second": run.tokens_per_second,
    }
    if count_cost:
        model = run.model
        image = torch.from_numpy(held_out.document(0).astype("int64")).unsqueeze(0)
        with torch.no_grad():
            flops = count_flops(lambda: model(image))
        row.update(parameters=parameter_count(model), flops_per_image=flops,
                   state_bytes_per_row=state_bytes_per_row(config.model, model.config),
                   model_config=model.config.to_dict())
    return row
