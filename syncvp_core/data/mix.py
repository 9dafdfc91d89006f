"""The simulator part of a training data mix: render each part (resumable), convert it to a training set,
record what was made in a manifest.

A train config lists the parts under ``data.sim_mix`` (see ``config/train/motion_mix.yaml``) and where
they live under ``data.sim_root``::

    SIM_ROOT/<part>/raw/          syncvp sim output (seq_NNNNN.npz/json; finished sequences are kept)
    SIM_ROOT/<part>/dataset/      the training set at the model resolution (its validation sequences are
                                  the held-out simulator sequences)
    SIM_ROOT/mix_manifest.json    parts, their options and seeds, sequences per split, motion statistics

``syncvp data make-mix --config NAME`` makes it; running it again after an interruption renders only the
sequences that are missing or were rendered by an older simulator (``sim.sequence.SIM_VERSION``), and
converts a part again only when its raw sequences changed. It warns when a part's camera moves faster
between two frames than its kind of camera can (a simulator bug). Training reads the parts' data sets
without listing them under ``data.datasets``.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

MANIFEST = "mix_manifest.json"
# The fastest frame-to-frame camera translation (m/s) each motion can have; more is a simulator bug.
# handheld: walking at up to 1.6 m/s, a lane off the path at most 5/3 of that (sim.sequence._sideways);
# auto: street driving at up to 13 m/s. Measured on the motion_mix parts with SIM_VERSION 2: handheld
# 2.4, robot 1.4, car 14.4, auto 12.1.
CAMERA_SPEED_BOUND_MPS = {"handheld": 3.0, "robot": 2.0, "car": 20.0, "auto": 20.0}

log = logging.getLogger(__name__)


@dataclass
class SimMix:
    """One simulator part of a data mix."""

    name: str                  # folder under sim_root
    motion: str = "auto"       # auto | handheld | robot | car (syncvp_core.data.sim.profiles)
    scene: str = "mixed"       # street | yard | mixed
    sequences: int = 8
    frames: int = 60
    seed: int = 0
    height: int = 128          # render size; the data set is stored at the model resolution
    width: int = 128
    fast: bool = False         # no shadows, no anti-aliasing
    val_fraction: float = 0.1  # whole sequences held out (validation)


def part_dataset(sim_root: str | Path, part: SimMix) -> Path:
    return Path(sim_root) / part.name / "dataset"


def mix_datasets(sim_root: str | Path, parts: tuple[SimMix, ...]) -> list[Path]:
    """The training sets of a mix, in order (what training reads)."""
    return [part_dataset(sim_root, p) for p in parts]


def sequence_name(path: str | Path) -> str:
    """``part/seq_NNNNN`` of a raw render under ``sim_root/<part>/raw/`` (how evaluation tables name it)."""
    path = Path(path)
    return f"{path.parent.parent.name}/{path.stem}"


def heldout_sim_sequences(sim_root: str | Path, parts: tuple[SimMix, ...]) -> list[Path]:
    """The raw renders (render resolution) of every part's validation sequences: the held-out simulator
    sequences, never trained on. Parts not made yet contribute none."""
    out = []
    for part in parts:
        doc = part_dataset(sim_root, part) / "dataset.json"
        if doc.exists():
            val = [s["name"] for s in json.loads(doc.read_text())["sequences"] if s["split"] == "val"]
            out += [Path(sim_root) / part.name / "raw" / f"{name}.npz" for name in sorted(val)]
    return out


def check_parts(sim_root: str, parts: tuple[SimMix, ...]) -> None:
    """Configuration errors now, not after an hour of rendering (raises ValueError)."""
    from .sim.config import SimConfig, SimError

    if parts and not sim_root:
        raise ValueError("data.sim_mix needs data.sim_root (the folder the parts are rendered into)")
    names = [p.name for p in parts]
    if len(set(names)) != len(names):
        raise ValueError(f"data.sim_mix part names must be unique, got {names}")
    for p in parts:
        if p.sequences < 1 or not 0 <= p.val_fraction < 1:
            raise ValueError(f"data.sim_mix {p.name}: sequences >= 1 and 0 <= val_fraction < 1 required")
        try:
            _sim_config(p, SimConfig)
        except SimError as e:
            raise ValueError(f"data.sim_mix {p.name}: {e}") from e


def _sim_config(p: SimMix, cls):
    return cls(height=p.height, width=p.width, frames=p.frames, scene=p.scene, motion=p.motion,
               antialias=not p.fast, shadows=not p.fast)


def _drop_older_renders(raw: Path, n: int) -> None:
    """Remove the first ``n`` raw sequences where an older simulator rendered them, so they are rendered
    again (the json goes first: an npz without its json counts as unfinished)."""
    from .sim.sequence import SIM_VERSION

    for i in range(n):
        path = raw / f"seq_{i:05d}"
        if path.with_suffix(".json").exists() and _sim_version(path) != SIM_VERSION:
            path.with_suffix(".json").unlink()
            path.with_suffix(".npz").unlink(missing_ok=True)


def _sim_version(path: Path) -> int | None:
    try:
        return json.loads(path.with_suffix(".json").read_text()).get("sim_version", 1)  # 1: before versions
    except (OSError, json.JSONDecodeError):
        return None


def _raw_listing(raw: Path) -> list[dict]:
    meta = json.loads((raw / "sim_meta.json").read_text())
    return [{"index": r["index"], "seed": r["seed"]} for r in meta["sequences"]]


def _convert(part: SimMix, raw: Path, dest: Path, size: tuple[int, int], progress: bool) -> None:
    """Convert the raw part unless the data set already holds exactly these sequences."""
    from .convert import from_sim
    from .sim.sequence import SIM_VERSION

    listing = _raw_listing(raw)
    key = {"raw_sequences": listing, "resolution": list(size), "sim_version": SIM_VERSION}
    if (dest / "dataset.json").exists():
        info = json.loads((dest / "dataset.json").read_text()).get("info", {})
        if all(info.get(k) == v for k, v in key.items()):
            return
    # Only the sequences of this run: a folder rendered earlier with more sequences keeps its extra files.
    from_sim(raw, dest, size, overwrite=True, progress=progress, val_fraction=part.val_fraction,
             seed=part.seed, info={**key, "part": asdict(part)}, indices=[r["index"] for r in listing])


def _camera_speeds(part: SimMix, raw: Path) -> dict[str, Any]:
    """The fastest frame-to-frame camera translation of the part's raw sequences, and those faster than its
    motion's bound (warned about: the data would teach teleporting cameras)."""
    import numpy as np

    from .sim.sequence import max_camera_speed

    speeds = {}
    for r in _raw_listing(raw):
        path = raw / f"seq_{r['index']:05d}.npz"
        with np.load(path) as z:  # only these two arrays are read from the archive
            speeds[path.stem] = max_camera_speed(z["poses"], z["stamps_ns"])
    bound = CAMERA_SPEED_BOUND_MPS[part.motion]
    fast = {name: round(v, 2) for name, v in speeds.items() if v > bound}
    if fast:
        log.warning("make-mix: part %s (motion %s): the camera moves faster than %.1f m/s between two frames in "
                    "%d of %d sequences (m/s: %s); a simulator bug, not motion to train on", part.name,
                    part.motion, bound, len(fast), len(speeds), fast)
    return {"max_camera_speed_mps": round(max(speeds.values()), 3), "camera_speed_bound_mps": bound,
            "too_fast_sequences": sorted(fast)}


