"""Helpers of the ``memformer_bpb`` lm-eval task (``memformer_bpb.yaml``): read a corpus with the
project's own readers and count, per document, the UTF-8 bytes of the tokens that get scored.

A document is one stream; its first token has no prediction (spec decision 6), so what a
document contributes to bits per byte is (sum of log p over tokens 2..n) / (bytes of tokens
2..n), exactly as ``memformer eval`` counts. Empty documents are skipped, as the token cache does.
"""

from __future__ import annotations

from typing import Any

# All fields are strings or ints, so the task's documents are plain JSON-able rows.
TEXT, SCORED_BYTES, BYTES = "text", "scored_bytes", "bytes"


def load_documents(
    data: str | None = None,
    split: str = "valid",
    data_format: str = "auto",
    text_field: str = "text",
    hf_config: str | None = None,
    valid_fraction: float = 0.05,
    test_fraction: float = 0.05,
    tokenizer: str = "byte",
    **_other_metadata: Any,  # lm-eval passes every task's metadata (e.g. "version") to each task
):
    """The ``test`` split for lm-eval: one row per non-empty document of ``data`` [``split``]."""
    import datasets

    from torch_memformer.data import DataSpec, open_corpus, resolve_tokenizer

    if not data:
        raise ValueError(
            "the memformer_bpb task needs the corpus to score: pass --metadata '{\"data\": \"FILE.jsonl\"}' "
            "(memformer lm-eval --data FILE.jsonl does it for you)"
        )
    spec = DataSpec(source=str(data), format=data_format, text_field=text_field, hf_config=hf_config,
                    valid_fraction=float(valid_fraction), test_fraction=float(test_fraction))
    corpus = open_corpus(spec, split)
    encoder = resolve_tokenizer(_tokenizer_directory(tokenizer))
    byte_lengths = encoder.token_byte_lengths()
    rows: dict[str, list] = {TEXT: [], SCORED_BYTES: [], BYTES: []}
    for text in corpus.documents():
        if not text:
            continue
        ids = encoder.encode(text)
        rows[TEXT].append(text)
        rows[SCORED_BYTES].append(int(byte_lengths[ids[1:]].sum()) if len(ids) > 1 else 0)
        rows[BYTES].append(len(text.encode("utf-8")))
    if not rows[TEXT]:
        raise ValueError(f"{corpus.description} holds no text; check data, split and text_field")
    return datasets.DatasetDict({"test": datasets.Dataset.from_dict(rows)})


def _tokenizer_directory(name: str) -> str:
    """``"byte"``, a tokenizer directory, or a checkpoint or run directory (its latest checkpoint)."""
    from pathlib import Path

    from torch_memformer.data.tokenizers import META_FILE
    from torch_memformer.runs import resolve_checkpoint

    if str(name) == "byte" or (Path(name) / META_FILE).is_file() or not Path(name).is_dir():
        return str(name)
    return str(resolve_checkpoint(name))


def doc_to_target(doc: dict[str, Any]) -> str:
    return doc[TEXT]


def process_results(doc: dict[str, Any], results: list[float]) -> dict[str, tuple[float, int]]:
    (loglikelihood,) = results
    return {"bits_per_byte": (loglikelihood, doc[SCORED_BYTES]), "byte_perplexity": (loglikelihood, doc[SCORED_BYTES])}
