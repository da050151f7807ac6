"""scikit-learn's 8x8 handwritten digits as token streams: pixels as tokens, one image a document.

The paper's image experiment (spec section 3) reads MNIST images as sequences of 784 pixels. The
CPU-scale version here uses the 1,797 8x8 images that ship inside scikit-learn (no download):

- a pixel's grey level, an integer 0..16, is its token id (vocabulary 17);
- an image is read in raster order (row by row, left to right): 64 tokens;
- each image is one document, so a model's state is reset at every image and each image is
  predicted from its own pixels only (the first pixel of an image, like the first token of any
  stream, is never predicted: spec decision 6);
- the images are split into train and held-out sets by a seeded permutation.

    images = load_digit_images()                           # (1797, 64) int64 in 0..16
    split = split_digits(images, held_out=261, seed=0)
    train = digits_corpus(split.train, name="digits/train")  # a TokenizedCorpus, 64 tokens per image

scikit-learn is an optional dependency (``pip install torch-memformer[bench]``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .tokenized import TokenizedCorpus

GREY_LEVELS = 17  # load_digits' pixels are integers 0..16
IMAGE_SIDE = 8
PIXELS_PER_IMAGE = IMAGE_SIDE * IMAGE_SIDE


def load_digit_images() -> np.ndarray:
    """(1797, 64) int64: every image of ``sklearn.datasets.load_digits``, pixels in raster order."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ValueError(
            "the digits data ships with scikit-learn, which is not installed: pip install 'torch-memformer[bench]'"
        ) from None
    images = load_digits().images  # (N, 8, 8) float64 holding integers 0..16
    pixels = np.rint(images).astype(np.int64).reshape(len(images), PIXELS_PER_IMAGE)
    assert np.array_equal(pixels.reshape(images.shape), images), "load_digits' pixels are integers"
    assert pixels.min() >= 0 and pixels.max() < GREY_LEVELS
    return pixels


@dataclasses.dataclass(frozen=True, eq=False)
class DigitsSplit:
    """Images (rows of 64 tokens) of each side of a split, and their indices in ``load_digits``."""

    train: np.ndarray
    held_out: np.ndarray
    train_index: np.ndarray
    held_out_index: np.ndarray


def split_digits(images: np.ndarray, *, held_out: int, seed: int) -> DigitsSplit:
    """Hold out ``held_out`` images chosen by a permutation seeded with ``seed``; train on the rest.

    The permutation comes from NumPy's PCG64 bit generator (its stream is fixed across NumPy
    versions), so the same seed always holds out the same images.
    """
    images = np.asarray(images)
    if images.ndim != 2 or images.shape[1] != PIXELS_PER_IMAGE:
        raise ValueError(f"images must be (N, {PIXELS_PER_IMAGE}) pixel rows, got shape {images.shape}")
    count = len(images)
    if isinstance(held_out, bool) or not isinstance(held_out, int) or not 0 < held_out < count:
        raise ValueError(f"held_out must be an integer in [1, {count - 1}] (there are {count} images), got {held_out!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    order = np.argsort(np.random.PCG64(seed).random_raw(count), kind="stable")
    held, kept = np.sort(order[:held_out]), np.sort(order[held_out:])
    return DigitsSplit(train=images[kept], held_out=images[held], train_index=kept, held_out_index=held)


def digits_corpus(images: np.ndarray, *, name: str = "digits") -> TokenizedCorpus:
    """One document per image (its 64 pixel tokens), vocabulary 17; every token counts one "byte"."""
    images = np.asarray(images)
    if images.ndim != 2 or images.shape[1] != PIXELS_PER_IMAGE:
        raise ValueError(f"images must be (N, {PIXELS_PER_IMAGE}) pixel rows, got shape {images.shape}")
    return TokenizedCorpus.from_documents(list(images), vocab_size=GREY_LEVELS, name=name)
