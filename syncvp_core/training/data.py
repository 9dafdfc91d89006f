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
  The simulator part of a data mix (``data.sim_mix``, ``syncvp data make-mix``) is read the same way.

Clips: every start frame (``start_step`` 0), mirrored copies (``hflip`` / ``cache_hflip``, applied by the
stages) and, with ``reverse_time``, every clip also played backwards from the sequences where that is
physically plausible (``Sequence.reversible``: camera motion through a static or kinematic scene, e.g. the
simulator's sequences without a bump, or names matching ``data.reversible``; a falling object or a
damped bump backwards is not plausible). Reversed clips come from the same training frames: the held-out
tail stays out.

Frames are resized to the model resolution with :mod:`syncvp_core.imageops` (the project's resize policy).
"""
from __future__ import annotations

import fnmatch
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
    source: dict = field(default_factory=dict)  # kind (folder | sim | bag | ...), motion, scene: the data mix
    reversible: bool = False  # playing it backwards is physically plausible (reversed clips allowed)

    def __len__(self) -> int:
        return len(self.rgb)


def split_point(n_frames: int, holdout_fraction: float) -> int:
    """Index of the first held-out frame: frames [0, k) train, [k, n) are the held-out tail."""
    return int(np.floor(n_frames * (1.0 - holdout_fraction)))


def trainable_end(seq: Sequence, holdout_fraction: float) -> int:
    """Frames [0, this) of ``seq`` may train: its own train_end, else the holdout rule."""
    return seq.train_end if seq.train_end >= 0 else split_point(len(seq), holdout_fraction)


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
    return Sequence(folder.name, rgb, dep, seq.rate_hz, hashlib.sha256(src).hexdigest()[:16],
                    source={"kind": "folder", "path": str(folder)})


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
            src = {"kind": meta.source.get("kind", "dataset"), "dataset": str(root),
                   **{k: meta.extra[k] for k in ("motion", "scene") if k in meta.extra}}
            out.append(Sequence(f"{Path(root).name}/{meta.name}", rgb, dep, meta.rate_hz, fp, meta.train_end, segs,
                                src, bool(meta.extra.get("time_reversible", False))))
    except DatasetError as e:
        raise DataError(str(e)) from e
    return out


def load_sequences(folders, cfg: ModelConfig, show_progress: bool = True, datasets=(),
                   reversible: tuple[str, ...] = ()) -> list[Sequence]:
    """Every training sequence; ``reversible``: name patterns (fnmatch) of sequences that may also train
    backwards, besides those their data set marks ``time_reversible``."""
    seqs = [read_folder(f, cfg.resolution, show_progress) for f in folders]
    for root in datasets:
        seqs += read_dataset(root, cfg.resolution, show_progress)
    if not seqs:
        raise DataError("no training data: set data.folders, data.datasets or data.sim_mix in the train config")
    for s in seqs:
        s.reversible = s.reversible or any(fnmatch.fnmatch(s.name, p) for p in reversible)
    return seqs


def data_fingerprint(seqs: list[Sequence], holdout_fraction: float) -> str:
    h = hashlib.sha256()
    for s in seqs:
        h.update(f"{s.name}:{s.fingerprint}:{len(s)}:{s.train_end}:{holdout_fraction}".encode())
        if s.reversible:  # older fingerprints (no reversal) stay valid
            h.update(b":reversible")
    return h.hexdigest()[:16]


class ClipIndex:
    """Every training clip (sequence, first source frame) of ``length`` frames at ``stride`` that lies
    entirely before the held-out tail; with ``reverse_time`` also each clip of a reversible sequence played
    backwards (the same frames, last first)."""

    def __init__(self, seqs: list[Sequence], length: int, model_rate_hz: float, holdout_fraction: float,
                 start_step: int = 0, reverse_time: bool = False):
        self.seqs = seqs
        self.length = length
        self.items: list[tuple[int, int, int, bool]] = []  # (sequence, start, stride, reversed)
        for si, s in enumerate(seqs):
            stride = stride_for(s.rate_hz, model_rate_hz)
            end = trainable_end(s, holdout_fraction)
            span = (length - 1) * stride + 1
            step = start_step * stride if start_step > 0 else 1
            directions = (False, True) if reverse_time and s.reversible else (False,)
            for a, b in s.segments or [(0, len(s))]:
                b = min(b, end)
                self.items.extend((si, start, stride, rev) for rev in directions
                                  for start in range(a, b - span + 1, step))
        if not self.items:
            raise DataError(f"no training clip of {length} frames fits before the held-out tails")

    @property
    def n_reversed(self) -> int:
        return sum(1 for it in self.items if it[3])

    def __len__(self) -> int:
        return len(self.items)

    def frames(self, i: int, length: int | None = None, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(rgb uint8 (T,H,W,3), depth metres (T,H,W)) of clip i; optionally a sub-window."""
        si, start, stride, rev = self.items[i]
        n = self.length if length is None else length
        pos = offset + np.arange(n)
        idx = start + stride * ((self.length - 1 - pos) if rev else pos)
        s = self.seqs[si]
        return s.rgb[idx], s.depth[idx]


def describe_mix(seqs: list[Sequence], clips: ClipIndex, holdout_fraction: float, **settings) -> dict:
    """The data mix a model trained on, for its checkpoint metadata and model card: per group (source kind
    and simulator motion) and per sequence, frames that trained, clips (of ``clips``) and reversed clips,
    plus the held-out rule and the clip ``settings`` (mirroring, start step, reversal)."""
    n_clips = np.zeros(len(seqs), np.int64)
    n_rev = np.zeros(len(seqs), np.int64)
    for si, _, _, rev in clips.items:
        n_clips[si] += 1
        n_rev[si] += rev
    rows, groups = [], {}
    for si, s in enumerate(seqs):
        end = trainable_end(s, holdout_fraction)
        group = s.source.get("kind", "unknown") + (f"/{s.source['motion']}" if "motion" in s.source else "")
        rows.append({"name": s.name, "group": group, "scene": s.source.get("scene"), "frames": len(s),
                     "train_frames": int(max(end, 0)), "rate_hz": s.rate_hz, "reversible": s.reversible,
                     "clips": int(n_clips[si]), "reversed_clips": int(n_rev[si])})
        g = groups.setdefault(group, {"sequences": 0, "train_frames": 0, "clips": 0, "reversed_clips": 0})
        g["sequences"] += 1
        g["train_frames"] += rows[-1]["train_frames"]
        g["clips"] += int(n_clips[si])
        g["reversed_clips"] += int(n_rev[si])
    return {"groups": groups, "sequences": rows, "clips": len(clips), "reversed_clips": clips.n_reversed,
            "clip_frames": clips.length,
            "held_out": f"last {holdout_fraction:g} of every folder sequence (frames from floor(n * "
                        f"(1 - {holdout_fraction:g})) on); data sets: their own validation sequences and tails",
            **settings}


def mix_table(mix: dict) -> str:
    """A checkpoint's ``data_mix`` as Markdown for the model card: one row per group, then the settings."""
    lines = ["| data | sequences | frames that trained | clips | of which time-reversed |", "|---|---|---|---|---|"]
    for name, g in sorted(mix["groups"].items()):
        lines.append(f"| {name} | {g['sequences']} | {g['train_frames']} | {g['clips']} | {g['reversed_clips']} |")
    lines.append(f"| **all** | {sum(g['sequences'] for g in mix['groups'].values())} | "
                 f"{sum(g['train_frames'] for g in mix['groups'].values())} | {mix['clips']} | "
                 f"{mix['reversed_clips']} |")
    mirrored = "plus a mirrored copy of every clip" if mix.get("cache_hflip") else "no mirrored copies"
    start = mix.get("start_step", 0)
    starts = "every start frame" if not start else f"a start every {start} model frames"
    lines += ["", f"Diffusion clips of {mix['clip_frames']} frames, {starts}, {mirrored}; held out: "
              f"{mix['held_out']}."]
    return "\n".join(lines)


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
