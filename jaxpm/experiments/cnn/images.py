"""Digit images for the CNN experiment, offline first.

:func:`load_images` returns ``(images, labels)``: images of shape ``(n, 28, 28, 1)`` with
values in [0, 1], labels ``int64`` of shape ``(n,)``. It takes images ``offset`` to
``offset + n - 1`` in the source's own order, never shuffled, so the same call always
gives the same images and ``offset=n`` gives a held-out set after the training images::

    x, y = load_images("digits", 1000)                  # training images
    x_test, y_test = load_images("digits", 500, offset=1000)   # the next 500

Three sources:

``digits`` (the default; no files, no network)
    scikit-learn's bundled ``load_digits()``: 1,797 handwritten digits of 8x8 pixels with
    values 0..16, in scikit-learn's order (the classes cycle, so any slice is roughly
    balanced). Divided by 16, then resized to 28x28 with bilinear interpolation
    (``jax.image.resize(..., method="linear")``: half-pixel centres, edges clamped; the
    same as ``scipy.ndimage.zoom(order=1, grid_mode=True, mode="nearest")``). Blurrier
    than MNIST, but the same shape, so the post's network runs on it unchanged.
``mnist``
    MNIST from a tensorflow-datasets folder ``data_dir``, read with
    ``tfds.data_source`` (random access, numpy only: works without TensorFlow). Nothing
    is ever downloaded. ``data_source`` reads the ``array_record`` format, not the
    TFRecord files that ``tfds.load`` writes by default, so prepare the folder on a
    connected machine with ``tfds.builder("mnist", data_dir=DIR,
    file_format="array_record").download_and_prepare()`` (or the command line
    ``tfds build mnist --file_format=array_record --data_dir=DIR``).
    Pixels (uint8) are divided by 255. ``split`` is a tfds split: ``train`` (60,000),
    ``test`` (10,000) or a slice like ``train[:10%]``.
``npz``
    A NumPy ``.npz`` file ``path`` with arrays ``images`` (or ``x``) of shape
    ``(N, 28, 28)``, ``(N, 28, 28, 1)`` or ``(N, 784)``, either integers 0..255 (divided
    by 255) or floats already in [0, 1], and ``labels`` (or ``y``) of shape ``(N,)``, whole
    numbers >= 0.

Every problem with the request (unknown source, too few images, missing file or data,
wrong arrays) is a one-line :class:`~jaxpm.errors.ConfigError` under a ``cnn.*`` key
that says how to fix it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jaxpm.errors import ConfigError, did_you_mean

__all__ = ["SOURCES", "load_images"]

SOURCES = ("digits", "mnist", "npz")
SIZE = 28  # images are SIZE x SIZE x 1


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
    """Images ``offset .. offset + n - 1`` of ``source`` and their labels.

    ``data_dir`` and ``split`` are for ``mnist``, ``path`` for ``npz``; ``dtype`` is the
    images' float dtype. Returns ``(images, labels)`` of shapes ``(n, 28, 28, 1)`` and
    ``(n,)``. Raises :class:`~jaxpm.errors.ConfigError` for bad input (see module doc).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ConfigError("cnn.n", f"the number of images must be a positive integer, got {n!r}")
    if offset < 0:
        raise ValueError(f"offset must be >= 0, got {offset}")
    if not np.issubdtype(np.dtype(dtype), np.floating):
        raise ConfigError("cnn.dtype", f"images need a float dtype (float32 or float64), got {dtype!r}")
    if source == "digits":
        images, labels = _digits(offset, n)
    elif source == "mnist":
        images, labels = _mnist(offset, n, data_dir, split)
    elif source == "npz":
        images, labels = _npz(offset, n, path)
    else:
        raise ConfigError("cnn.source", f"unknown image source '{source}'{did_you_mean(source, SOURCES)}")
    return images.astype(dtype), labels.astype(np.int64)


