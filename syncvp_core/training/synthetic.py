"""A small synthetic RGB-D sequence in the real-rgbd folder layout, for tests and laptop smoke runs.

A textured plane at a slowly changing depth seen by a camera panning sideways: colour and depth move
together, a few depth pixels are invalid (0), stamps are 30 Hz.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def write_synthetic_folder(path: str | Path, n_frames: int = 60, size: tuple[int, int] = (24, 32),
                           seed: int = 0) -> Path:
    from PIL import Image

    path = Path(path)
    (path / "rgb").mkdir(parents=True, exist_ok=True)
    (path / "depth").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    h, w = size
    tex = rng.integers(0, 256, (h, 4 * w, 3)).astype(np.float32)
    tex = (tex + np.roll(tex, 1, 0) + np.roll(tex, 1, 1) + np.roll(tex, 2, 1)) / 4  # smoother texture
    yy, xx = np.mgrid[0:h, 0:4 * w]
    base_depth = 1.0 + 0.5 * xx / (4 * w) + 0.2 * yy / h
    lines = ["index,color_stamp_s,depth_stamp_s,color_file,depth_file"]
    for i in range(n_frames):
        x0 = i % (3 * w)
        rgb = tex[:, x0 : x0 + w].astype(np.uint8)
        d = base_depth[:, x0 : x0 + w] * (1.0 + 0.1 * np.sin(i / 10))
        mm = np.round(d * 1000).astype(np.uint16)
        mm[rng.random((h, w)) < 0.05] = 0
        Image.fromarray(rgb).save(path / "rgb" / f"{i:06d}.png")
        Image.fromarray(mm).save(path / "depth" / f"{i:06d}.png")
        s = i / 30.0
        lines.append(f"{i},{s:.6f},{s:.6f},rgb/{i:06d}.png,depth/{i:06d}.png")
    (path / "frames.csv").write_text("\n".join(lines) + "\n")
    (path / "intrinsics.yaml").write_text(
        f"width: {w}\nheight: {h}\nfx: {w}\nfy: {w}\ncx: {w / 2 - 0.5}\ncy: {h / 2 - 0.5}\ndepth_unit: mm\n")
    return path


def smoke_overrides(folder: str | Path, run_dir: str | Path, *extra: str) -> list[str]:
    """Overrides that point ``config/train/smoke.yaml`` at a synthetic folder and a run directory."""
    return [f"data.folders=[{folder}]", f"run_dir={run_dir}", *extra]
