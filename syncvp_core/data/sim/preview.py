"""Pictures of simulated sequences: colourised depth and a preview grid."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .config import SimSequence


def colorize_depth(depth: np.ndarray, min_m: float = 0.5, max_m: float = 80.0) -> np.ndarray:
    """float (H, W) metres -> uint8 (H, W, 3): log depth through a colour map (near = bright), invalid = white."""
    d = np.clip(np.nan_to_num(depth, nan=max_m, posinf=max_m), min_m, max_m)
    inv = (math.log(max_m) - np.log(d)) / (math.log(max_m) - math.log(min_m))
    try:
        from matplotlib import colormaps

        rgb = (colormaps["magma"](inv)[..., :3] * 255).astype(np.uint8)
    except ImportError:  # matplotlib is optional: grey ramp
        rgb = np.repeat((inv * 255).astype(np.uint8)[..., None], 3, axis=2)
    rgb[~np.isfinite(depth)] = 255
    return rgb


def preview_grid(sequences: list[SimSequence], path: str | Path, frames_per_row: int = 4, gap: int = 2) -> None:
    """Save a PNG: for each sequence a row of colour frames above a row of colourised depth."""
    from PIL import Image

    rows = []
    for seq in sequences:
        idx = np.linspace(0, len(seq) - 1, frames_per_row).round().astype(int)
        h, w = seq.rgb.shape[1:3]
        for kind in ("rgb", "depth"):
            row = np.full((h, frames_per_row * (w + gap) - gap, 3), 255, np.uint8)
            for j, k in enumerate(idx):
                img = seq.rgb[k] if kind == "rgb" else colorize_depth(seq.depth[k])
                row[:, j * (w + gap): j * (w + gap) + w] = img
            rows.append(row)
        rows.append(np.full((gap * 2, rows[-1].shape[1], 3), 255, np.uint8))
    Image.fromarray(np.concatenate(rows[:-1], axis=0)).save(path)
