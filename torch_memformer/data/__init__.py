"""The data layer: sources -> documents -> token ids (cached) -> batches. See ``docs/data.md``.

    spec = DataSpec("/work/shared/data/debtext")                 # or DataSpec() for the stdlib corpus
    tokenizer = ByteTokenizer()                                   # or load_tokenizer(dir) / train_bpe(...)
    train = tokenized_split(spec, "train", tokenizer, cache_dir="out/cache")
    stream = TrainStream(train, batch_size=8, segment_len=64, window=512)
    input_ids, labels, reset = stream.next_batch()                # (8, 512) each
    for batch in eval_batches(valid, batch_size=8, segment_len=64, window=512): ...

Modules, one concept each: ``tokenizers`` (byte / BPE), ``text_files`` (compressed files, UTF-8
with replacement), ``splits`` (train/valid/test conventions), ``source`` (``DataSpec``, ``Corpus``), ``corpora`` (readers),
``hf`` (Hugging Face datasets), ``tokenized`` (``TokenizedCorpus``), ``cache`` (memory-mapped
token cache), ``cache_entries`` (its size limit and LRU eviction), ``layout`` (documents on rows), ``streams`` (training batches), ``evaluation``
(evaluation batches).
"""

from .cache import default_cache_dir, load_or_tokenize, tokenized_split
from .corpora import open_corpus, stdlib_corpus, stdlib_files
from .source import DATA_FORMATS, Corpus, DataFormat, DataSpec
from .evaluation import EvalBatch, EvalBatches, EvalLayout, EvalStats, eval_batches
from .layout import IGNORE_INDEX
from .splits import SPLITS, Split, split_of
from .streams import Batch, StreamStats, TrainStream
from .tokenized import TokenizedCorpus
from .tokenizers import BPETokenizer, ByteTokenizer, Tokenizer, load_tokenizer, resolve_tokenizer, train_bpe

__all__ = [
    "DATA_FORMATS",
    "IGNORE_INDEX",
    "SPLITS",
    "BPETokenizer",
    "Batch",
    "ByteTokenizer",
    "Corpus",
    "DataFormat",
    "DataSpec",
    "EvalBatch",
    "EvalBatches",
    "EvalLayout",
    "EvalStats",
    "Split",
    "StreamStats",
    "TokenizedCorpus",
    "Tokenizer",
    "TrainStream",
    "default_cache_dir",
    "eval_batches",
    "load_or_tokenize",
    "load_tokenizer",
    "open_corpus",
    "resolve_tokenizer",
    "split_of",
    "stdlib_corpus",
    "stdlib_files",
    "tokenized_split",
    "train_bpe",
]
