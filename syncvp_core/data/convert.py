"""Converters from every source to the sharded training-set format (:mod:`.dataset`).

One function per source; all share :class:`~.dataset.DatasetWriter` (resize policy, metadata, split,
progress bar), so a bag, a folder and the simulator output of the same frames give the same dataset.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .dataset import DatasetWriter
from .frames import RGBDFrame


def _writer(out: str | Path, size: tuple[int, int], overwrite: bool, shard_frames: int) -> DatasetWriter:
    return DatasetWriter(out, size, shard_frames=shard_frames, overwrite=overwrite)


def _finish(w: DatasetWriter, split: dict[str, Any], info: dict[str, Any]) -> Path:
    return w.finalize(val_fraction=split.get("val_fraction", 0.0), val_tail=split.get("val_tail", 0.0),
                      val_sequences=split.get("val_sequences", ()), seed=split.get("seed", 0), info=info)


def from_bags(bags: Sequence[str | Path], out: str | Path, size: tuple[int, int], topics=None,
              slop_s: float = 0.02, overwrite: bool = False, shard_frames: int = 256, progress: bool = True,
              max_frames: int | None = None, **split: Any) -> Path:
    """ROS 2 bags -> training set. One sequence per bag (named after it)."""
    from .bag import read_rgbd_bag

    readers = [read_rgbd_bag(b, topics=topics, slop_s=slop_s, max_frames=max_frames) for b in bags]
    total = sum(min(r.info.topics[r.topics.color].count, max_frames or 1 << 62) for r in readers)
    w = _writer(out, size, overwrite, shard_frames)
    with tqdm(total=total, desc="converting bags", unit="frame", disable=not progress) as bar:
        for r in readers:
            name = Path(r.path).stem if Path(r.path).is_file() else Path(r.path).name
            t = r.topics
            src = {"kind": "bag", "path": str(r.path), "storage": r.info.storage,
                   "topics": {"color": t.color, "depth": t.depth, "color_info": t.color_info}}
            meta = w.add_sequence(name, r, src, progress=bar)
            meta.source["sync"] = r.stats.to_dict() if r.stats else {}
            meta.source["sync_events"] = [f"{e.kind} {e.stream}: {e.message}" for e in r.events[:50]]
            if r.warnings:
                meta.source["warnings"] = r.warnings
    return _finish(w, split, {"command": "from-bag", "slop_s": slop_s})


def _sim_extra(meta: dict[str, Any]) -> dict[str, Any]:
    """What training and the data-mix record need from a simulated sequence's json: scene, camera motion,
    whether playing it backwards is plausible, stop frames and bumps."""
    segs = meta.get("frame_segments", [])
    return {"scene": meta.get("scene"), "motion": meta.get("motion", "auto"),
            "time_reversible": bool(meta.get("time_reversible", False)),
            "stop_frames": sum(s == "stop" for s in segs), "bumps": len(meta.get("bumps", []))}


def from_sim(sim_dir: str | Path, out: str | Path, size: tuple[int, int], overwrite: bool = False,
             shard_frames: int = 256, progress: bool = True, info: dict[str, Any] | None = None,
             indices: Sequence[int] | None = None, **split: Any) -> Path:
    """`syncvp sim` output -> training set (poses are kept). ``info`` is added to the data set's info;
    ``indices``: convert only these sequences (e.g. those of the latest run into a reused folder)."""
    from .sim import SimSequence, list_sequences

    files = list_sequences(sim_dir)
    if indices is not None:
        want = {f"seq_{i:05d}" for i in indices}
        files = [f for f in files if f.stem in want]
    w = _writer(out, size, overwrite, shard_frames)
    with tqdm(total=len(files), desc="converting simulator output", unit="seq", disable=not progress) as bar:
        for f in files:
            seq = SimSequence.load(f)
            src = {"kind": "sim", "path": str(f), "seed": seq.meta.get("seed"), "scene": seq.meta.get("scene")}
            w.add_sequence(f.stem, seq.frames(), src, rate_hz=float(seq.meta.get("rate_hz", 0)) or None,
                           extra=_sim_extra(seq.meta))
            bar.update()
    return _finish(w, split, {"command": "from-sim", "sim_dir": str(sim_dir), **(info or {})})


def from_folders(folders: Sequence[str | Path], out: str | Path, size: tuple[int, int], overwrite: bool = False,
                 shard_frames: int = 256, progress: bool = True, depth_units_per_metre: float | None = None,
                 slop_s: float = 0.02, K: np.ndarray | None = None, **split: Any) -> Path:
    """RGB-D folders (real-rgbd or TUM RGB-D layout) -> training set. All folders are checked first."""
    from .folder import read_folder

    seqs = [read_folder(f, depth_units_per_metre=depth_units_per_metre, slop_s=slop_s, K=K) for f in folders]
    w = _writer(out, size, overwrite, shard_frames)
    with tqdm(total=sum(len(s) for s in seqs), desc="converting folders", unit="frame",
              disable=not progress) as bar:
        for s in seqs:
            w.add_sequence(s.name, s.frames(), s.source(), progress=bar)
    return _finish(w, split, {"command": "from-folder", "slop_s": slop_s})


def from_frames(sequences: Sequence[tuple[str, Sequence[RGBDFrame]]], out: str | Path, size: tuple[int, int],
                overwrite: bool = False, **split: Any) -> Path:
    """In-memory frames -> training set (tests, notebooks)."""
    w = _writer(out, size, overwrite, 256)
    for name, frames in sequences:
        w.add_sequence(name, frames, {"kind": "memory"})
    return _finish(w, split, {"command": "from_frames"})


def from_cityscapes(root: str | Path, out: str | Path, size: tuple[int, int], splits: Sequence[str] = ("train",
                    "val"), overwrite: bool = False, shard_frames: int = 256, progress: bool = True) -> Path:
    """Cityscapes sequences (leftImg8bit_sequence + disparity_sequence + camera) -> training set; the
    Cityscapes ``val`` split becomes the validation split."""
    from .cityscapes import cityscapes_sequences

    seqs = [s for sp in splits for s in cityscapes_sequences(root, sp)]
    w = _writer(out, size, overwrite, shard_frames)
    val = []
    with tqdm(total=sum(len(s) for s in seqs), desc="converting Cityscapes", unit="frame",
              disable=not progress) as bar:
        for s in seqs:
            meta = w.add_sequence(s.name, s.frames(), s.source(), rate_hz=s.rate_hz, progress=bar)
            if s.split != "train":
                val.append(meta.name)
    return w.finalize(val_sequences=val, info={"command": "from-cityscapes", "root": str(root)})
