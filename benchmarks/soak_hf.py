"""Soak through the Hugging Face adapter: one ``generate`` call of 100k+ new tokens on a
``MemformerCache``, RSS and time per token sampled as it goes (issue 13).

The model is ``soak.py``'s (the quickstart preset's Memformer, freshly initialised), converted
with ``integrations.hf.from_native``. One call, not a chain of calls: ``generate`` then holds the
whole sequence of ids it has produced (8 bytes a token) and its cache, so this is the case where
anything that grows with the sequence inside transformers' loop or our cache would show. A
``StoppingCriteria`` that never stops takes the samples (transformers calls it after every
token). Flat means what ``soak.py`` says: RSS within 5% after the first tenth, and the median CPU
time per token of the last quarter within 10% of the second quarter's.

    OMP_NUM_THREADS=1 python benchmarks/soak_hf.py      # writes results/soak_hf.{json,png}
"""

from __future__ import annotations

import argparse
import gc
import sys
import time

import torch

from common import RESULTS, current_rss_bytes, environment, peak_rss_bytes, write_json
from soak import build, plot, summarise


def soak_hf_generate(tokens: int, every: int, seed: int) -> tuple[list[dict], dict]:
    from transformers import StoppingCriteria, StoppingCriteriaList

    from torch_memformer.integrations.hf import from_native

    model = from_native(build(seed)).eval()
    samples: list[dict] = []
    start, cpu_start = time.perf_counter(), time.process_time()
    prompt_len = 1

    class Sample(StoppingCriteria):
        """Never stops; records RSS and the clocks every ``every`` new tokens."""

        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs) -> torch.Tensor:
            done = input_ids.size(1) - prompt_len
            if done % every == 0:
                samples.append({"tokens": done, "seconds": time.perf_counter() - start,
                                "cpu_seconds": time.process_time() - cpu_start, "rss_bytes": current_rss_bytes()})
            return torch.zeros(input_ids.size(0), dtype=torch.bool, device=input_ids.device)

    torch.manual_seed(seed)
    with torch.no_grad():
        model.generate(torch.tensor([[32]]), max_new_tokens=tokens, min_new_tokens=tokens, do_sample=True,
                       temperature=1.0, top_k=0, stopping_criteria=StoppingCriteriaList([Sample()]),
                       pad_token_id=0, eos_token_id=None)
    return samples, model.config.to_dict()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=102_400)
    parser.add_argument("--every", type=int, default=1024, help="new tokens between samples")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    gc.collect()
    samples, config = soak_hf_generate(args.tokens, args.every, args.seed)
    run = {"summary": summarise(samples), "samples": samples}
    print("hf generate", run["summary"], file=sys.stderr)
    write_json("soak_hf", {"environment": environment(), "command": " ".join(sys.argv), "threads": 1,
                           "model": config, "peak_rss_bytes": peak_rss_bytes(), "hf_generate": run})
    plot({"HF generate": run}, RESULTS / "soak_hf.png")


if __name__ == "__main__":
    main()
