"""Many sequences: per-sequence seeds, parallel and resumable generation into a folder, listing it."""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..frames import RGBDFrame
from .config import SimConfig, SimError
from .render import select_gl_backend
from .sequence import simulate_sequence

FORMAT = "syncvp-sim-npz-1"


def sequence_seeds(seed: int, n: int) -> list[int]:
    """Independent per-sequence seeds derived from one master seed."""
    return [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(n)]


def _result(meta: dict) -> dict:
    return {"index": meta["index"], "seed": meta["seed"], "scene": meta["scene"], "render_s": meta["render_s"],
            "motion": meta.get("motion", "auto")}


def finished(out_dir: Path, index: int, seed: int, cfg_d: dict) -> dict | None:
    """The result of sequence ``index`` if it is already on disk from the same seed and configuration."""
    path = out_dir / f"seq_{index:05d}"
    if not (path.with_suffix(".json").exists() and path.with_suffix(".npz").exists()):
        return None
    try:
        meta = json.loads(path.with_suffix(".json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if meta.get("seed") != seed or meta.get("config") != cfg_d or "render_s" not in meta:
        return None
    return _result(meta)


def _worker(args: tuple[dict, int, int, str]) -> dict:
    cfg_d, index, seed, out_dir = args
    cfg = SimConfig(**cfg_d)
    t = time.perf_counter()
    seq = simulate_sequence(cfg, seed)
    seq.meta["index"] = index
    seq.meta["render_s"] = round(time.perf_counter() - t, 3)
    seq.save(Path(out_dir) / f"seq_{index:05d}")
    return _result(seq.meta)


def generate(out_dir: str | Path, n_sequences: int, cfg: SimConfig, seed: int = 0, workers: int | None = None,
             progress: bool = True) -> list[dict]:
    """Render ``n_sequences`` sequences into ``out_dir`` in parallel processes (one GL context each).

    Resumable: a sequence already there from the same seed and configuration is kept, not rendered again
    (an interrupted run continues where it stopped)."""
    import multiprocessing as mp

    from tqdm import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    backend = select_gl_backend()
    seeds = sequence_seeds(seed, n_sequences)
    cfg_d = asdict(cfg)
    results: list[dict] = []
    jobs = []
    for i, s in enumerate(seeds):
        done = finished(out, i, s, cfg_d)
        if done is not None:
            results.append(done)
        else:
            jobs.append((cfg_d, i, s, str(out)))
    workers = max(1, min(workers or os.cpu_count() or 1, max(1, len(jobs))))
    bar = tqdm(total=n_sequences, initial=len(results), desc="simulating", unit="seq", disable=not progress)
    if workers == 1:
        for j in jobs:
            results.append(_worker(j))
            bar.update()
    else:
        # spawn: a fresh interpreter per worker, so each creates its own GL context safely.
        with mp.get_context("spawn").Pool(workers) as pool:
            for r in pool.imap_unordered(_worker, jobs):
                results.append(r)
                bar.update()
    bar.close()
    results.sort(key=lambda r: r["index"])
    meta = {"config": asdict(cfg), "seed": seed, "sequences": results, "gl_backend": backend,
            "format": FORMAT,
            "arrays": {"rgb": "uint8 (N,H,W,3)", "depth": "float32 (N,H,W) z-depth metres, NaN = no return",
                       "K": "float64 (3,3)", "poses": "float64 (N,4,4) camera-to-world, optical axes",
                       "stamps_ns": "int64 (N,)"}}
    (out / "sim_meta.json").write_text(json.dumps(meta, indent=1))
    return results


def list_sequences(sim_dir: str | Path) -> list[Path]:
    """The ``seq_*.npz`` files of a simulator output folder (sorted)."""
    files = sorted(Path(sim_dir).glob("seq_*.npz"))
    if not files:
        raise SimError(f"{sim_dir}: no seq_*.npz files (not a `syncvp sim` output folder)")
    return files


def quick_frames(n: int = 4, size: tuple[int, int] = (32, 32), seed: int = 0, scene: str = "street",
                 rate_hz: float = 10.0) -> list[RGBDFrame]:
    """A few small simulated frames, fast (no shadows, no anti-aliasing): for tests and examples."""
    cfg = SimConfig(height=size[0], width=size[1], frames=n, rate_hz=rate_hz, scene=scene, antialias=False,
                    shadows=False)
    return simulate_sequence(cfg, seed).frames()