def _part_summary(part: SimMix, raw: Path, dest: Path) -> dict[str, Any]:
    doc = json.loads((dest / "dataset.json").read_text())
    seqs = doc["sequences"]
    return {"options": asdict(part), "dataset": str(dest),
            "train_sequences": sum(s["split"] == "train" for s in seqs),
            "val_sequences": sorted(s["name"] for s in seqs if s["split"] == "val"),
            "frames": sum(s["frames"] for s in seqs),
            "scenes": sorted({s["extra"].get("scene", "?") for s in seqs}),
            "time_reversible": sum(bool(s["extra"].get("time_reversible")) for s in seqs),
            "stop_frames": sum(s["extra"].get("stop_frames", 0) for s in seqs),
            "bumps": sum(s["extra"].get("bumps", 0) for s in seqs), **_camera_speeds(part, raw)}


def make_mix(sim_root: str | Path, parts: tuple[SimMix, ...], size: tuple[int, int], workers: int | None = None,
             limit: int | None = None, progress: bool = True) -> Path:
    """Render (resumable), convert and record every part; ``limit`` renders at most that many sequences
    per part (a sample; the same seeds, so a later full run continues from it). Returns the manifest."""
    from .sim import SimConfig, generate
    from .sim.sequence import SIM_VERSION

    check_parts(str(sim_root), parts)
    root = Path(sim_root)
    summary = {}
    for part in parts:
        raw = root / part.name / "raw"
        n = part.sequences if limit is None else min(limit, part.sequences)
        _drop_older_renders(raw, n)
        generate(raw, n, _sim_config(part, SimConfig), seed=part.seed, workers=workers, progress=progress)
        dest = part_dataset(root, part)
        _convert(part, raw, dest, size, progress)
        summary[part.name] = _part_summary(part, raw, dest)
    manifest = {"format": "syncvp-sim-mix-1", "resolution": list(size), "limit": limit, "sim_version": SIM_VERSION,
                "parts": summary}
    root.mkdir(parents=True, exist_ok=True)
    (root / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return root / MANIFEST