def _check_available(what: str, available: int, offset: int, n: int) -> None:
    if offset + n > available:
        asked = f"{n} images" if offset == 0 else f"images {offset}..{offset + n - 1} (n plus holdout)"
        message = f"{what} has {available} images, but {asked} were asked for; lower cnn.n or cnn.holdout"
        raise ConfigError("cnn.n", message)


def _digits(offset: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    import jax
    from sklearn.datasets import load_digits

    digits = load_digits()
    _check_available("source digits (scikit-learn's load_digits)", len(digits.target), offset, n)
    small = digits.images[offset : offset + n] / 16.0
    big = jax.image.resize(small, (n, SIZE, SIZE), method="linear")
    return np.asarray(big)[..., None], digits.target[offset : offset + n]


def _mnist(offset: int, n: int, data_dir: str | None, split: str) -> tuple[np.ndarray, np.ndarray]:
    import tensorflow_datasets as tfds

    try:
        source = tfds.data_source("mnist", split=split, data_dir=data_dir, download=False, try_gcs=False)
    except (NotImplementedError, KeyError):  # not prepared there, or prepared as TFRecord
        where = data_dir or "tensorflow-datasets' default data_dir (set cnn.data_dir)"
        raise ConfigError(
            "cnn.data_dir",
            f"no MNIST readable without TensorFlow in {where}; on a connected machine run "
            f"tfds.builder('mnist', data_dir='{data_dir or 'DIR'}', file_format='array_record').download_and_prepare() "
            "and copy that folder here, or use source: digits or npz",
        ) from None
    except ValueError as e:  # a split tfds cannot parse or the data does not have
        reason = str(e).splitlines()[0]
        raise ConfigError("cnn.split", f"{reason}; use train, test or a slice like train[:10%]") from None
    _check_available(f"mnist split {split!r}", len(source), offset, n)
    records = [source[i] for i in range(offset, offset + n)]
    images = np.stack([r["image"] for r in records]).reshape(n, SIZE, SIZE, 1) / 255.0
    return images, np.array([r["label"] for r in records])


def _npz(offset: int, n: int, path: str | None) -> tuple[np.ndarray, np.ndarray]:
    if not path:
        raise ConfigError("cnn.path", "source npz needs cnn.path, a .npz file with arrays images and labels")
    if not Path(path).is_file():
        raise ConfigError("cnn.path", f"file not found: {path}")
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ConfigError("cnn.path", f"cannot read {path} as .npz: {e}") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ConfigError("cnn.path", f"{path} holds one array; save both with np.savez(path, images=..., labels=...)")
    with data:
        x = next((data[k] for k in ("images", "x") if k in data.files), None)
        y = next((data[k] for k in ("labels", "y") if k in data.files), None)
        if x is None or y is None:
            raise ConfigError(
                "cnn.path", f"{path} needs arrays 'images' (or 'x') and 'labels' (or 'y'), found {sorted(data.files)}"
            )
    if x.shape[1:] not in ((SIZE, SIZE), (SIZE, SIZE, 1), (SIZE * SIZE,)) or y.shape != x.shape[:1]:
        raise ConfigError(
            "cnn.path",
            f"{path}: expected images of shape (N, 28, 28), (N, 28, 28, 1) or (N, 784) and labels (N,), "
            f"got images {x.shape} and labels {y.shape}",
        )
    _check_available(path, len(y), offset, n)
    pixels = np.issubdtype(x.dtype, np.integer)  # 0..255, else floats in [0, 1]
    top = 255 if pixels else 1
    if not (np.issubdtype(x.dtype, np.number) and x.min() >= 0 and x.max() <= top):
        raise ConfigError("cnn.path", f"{path}: images must be integers 0..255 or floats in [0, 1]")
    if not (np.issubdtype(y.dtype, np.number) and np.all(y >= 0) and np.all(y == np.round(y))):
        raise ConfigError("cnn.path", f"{path}: labels must be whole numbers >= 0 (class indices)")
    x, y = x[offset : offset + n].reshape(n, SIZE, SIZE, 1), y[offset : offset + n]
    return (x / 255.0 if pixels else x), y
