"""The sharded RGB-D training-set format, its writer, and the PyTorch dataset that reads it.

Every source (ROS 2 bags, RGB-D folders, TUM RGB-D, Cityscapes, the simulator) is converted to this one
format, so training and evaluation read one thing.

Layout::

    DATASET/
      dataset.json                 format, resolution, resize policy, split, and per sequence:
                                   name, source, rate_hz, frames, K (scaled to the dataset resolution),
                                   K_source + source_size, depth statistics, segments, split, val_start,
                                   shards, sync statistics (bags/TUM)
      shards/<sequence>_NNNN.npz   rgb uint8 (n, H, W, 3); depth float32 (n, H, W) metres, NaN = invalid;
                                   stamps_ns int64 (n,); poses float64 (n, 4, 4) when known (simulator)

* **Resize policy**: frames are resized to the dataset resolution with :mod:`syncvp_core.imageops`:
  squash to (H, W), no crop (the whole field of view is kept; intrinsics scale per axis); colour by area
  averaging, depth by a validity-weighted average (invalid pixels never bleed into valid ones).
* **Segments**: runs of frames without a gap in time (a stamp interval > ``gap_factor`` x the median, e.g.
  frames the synchroniser could not pair). Training windows never cross a segment boundary.
* **Split**: by sequence (``split`` = train | val) and, optionally, a held-out contiguous tail of every
  training sequence (frames ``[val_start, frames)`` are validation; ``val_start =
  floor(frames * (1 - val_tail))``, the same rule as ``syncvp_core.training.data.split_point``).

:class:`RGBDWindowDataset` yields windows of ``context_frames + chunk_frames`` frames as torch tensors::

    {"rgb": float32 (T, 3, H, W) in [-1, 1], "depth": float32 (T, H, W) metres (NaN = invalid) or, with
     depth_mode="normalized", [-1, 1] via syncvp_core.depth (invalid = -1), "mask": bool (T, H, W) valid depth,
     "K": float32 (3, 3), "stamps_ns": int64 (T,), "sequence": str, "start": int, "reversed": bool}
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..imageops import resize_depth, resize_rgb, scale_intrinsics
from .frames import RGBDFrame

FORMAT = "syncvp-rgbd-shards-1"
RESIZE_POLICY = ("squash to the dataset resolution without cropping (syncvp_core.imageops): colour area-"
                 "averaged, depth validity-weighted; intrinsics scaled per axis")


class DatasetError(ValueError):
    """A training set cannot be written or read; the message names the file or sequence."""


@dataclass
class SequenceMeta:
    name: str
    frames: int
    rate_hz: float
    K: list[list[float]] | None
    K_source: list[list[float]] | None
    source_size: list[int]
    source: dict[str, Any]
    depth_stats: dict[str, float]
    segments: list[list[int]]
    shards: list[dict[str, Any]]
    split: str = "train"
    val_start: int = -1  # -1: no held-out tail (set by finalize)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def train_end(self) -> int:
        """Frames [0, train_end) may be used for training."""
        if self.split != "train":
            return 0
        return self.frames if self.val_start < 0 else self.val_start


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "seq"


def segments_from_stamps(stamps_ns: np.ndarray, gap_factor: float = 2.5) -> list[list[int]]:
    """[start, end) index ranges without a time gap larger than gap_factor x the median interval."""
    n = len(stamps_ns)
    if n < 2:
        return [[0, n]] if n else []
    d = np.diff(np.asarray(stamps_ns, dtype=np.int64))
    med = float(np.median(d[d > 0])) if np.any(d > 0) else 0.0
    cuts = [0] + [i + 1 for i in np.nonzero(d > gap_factor * med)[0].tolist()] + [n]
    return [[a, b] for a, b in zip(cuts[:-1], cuts[1:]) if b > a]


def _depth_stats(sample: list[np.ndarray], total: int, valid: int) -> dict[str, float]:
    v = np.concatenate(sample) if sample else np.zeros(0, np.float32)
    out = {"valid_fraction": round(valid / total, 5) if total else 0.0}
    if v.size:
        p = np.percentile(v, [1, 50, 99])
        out.update(min_m=round(float(v.min()), 4), p1_m=round(float(p[0]), 4), median_m=round(float(p[1]), 4),
                   p99_m=round(float(p[2]), 4), max_m=round(float(v.max()), 4))
    return out


class DatasetWriter:
    """Streams sequences into a sharded training set (bounded memory: one shard at a time)."""

    def __init__(self, root: str | Path, resolution: tuple[int, int], shard_frames: int = 256,
                 overwrite: bool = False, gap_factor: float = 2.5) -> None:
        self.root = Path(root)
        if (self.root / "dataset.json").exists() and not overwrite:
            raise DatasetError(f"{self.root} already holds a dataset (pass --overwrite to replace it)")
        # A folder holding only shards/ is an interrupted conversion of ours: safe to reuse.
        foreign = [p.name for p in self.root.iterdir() if p.name != "shards"] if self.root.exists() else []
        if foreign and not (self.root / "dataset.json").exists():
            raise DatasetError(f"{self.root} exists, is not empty ({sorted(foreign)[:5]}) and is not a dataset; "
                               f"refusing to write there")
        if (self.root / "shards").exists():
            shutil.rmtree(self.root / "shards")
        (self.root / "shards").mkdir(parents=True, exist_ok=True)
        self.resolution = (int(resolution[0]), int(resolution[1]))
        self.shard_frames = int(shard_frames)
        self.gap_factor = gap_factor
        self.sequences: list[SequenceMeta] = []

    def _unique(self, name: str) -> str:
        base = _safe_name(name)
        names = {s.name for s in self.sequences}
        if base not in names:
            return base
        k = 2
        while f"{base}_{k}" in names:
            k += 1
        return f"{base}_{k}"

    def add_sequence(self, name: str, frames: Iterable[RGBDFrame], source: dict[str, Any],
                     rate_hz: float | None = None, progress: Any = None,
                     extra: dict[str, Any] | None = None) -> SequenceMeta:
        """Resize and store one sequence. ``progress``: an optional tqdm bar updated once per frame."""
        name = self._unique(name)
        H, W = self.resolution
        buf: dict[str, list] = {"rgb": [], "depth": [], "stamps_ns": [], "poses": []}
        shards: list[dict[str, Any]] = []
        stamps_all: list[int] = []
        K_src = None
        src_size: tuple[int, int] | None = None
        sample: list[np.ndarray] = []
        n_valid = n_px = 0
        rng = np.random.default_rng(0)
        has_pose: bool | None = None

        def flush() -> None:
            if not buf["rgb"]:
                return
            idx = len(shards)
            fname = f"{name}_{idx:04d}.npz"
            arrays = {"rgb": np.stack(buf["rgb"]), "depth": np.stack(buf["depth"]),
                      "stamps_ns": np.asarray(buf["stamps_ns"], np.int64)}
            if has_pose:
                arrays["poses"] = np.stack(buf["poses"])
            np.savez_compressed(self.root / "shards" / fname, **arrays)
            start = sum(s["count"] for s in shards)
            shards.append({"file": f"shards/{fname}", "start": start, "count": len(buf["rgb"])})
            for v in buf.values():
                v.clear()

        for i, f in enumerate(frames):
            rgb, depth = np.asarray(f.rgb), np.asarray(f.depth, dtype=np.float32)
            if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[:2] != depth.shape:
                raise DatasetError(f"{name}: frame {i}: expected rgb uint8 (H, W, 3) and depth (H, W) of the "
                                   f"same size, got {rgb.dtype} {rgb.shape} and {depth.shape}")
            if src_size is None:
                src_size = depth.shape
                K_src = None if f.K is None else np.asarray(f.K, np.float64)
            elif depth.shape != src_size:
                raise DatasetError(f"{name}: frame {i} is {depth.shape[1]}x{depth.shape[0]} but the sequence "
                                   f"started at {src_size[1]}x{src_size[0]}")
            if stamps_all and f.stamp_ns <= stamps_all[-1]:
                raise DatasetError(f"{name}: frame {i}: stamp {f.stamp_ns} ns is not after the previous "
                                   f"{stamps_all[-1]} ns")
            pose = f.extra.get("pose") if f.extra else None
            if has_pose is None:
                has_pose = pose is not None
            rgb_r = resize_rgb(rgb, (H, W))
            d_r = resize_depth(depth, (H, W))
            ok = np.isfinite(d_r)
            n_valid += int(ok.sum())
            n_px += ok.size
            vals = d_r[ok]
            if vals.size:
                sample.append(rng.choice(vals, size=min(vals.size, 512), replace=False))
            buf["rgb"].append(rgb_r)
            buf["depth"].append(d_r)
            buf["stamps_ns"].append(int(f.stamp_ns))
            if has_pose:
                buf["poses"].append(np.asarray(pose, np.float64))
            stamps_all.append(int(f.stamp_ns))
            if len(buf["rgb"]) >= self.shard_frames:
                flush()
            if progress is not None:
                progress.update(1)
        flush()
        n = len(stamps_all)
        if n == 0:
            raise DatasetError(f"{name}: no frames ({source.get('path', '')})")
        stamps = np.asarray(stamps_all, np.int64)
        if rate_hz is None:
            d = np.diff(stamps)
            rate_hz = float(1e9 / np.median(d)) if d.size else 0.0
        K = None if K_src is None else scale_intrinsics(K_src, src_size, (H, W))
        meta = SequenceMeta(
            name=name, frames=n, rate_hz=round(float(rate_hz), 6),
            K=None if K is None else np.round(K, 6).tolist(),
            K_source=None if K_src is None else K_src.tolist(), source_size=list(src_size), source=source,
            depth_stats=_depth_stats(sample, n_px, n_valid),
            segments=segments_from_stamps(stamps, self.gap_factor), shards=shards, extra=dict(extra or {}))
        self.sequences.append(meta)
        return meta

    def finalize(self, val_fraction: float = 0.0, val_tail: float = 0.0, val_sequences: Iterable[str] = (),
                 seed: int = 0, info: dict[str, Any] | None = None) -> Path:
        """Assign the split and write dataset.json.

        ``val_fraction`` of the sequences (at least one when > 0 and there are >= 2; chosen by a seeded
        hash of their names) or the named ``val_sequences`` become validation sequences; ``val_tail`` holds
        out the last fraction of every remaining sequence.
        """
        if not self.sequences:
            raise DatasetError(f"{self.root}: no sequences were converted")
        if not 0.0 <= val_fraction < 1.0 or not 0.0 <= val_tail < 1.0:
            raise DatasetError(f"val fraction and val tail must be in [0, 1), got {val_fraction}, {val_tail}")
        names = [s.name for s in self.sequences]
        chosen = set(val_sequences)
        unknown = chosen - set(names)
        if unknown:
            raise DatasetError(f"--val-sequence {sorted(unknown)} not among the sequences {names}")
        if val_fraction > 0 and len(names) >= 2:
            k = min(len(names) - 1, max(1, int(round(val_fraction * len(names)))))
            order = sorted(names, key=lambda n: hashlib.sha256(f"{seed}:{n}".encode()).hexdigest())
            chosen |= set(order[:k])
        for s in self.sequences:
            s.split = "val" if s.name in chosen else "train"
            s.val_start = int(math.floor(s.frames * (1.0 - val_tail))) if (val_tail > 0 and s.split == "train") \
                else -1
        doc = {
            "format": FORMAT,
            "resolution": list(self.resolution),
            "resize_policy": RESIZE_POLICY,
            "depth": "float32 metres along the optical axis, NaN = invalid",
            "split": {"val_fraction": val_fraction, "val_tail": val_tail, "seed": seed,
                      "val_sequences": sorted(chosen)},
            "info": info or {},
            "sequences": [asdict(s) for s in self.sequences],
        }
        path = self.root / "dataset.json"
        path.write_text(json.dumps(doc, indent=1))
        return path


# ----------------------------------------------------------------------------------------------------
# reading


class RGBDDatasetIndex:
    """A converted training set: metadata plus on-demand loading of whole sequences."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        path = self.root / "dataset.json"
        if not path.exists():
            raise DatasetError(f"{self.root}: no dataset.json (not a dataset made by `syncvp data from-*`)")
        try:
            doc = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise DatasetError(f"{path}: invalid JSON: {e}") from e
        if doc.get("format") != FORMAT:
            raise DatasetError(f"{path}: format {doc.get('format')!r}, expected {FORMAT!r}")
        self.doc = doc
        self.resolution = tuple(doc["resolution"])
        self.sequences = [SequenceMeta(**s) for s in doc["sequences"]]
        self.by_name = {s.name: s for s in self.sequences}

    def load_shard(self, seq: SequenceMeta, k: int) -> dict[str, np.ndarray]:
        p = self.root / seq.shards[k]["file"]
        try:
            with np.load(p) as z:
                return {key: z[key] for key in z.files}
        except (OSError, ValueError, KeyError) as e:
            raise DatasetError(f"{p}: cannot read shard of sequence {seq.name!r}: {e}") from e

    def load_sequence(self, name: str) -> dict[str, np.ndarray]:
        """All frames of one sequence: rgb (N,H,W,3) uint8, depth (N,H,W) float32 m, stamps_ns, [poses]."""
        seq = self.by_name[name]
        parts = [self.load_shard(seq, k) for k in range(len(seq.shards))]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _frame_step(rate_hz: float, model_rate_hz: float | None) -> int:
    if not model_rate_hz or not rate_hz:
        return 1
    return max(1, int(round(rate_hz / model_rate_hz)))


