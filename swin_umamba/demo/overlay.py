"""The demo's overlay PNGs: the grey image with ground truth and prediction in label colours, side by side."""
from __future__ import annotations

from pathlib import Path

from swin_umamba.demo.scoring import format_score
from swin_umamba.fileio import atomic_target

# fill colours of labels 1, 2, ... (RGB 0..1), distinguishable on a grey image
LABEL_COLOURS = [(0.90, 0.16, 0.16), (0.15, 0.55, 0.95), (0.98, 0.80, 0.10), (0.20, 0.80, 0.30),
                 (0.85, 0.35, 0.90), (0.10, 0.85, 0.85), (1.00, 0.55, 0.10), (0.60, 0.40, 0.20)]


def _display_grey(image):
    """Image scaled to 0..1 between its 1st and 99th percentile."""
    import numpy as np

    lo, hi = np.percentile(image, [1, 99])
    return np.clip((image - lo) / max(hi - lo, 1e-6), 0, 1)


def write_overlay(image, gt, pred, classes: dict[int, str], path: Path, title: str = "",
                  scores: dict[str, float] | None = None) -> None:
    """PNG with the grey image and label colours (translucent fill and outline): ground truth on the
    left, prediction on the right, one legend of class names (with the case's Dice when given)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.patches import Patch

    grey = _display_grey(np.asarray(image, dtype=np.float32))
    h, w = grey.shape
    scale = 4.0 / max(h, w)  # each panel about 4 inches on its long side
    fig, axes = plt.subplots(1, 2, figsize=(2 * w * scale + 0.6, h * scale + 1.3), squeeze=True)
    colours = {v: LABEL_COLOURS[i % len(LABEL_COLOURS)] for i, v in enumerate(classes)}
    for ax, labels, name in ((axes[0], gt, "ground truth"), (axes[1], pred, "prediction")):
        labels = np.asarray(labels)
        ax.imshow(grey, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        rgba = np.zeros((h, w, 4), dtype=np.float32)
        for value, colour in colours.items():
            mask = labels == value
            rgba[mask] = (*colour, 0.40)
            if mask.any() and not mask.all():
                ax.contour(mask.astype(np.float32), levels=[0.5], colors=[colour], linewidths=1.5)
        ax.imshow(rgba, interpolation="nearest")
        ax.set_title(name, fontsize=11)
        ax.set_axis_off()
    handles = []
    for value, label_name in classes.items():
        text = label_name
        if scores is not None and label_name in scores:
            text += f"  Dice {format_score(scores[label_name])}"
        handles.append(Patch(facecolor=colours[value], edgecolor=colours[value], label=text))
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 4), frameon=False, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=12)
    fig.subplots_adjust(left=0.02, right=0.98, top=0.86, bottom=0.12, wspace=0.04)
    with atomic_target(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
