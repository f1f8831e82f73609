"""The CNN's figures: digits with their predicted classes, and the predictive check of the
class counts."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jaxpm.plots import pyplot


def digits(
    images: np.ndarray,
    predicted: np.ndarray,
    path: str | Path,
    *,
    labels: np.ndarray | None = None,
    confidence: np.ndarray | None = None,
    title: str = "",
    n: int = 32,
) -> None:
    """A grid of the first ``n`` images titled with their predicted class (green when it
    matches the label, red when not) and, if given, the predicted probability."""
    plt = pyplot()
    n = min(n, len(images))
    ncols = 8
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.4 * ncols, 1.65 * nrows + 0.4), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if i >= n:
            continue
        img = np.asarray(images[i], dtype=float)
        ax.imshow(img.reshape(img.shape[0], img.shape[1], -1)[..., 0], cmap="gray_r")
        text = f"{int(predicted[i])}"
        color = "k"
        if labels is not None:
            right = int(predicted[i]) == int(labels[i])
            color = "green" if right else "red"
            text += "" if right else f" ({int(labels[i])})"
        if confidence is not None:
            text += f" {confidence[i]:.2f}"
        ax.set_title(text, color=color, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def class_counts(observed: np.ndarray, draws: np.ndarray, path: str | Path, *, what: str, name: str) -> None:
    """How many images each class has, observed (points) against the predictive draws (bars:
    median, and a 90% interval). ``draws`` has shape ``(n_draws, n_images)``."""
    plt = pyplot()
    observed = np.asarray(observed, dtype=int)
    draws = np.asarray(draws, dtype=int).reshape(len(draws), -1)
    k = int(max(observed.max(), draws.max())) + 1
    counts = np.stack([np.bincount(d, minlength=k) for d in draws])
    lo, mid, hi = np.percentile(counts, [5, 50, 95], axis=0)
    classes = np.arange(k)
    fig, ax = plt.subplots(figsize=(7, 3.4))
    ax.bar(classes, mid, color="C0", alpha=0.5, label=f"{what}: median")
    ax.errorbar(classes, mid, yerr=[mid - lo, hi - mid], fmt="none", ecolor="C0", capsize=3, label="90% interval")
    ax.plot(classes, np.bincount(observed, minlength=k), "o", color="k", ms=5, label="observed")
    ax.set_xticks(classes)
    ax.set_xlabel(f"{name}: class")
    ax.set_ylabel("images")
    ax.set_title(f"{name}: class counts, {what} ({len(draws)} draws) against the data", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


__all__ = ["digits", "class_counts"]