class RGBDWindowDataset:
    """Windows of consecutive frames from a converted training set (a ``torch.utils.data.Dataset``).

    ``window``: frames per item (``context_frames + chunk_frames`` of a ModelConfig; use
    :meth:`for_model`). ``frame_step``: source frames between window frames; ``"auto"`` matches the model's
    frame rate (``round(rate_hz / model_rate_hz)``, e.g. 3 for 30 Hz data and a 10 Hz model). ``stride``:
    window starts are this many source frames apart. ``split``: ``train`` (training frames of training
    sequences), ``val`` (validation sequences and held-out tails) or ``all``. ``augment``: random
    horizontal flip of colour, depth, mask and K together (default on for ``train``). Works with
    multi-worker ``DataLoader``s: shards load lazily per worker into a small cache, or all at once with
    ``in_memory=True``. ``reverse_time``: also every window played backwards, for the sequences whose
    metadata says that is physically plausible (``extra.time_reversible``, set by the simulator).
    """

    def __init__(self, root: str | Path, window: int, split: str = "train", frame_step: int | str = 1,
                 stride: int = 1, model_rate_hz: float | None = None, augment: bool | None = None,
                 depth_mode: str = "metres", depth_cfg: Any = None, in_memory: bool = False,
                 cache_shards: int = 8, reverse_time: bool = False) -> None:
        if split not in ("train", "val", "all"):
            raise DatasetError(f"split must be train, val or all, got {split!r}")
        if depth_mode not in ("metres", "normalized"):
            raise DatasetError(f"depth_mode must be metres or normalized, got {depth_mode!r}")
        if depth_mode == "normalized" and depth_cfg is None:
            raise DatasetError("depth_mode='normalized' needs depth_cfg (a ModelConfig.depth)")
        if window < 1 or stride < 1:
            raise DatasetError(f"window and stride must be >= 1, got {window}, {stride}")
        self.index = RGBDDatasetIndex(root)
        self.window, self.split, self.stride = int(window), split, int(stride)
        self.augment = (split == "train") if augment is None else bool(augment)
        self.depth_mode, self.depth_cfg = depth_mode, depth_cfg
        self.cache_shards = int(cache_shards)
        self._cache: OrderedDict[tuple[str, int], dict[str, np.ndarray]] = OrderedDict()
        self.items: list[tuple[str, int, int, bool]] = []  # (sequence, first frame, frame step, reversed)
        self.skipped: list[str] = []
        for seq in self.index.sequences:
            step = _frame_step(seq.rate_hz, model_rate_hz) if frame_step == "auto" else int(frame_step)
            span = (self.window - 1) * step + 1
            ranges = self._ranges(seq)
            n_before = len(self.items)
            directions = (False, True) if reverse_time and seq.extra.get("time_reversible") else (False,)
            for seg_a, seg_b in seq.segments:
                for a, b in ranges:
                    lo, hi = max(seg_a, a), min(seg_b, b)
                    for start in range(lo, hi - span + 1, self.stride):
                        self.items.extend((seq.name, start, step, rev) for rev in directions)
            if len(self.items) == n_before and ranges:
                self.skipped.append(f"{seq.name}: no {self.window}-frame window (step {step}) fits")
        if in_memory:
            for seq in self.index.sequences:
                for k in range(len(seq.shards)):
                    self._cache[(seq.name, k)] = self.index.load_shard(seq, k)
            self.cache_shards = max(self.cache_shards, len(self._cache))

    @classmethod
    def for_model(cls, root: str | Path, cfg: Any, split: str = "train", **kwargs: Any) -> RGBDWindowDataset:
        """Windows of ``cfg.context_frames + cfg.chunk_frames`` frames at ``cfg.frame_rate_hz``."""
        res = tuple(RGBDDatasetIndex(root).resolution)
        if res != tuple(cfg.resolution):
            raise DatasetError(f"{root}: dataset resolution {res} differs from the model's {tuple(cfg.resolution)}"
                               f"; convert again with --size {cfg.resolution[0]} {cfg.resolution[1]}")
        kwargs.setdefault("frame_step", "auto")
        return cls(root, cfg.context_frames + cfg.chunk_frames, split=split, model_rate_hz=cfg.frame_rate_hz,
                   depth_cfg=cfg.depth, **kwargs)

    def _ranges(self, seq: SequenceMeta) -> list[tuple[int, int]]:
        if self.split == "all":
            return [(0, seq.frames)]
        if self.split == "train":
            return [(0, seq.train_end)] if seq.train_end > 0 else []
        if seq.split == "val":
            return [(0, seq.frames)]
        return [(seq.val_start, seq.frames)] if seq.val_start >= 0 else []

    def __len__(self) -> int:
        return len(self.items)

    def _frames(self, name: str, idx: np.ndarray) -> dict[str, np.ndarray]:
        seq = self.index.by_name[name]
        out: dict[str, list] = {}
        for i in idx.tolist():
            k = next(j for j, s in enumerate(seq.shards) if s["start"] <= i < s["start"] + s["count"])
            key = (name, k)
            shard = self._cache.get(key)
            if shard is None:
                shard = self.index.load_shard(seq, k)
                self._cache[key] = shard
                while len(self._cache) > self.cache_shards:
                    self._cache.popitem(last=False)
            else:
                self._cache.move_to_end(key)
            j = i - seq.shards[k]["start"]
            for a in ("rgb", "depth", "stamps_ns"):
                out.setdefault(a, []).append(shard[a][j])
        return {k: np.stack(v) for k, v in out.items()}

    def __getitem__(self, i: int) -> dict[str, Any]:
        import torch

        name, start, step, rev = self.items[i]
        seq = self.index.by_name[name]
        idx = start + step * np.arange(self.window)
        if rev:
            idx = idx[::-1].copy()
        fr = self._frames(name, idx)
        rgb = torch.from_numpy(fr["rgb"]).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
        depth = torch.from_numpy(fr["depth"].astype(np.float32))
        K = torch.tensor(seq.K if seq.K is not None else np.full((3, 3), np.nan), dtype=torch.float32)
        if self.augment and bool(torch.rand(()) < 0.5):
            rgb, depth = rgb.flip(-1), depth.flip(-1)
            K = K.clone()
            K[0, 2] = (rgb.shape[-1] - 1) - K[0, 2]
        mask = torch.isfinite(depth) & (depth > 0)
        if self.depth_mode == "normalized":
            from ..depth import normalize

            depth, mask = normalize(depth, self.depth_cfg)
        return {"rgb": rgb, "depth": depth, "mask": mask, "K": K,
                "stamps_ns": torch.from_numpy(fr["stamps_ns"].astype(np.int64)), "sequence": name,
                "start": int(start), "reversed": bool(rev)}


def iter_dataset_frames(root: str | Path, name: str) -> Iterator[RGBDFrame]:
    """The frames of one converted sequence as RGBDFrames (for round trips and inspection)."""
    index = RGBDDatasetIndex(root)
    seq = index.by_name[name]
    K = None if seq.K is None else np.asarray(seq.K)
    for k in range(len(seq.shards)):
        sh = index.load_shard(seq, k)
        for j in range(len(sh["rgb"])):
            yield RGBDFrame(int(sh["stamps_ns"][j]), sh["rgb"][j], sh["depth"][j], K)
