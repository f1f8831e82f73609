"""The CNN's figure: digits with their predicted classes."""

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


__all__ = ["digits"]
