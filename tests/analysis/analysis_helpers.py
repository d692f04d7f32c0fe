"""Helpers of the analysis tests (imported as ``analysis_helpers``)."""

from __future__ import annotations

import io

import numpy as np


def png_colours(fig) -> int:  # noqa: ANN001
    """Number of distinct colours of the figure rendered as PNG (1 = blank)."""
    import matplotlib.image as mpimg

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=50)
    buf.seek(0)
    img = mpimg.imread(buf, format="png")
    return len(np.unique(img.reshape(-1, img.shape[-1]), axis=0))


def axis_labels(fig) -> set[str]:  # noqa: ANN001
    """Every x/y(/z) label and title of the figure's visible axes."""
    out: set[str] = set()
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        out.update({ax.get_xlabel(), ax.get_ylabel(), ax.get_title()})
        if hasattr(ax, "get_zlabel"):
            out.add(ax.get_zlabel())
    out.discard("")
    return out
