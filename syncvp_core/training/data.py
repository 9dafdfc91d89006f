"""Training data: RGB-D sequences held in memory at model resolution, cut into clips.

A *sequence* is a list of consecutive frames (colour uint8, depth metres with NaN = invalid) at its source
rate. Clips are taken at the model's frame rate: ``stride = round(source_rate / model_rate)`` source frames
between clip frames (30 Hz sources -> every 3rd frame at 10 Hz); any start frame is allowed, so all
sub-sampling phases train.

Sources (one reader per format, owned by :mod:`syncvp_core.data`):

* ``data.folders``: sequence folders (real-rgbd or TUM layout), read with :func:`syncvp_core.data.folder.read_folder`;
  the last ``holdout_fraction`` of every sequence (a contiguous tail, :func:`split_point`) never appears in
  a training clip.
* ``data.datasets``: sharded training sets (``syncvp data from-* / syncvp sim``), read with
  :class:`syncvp_core.data.dataset.RGBDDatasetIndex`; their own split applies (validation sequences are
  skipped, a held-out tail ``val_start`` is respected) and clips never cross a segment boundary (time gap).

Frames are resized to the model resolution with :mod:`syncvp_core.imageops` (the project's resize policy).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
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
    train_end: int = -1    # frames [0, train_end) may train; -1 = decided by holdout_fraction
    segments: list[tuple[int, int]] = field(default_factory=list)  # gap-free [start, end) runs; [] = one

    def __len__(self) -> int:
        return len(self.rgb)


def split_point(n_frames: int, holdout_fraction: float) -> int:
    """Index of the first held-out frame: frames [0, k) train, [k, n) are the held-out tail."""
    return int(np.floor(n_frames * (1.0 - holdout_fraction)))


def stride_for(rate_hz: float, model_rate_hz: float) -> int:
    return max(1, int(round(rate_hz / model_rate_hz)))


def read_folder(folder: str | Path, resolution: tuple[int, int] | None, show_progress: bool = True) -> Sequence:
    """Read one sequence folder (real-rgbd or TUM layout, via :mod:`syncvp_core.data.folder`) and resize it
    to ``resolution`` (None keeps the sensor resolution)."""
    from ..data.folder import FolderError
    from ..data.folder import read_folder as index_folder

    folder = Path(folder)
    try:
        seq = index_folder(folder)
        frames = list(tqdm(seq.frames(), total=len(seq), desc=f"read {folder.name}", disable=not show_progress,
                           leave=False))
    except FolderError as e:
        raise DataError(str(e)) from e
    rgb = np.stack([f.rgb for f in frames])
    dep = np.stack([f.depth for f in frames]).astype(np.float32)
    if resolution is not None:
        rgb, dep = resize_rgb(rgb, tuple(resolution)), resize_depth(dep, tuple(resolution))
    listing = folder / "frames.csv"
    src = listing.read_bytes() if listing.exists() else "".join(f"{p[0]}:{p[2]}," for p in seq.pairs).encode()
    return Sequence(folder.name, rgb, dep, seq.rate_hz, hashlib.sha256(src).hexdigest()[:16])


def read_dataset(root: str | Path, resolution: tuple[int, int], show_progress: bool = True) -> list[Sequence]:
    """The training sequences of a sharded data set (validation sequences skipped, held-out tails kept out)."""
    from ..data.dataset import DatasetError, RGBDDatasetIndex

    try:
        index = RGBDDatasetIndex(root)
        out = []
        fp = hashlib.sha256((Path(root) / "dataset.json").read_bytes()).hexdigest()[:16]
        for meta in tqdm(index.sequences, desc=f"read {Path(root).name}", disable=not show_progress, leave=False):
            if meta.train_end <= 0:
                continue
            d = index.load_sequence(meta.name)
            rgb, dep = d["rgb"], d["depth"].astype(np.float32)
            if tuple(rgb.shape[1:3]) != tuple(resolution):
                rgb, dep = resize_rgb(rgb, tuple(resolution)), resize_depth(dep, tuple(resolution))
            segs = [(int(a), int(b)) for a, b in meta.segments] or [(0, meta.frames)]
            out.append(Sequence(f"{Path(root).name}/{meta.name}", rgb, dep, meta.rate_hz, fp, meta.train_end, segs))
    except DatasetError as e:
        raise DataError(str(e)) from e
    return out


def load_sequences(folders, cfg: ModelConfig, show_progress: bool = True, datasets=()) -> list[Sequence]:
    seqs = [read_folder(f, cfg.resolution, show_progress) for f in folders]
    for root in datasets:
        seqs += read_dataset(root, cfg.resolution, show_progress)
    if not seqs:
        raise DataError("no training data: set data.folders and/or data.datasets in the train config")
    return seqs


def data_fingerprint(seqs: list[Sequence], holdout_fraction: float) -> str:
    h = hashlib.sha256()
    for s in seqs:
        h.update(f"{s.name}:{s.fingerprint}:{len(s)}:{s.train_end}:{holdout_fraction}".encode())
    return h.hexdigest()[:16]


class ClipIndex:
    """Every training clip (sequence, first source frame) of ``length`` frames at ``stride`` that lies
    entirely before the held-out tail."""

    def __init__(self, seqs: list[Sequence], length: int, model_rate_hz: float, holdout_fraction: float,
                 start_step: int = 0):
        self.seqs = seqs
        self.length = length
        self.items: list[tuple[int, int, int]] = []  # (sequence, start, stride)
        for si, s in enumerate(seqs):
            stride = stride_for(s.rate_hz, model_rate_hz)
            end = s.train_end if s.train_end >= 0 else split_point(len(s), holdout_fraction)
            span = (length - 1) * stride + 1
            step = start_step * stride if start_step > 0 else 1
            for a, b in s.segments or [(0, len(s))]:
                b = min(b, end)
                self.items.extend((si, start, stride) for start in range(a, b - span + 1, step))
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
