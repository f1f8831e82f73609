"""Image data for the CNN experiment, offline first.

``load_images(source, n, offset=...)`` returns ``(images, labels)``: images of shape
``(n, 28, 28, 1)`` scaled to [0, 1], labels ``int64`` of shape ``(n,)``, taken in the
source's order from ``offset`` (so ``offset=n`` gives a held-out set after the first n).

Sources:

- ``digits``: scikit-learn's bundled 8x8 digits (1,797 images, no download), scaled to
  [0, 1] and resized to 28x28 with bilinear interpolation (``jax.image.resize``).
- ``mnist``: MNIST through tensorflow-datasets from ``data_dir``; never downloads (prepare
  it on a connected machine with ``tfds.builder("mnist", data_dir=...).download_and_prepare()``).
- ``npz``: a NumPy ``.npz`` with ``images`` (or ``x``): (N, 28, 28), (N, 28, 28, 1) or
  (N, 784), and ``labels`` (or ``y``): (N,).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jaxpm.errors import ConfigError, did_you_mean

SOURCES = ("digits", "mnist", "npz")


def load_images(
    source: str = "digits",
    n: int = 1000,
    *,
    offset: int = 0,
    data_dir: str | None = None,
    path: str | None = None,
    split: str = "train",
    dtype: str = "float64",
) -> tuple[np.ndarray, np.ndarray]:
    if source == "digits":
        images, labels = _digits()
    elif source == "mnist":
        images, labels = _mnist(data_dir, split, offset + n)
    elif source == "npz":
        images, labels = _npz(path)
    else:
        raise ConfigError("cnn.source", f"unknown image source '{source}'{did_you_mean(source, SOURCES)}")
    if offset + n > len(images):
        raise ConfigError(
            "cnn.n", f"{source} has {len(images)} images, fewer than the {offset + n} asked for (n + holdout); lower n or holdout"
        )
    return images[offset : offset + n].astype(dtype), labels[offset : offset + n].astype(np.int64)


def _digits() -> tuple[np.ndarray, np.ndarray]:
    import jax
    from sklearn.datasets import load_digits

    digits = load_digits()
    small = digits.images.astype(np.float64) / 16.0
    big = jax.image.resize(small, (len(small), 28, 28), method="bilinear")
    return np.asarray(big)[..., None], digits.target


def _mnist(data_dir: str | None, split: str, needed: int) -> tuple[np.ndarray, np.ndarray]:
    import tensorflow_datasets as tfds

    try:
        source = tfds.data_source("mnist", split=split, data_dir=data_dir, download=False)
    except Exception as e:  # noqa: BLE001 - tfds raises several kinds for missing data
        where = data_dir or "tfds's default data_dir"
        raise ConfigError(
            "cnn.data_dir",
            f"MNIST is not prepared in {where} ({type(e).__name__}); prepare it on a connected machine with "
            "tfds.builder('mnist', data_dir=...).download_and_prepare(), or use source: digits / npz",
        ) from None
    count = min(needed, len(source))
    records = [source[i] for i in range(count)]
    images = np.stack([np.asarray(r["image"], dtype=np.float64) for r in records]) / 255.0
    labels = np.asarray([int(r["label"]) for r in records])
    return images.reshape(count, 28, 28, 1), labels


def _npz(path: str | None) -> tuple[np.ndarray, np.ndarray]:
    if not path or not Path(path).is_file():
        raise ConfigError("cnn.path", f"file not found: {path}")
    with np.load(path) as data:
        x = next((data[k] for k in ("images", "x") if k in data), None)
        y = next((data[k] for k in ("labels", "y") if k in data), None)
    if x is None or y is None:
        raise ConfigError("cnn.path", f"{Path(path).name} needs arrays 'images' (or 'x') and 'labels' (or 'y')")
    if x.ndim == 2 and x.shape[1] == 784:
        x = x.reshape(-1, 28, 28)
    if x.ndim == 3:
        x = x[..., None]
    if x.shape[1:] != (28, 28, 1) or y.shape != (len(x),):
        raise ConfigError(
            "cnn.path", f"expected images (N, 28, 28[, 1]) or (N, 784) and labels (N,), got {data_shapes(x, y)}"
        )
    x = x.astype(np.float64)
    return (x / 255.0 if x.max() > 1.0 else x), y


def data_shapes(x, y) -> str:
    return f"images {tuple(x.shape)} and labels {tuple(y.shape)}"
