"""Training data: RGB-D sequences held in memory at model resolution, cut into clips.

A *sequence* is a list of consecutive frames (colour uint8, depth metres with NaN = invalid) at its source
rate. Clips are taken at the model's frame rate: ``stride = round(source_rate / model_rate)`` source frames
between clip frames (30 Hz sources -> every 3rd frame at 10 Hz); any start frame is allowed, so the
3 sub-sampling phases all train.

Hold-out: the last ``holdout_fraction`` of every sequence's frames (a contiguous tail) never appears in a
training clip; :func:`split_point` defines it and the model card / evaluation use the same function.

Reader: until the data developer's sharded format lands, sequences in the ``real-rgbd`` folder layout
(rgb/*.png, depth/*.png uint16 mm, frames.csv) are read here with PIL. TODO(data): switch to
``syncvp_core.data.dataset`` so that the project has one reader per format.
"""
from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .. import depth as depth_norm
from ..config import ModelConfig
from ..imageops import resize_depth, resize_rgb


class DataError(ValueError):
    """Training data is missing or malformed; the message names the file."""


@dataclass
class Sequence:
    name: str
    rgb: np.ndarray        # uint8 (N, H, W, 3) at model resolution
    depth: np.ndarray      # float32 (N, H, W) metres, NaN = invalid
    rate_hz: float         # source frame rate
    fingerprint: str       # hash of the source listing (names, stamps), for checkpoint sidecars

    def __len__(self) -> int:
        return len(self.rgb)


def split_point(n_frames: int, holdout_fraction: float) -> int:
    """Index of the first held-out frame: frames [0, k) train, [k, n) are the held-out tail."""
    return int(np.floor(n_frames * (1.0 - holdout_fraction)))


def stride_for(rate_hz: float, model_rate_hz: float) -> int:
    return max(1, int(round(rate_hz / model_rate_hz)))


def read_folder(folder: str | Path, resolution: tuple[int, int], show_progress: bool = True) -> Sequence:
    """Read one sequence in the real-rgbd layout and resize it to ``resolution`` (imageops policy)."""
    from PIL import Image

    folder = Path(folder)
    listing = folder / "frames.csv"
    if not listing.exists():
        raise DataError(f"{folder}: no frames.csv (expected the real-rgbd layout: rgb/, depth/, frames.csv)")
    with open(listing) as f:
        rows = list(csv.DictReader(f))
    need = {"colour_stamp_s", "colour_file", "depth_file"}
    if not rows or not need <= set(rows[0]):
        raise DataError(f"{listing}: expected columns {sorted(need)}")
    stamps = np.array([float(r["colour_stamp_s"]) for r in rows])
    if np.any(np.diff(stamps) <= 0):
        bad = int(np.argmax(np.diff(stamps) <= 0)) + 2
        raise DataError(f"{listing}: colour stamps not increasing at line {bad + 1}")
    rate = 1.0 / float(np.median(np.diff(stamps))) if len(stamps) > 1 else 1.0
    rgbs, deps = [], []
    for r in tqdm(rows, desc=f"read {folder.name}", disable=not show_progress, leave=False):
        rgb = np.asarray(Image.open(folder / r["colour_file"]).convert("RGB"))
        raw = np.asarray(Image.open(folder / r["depth_file"]))
        if raw.dtype != np.uint16:
            raise DataError(f"{folder / r['depth_file']}: depth must be 16-bit PNG millimetres, got {raw.dtype}")
        d = raw.astype(np.float32) / 1000.0
        d[raw == 0] = np.nan
        rgbs.append(rgb)
        deps.append(d)
    rgb = resize_rgb(np.stack(rgbs), tuple(resolution))
    dep = resize_depth(np.stack(deps), tuple(resolution))
    fp = hashlib.sha256(listing.read_bytes()).hexdigest()[:16]
    return Sequence(folder.name, rgb, dep, rate, fp)


def load_sequences(folders, cfg: ModelConfig, show_progress: bool = True) -> list[Sequence]:
    seqs = [read_folder(f, cfg.resolution, show_progress) for f in folders]
    if not seqs:
        raise DataError("no training data: set data.folders and/or data.datasets in the train config")
    return seqs


def data_fingerprint(seqs: list[Sequence], holdout_fraction: float) -> str:
    h = hashlib.sha256()
    for s in seqs:
        h.update(f"{s.name}:{s.fingerprint}:{len(s)}:{holdout_fraction}".encode())
    return h.hexdigest()[:16]


class ClipIndex:
    """Every training clip (sequence, first source frame) of ``length`` frames at ``stride`` that lies
    entirely before the held-out tail."""

    def __init__(self, seqs: list[Sequence], length: int, model_rate_hz: float, holdout_fraction: float):
        self.seqs = seqs
        self.length = length
        self.items: list[tuple[int, int, int]] = []  # (sequence, start, stride)
        for si, s in enumerate(seqs):
            stride = stride_for(s.rate_hz, model_rate_hz)
            end = split_point(len(s), holdout_fraction)
            span = (length - 1) * stride + 1
            self.items.extend((si, start, stride) for start in range(0, end - span + 1))
        if not self.items:
            raise DataError(f"no training clip of {length} frames fits before the held-out tails")

    def __len__(self) -> int:
        return len(self.items)

    def frames(self, i: int, length: int | None = None, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(rgb uint8 (T,H,W,3), depth metres (T,H,W)) of clip i; optionally a sub-window."""
        si, start, stride = self.items[i]
        n = self.length if length is None else length
        idx = start + stride * (offset + np.arange(n))
        s = self.seqs[si]
        return s.rgb[idx], s.depth[idx]


def to_model_tensors(rgb: np.ndarray, dep: np.ndarray, cfg: ModelConfig, flip: np.ndarray | None = None):
    """Batched uint8 (B,T,H,W,3) + metres (B,T,H,W) -> rgb (B,3,T,H,W), depth (B,1,T,H,W) in [-1, 1] and
    the depth validity mask (B,1,T,H,W). ``flip`` (B,) bool mirrors clips horizontally."""
    x_r = torch.from_numpy(rgb).float().div(127.5).sub(1.0).permute(0, 4, 1, 2, 3)
    x_d, mask = depth_norm.normalize(torch.from_numpy(dep), cfg.depth)
    x_d, mask = x_d[:, None], mask[:, None]
    if flip is not None and flip.any():
        f = torch.from_numpy(np.asarray(flip, dtype=bool))
        x_r[f] = x_r[f].flip(-1)
        x_d[f] = x_d[f].flip(-1)
        mask[f] = mask[f].flip(-1)
    return x_r.contiguous(), x_d.contiguous(), mask.contiguous()
