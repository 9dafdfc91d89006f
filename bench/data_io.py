"""Data I/O throughput: bag reading + decoding + synchronising at 640x480, and the simulator.

    python bench/data_io.py                 # ~1-2 minutes on a 2-core CPU
    python bench/data_io.py --frames 300 --sim-frames 40 --workers 4

Prints frames per second for:
* reading a RealSense-layout bag (rgb8 + 16UC1 + camera_info, mcap and sqlite3; and jpeg + compressedDepth
  png) through ``read_rgbd_bag`` (deserialise, synchronise, decode to uint8 RGB / float32 metres), plus the
  peak memory allocated while streaming (bounded: a few frames, it does not grow with the bag);
* the simulator at 128x128 (one process, full quality and ``--fast``) and ``generate`` with N processes.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from syncvp_core.data.bag import read_rgbd_bag, write_rgbd_bag  # noqa: E402
from syncvp_core.data.frames import RGBDFrame  # noqa: E402


def _frames(n: int, h: int = 480, w: int = 640, seed: int = 0):
    """Camera-like frames: smooth gradients + texture (so compressed variants are realistic), jittered depth
    stamps at 30 Hz."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([xx / w * 200, yy / h * 200, (xx + yy) / (w + h) * 255], -1)
    K = np.array([[615.0, 0, 319.5], [0, 615.0, 239.5], [0, 0, 1]])
    for i in range(n):
        noise = rng.normal(0, 6, (h, w, 3)).astype(np.float32)
        rgb = np.clip(np.roll(base, 3 * i, axis=1) + noise, 0, 255).astype(np.uint8)
        depth = (1.0 + 3.0 * yy / h + 0.05 * np.sin(xx / 17 + i)).astype(np.float32)
        depth[:, :20] = np.nan
        t = 1_700_000_000_000_000_000 + i * 33_333_333
        yield RGBDFrame(t, rgb, depth, K, depth_stamp_ns=t + int(rng.integers(-5, 5) * 1e6))


def bench_bags(n: int, tmp: Path) -> list[tuple[str, float, str]]:
    rows = []
    variants = [("mcap, rgb8 + 16UC1", dict(storage="mcap")),
                ("sqlite3, rgb8 + 16UC1", dict(storage="sqlite3")),
                ("mcap, 32FC1 depth", dict(storage="mcap", depth_encoding="32FC1")),
                ("mcap, jpeg + compressedDepth png", dict(storage="mcap", color_encoding="jpeg",
                                                           depth_compressed=True))]
    for name, kw in variants:
        path = tmp / name.split(",")[0].replace(" ", "") / f"b{len(rows)}"
        m = n if "jpeg" not in name else max(30, n // 3)
        t = time.perf_counter()
        write_rgbd_bag(path, _frames(m), **kw)
        t_write = time.perf_counter() - t
        size_mb = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6
        t = time.perf_counter()
        reader = read_rgbd_bag(path)
        count = 0
        for f in reader:
            count += int(f.rgb[0, 0, 0] >= 0)
        dt = time.perf_counter() - t
        # Memory while streaming, measured on a second pass (tracing slows it down, so not timed).
        tracemalloc.start()
        for _f in read_rgbd_bag(path):
            pass
        peak = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
        assert count == m and reader.stats.pairs == m, reader.stats.summary()
        rows.append((f"bag read+decode+sync 640x480 ({name})", m / dt,
                     f"{m} frames, {size_mb:.0f} MB bag, peak traced memory while streaming {peak:.0f} MB; "
                     f"writing {m / t_write:.0f} frames/s"))
    return rows


def bench_sim(frames: int, workers: int, tmp: Path) -> list[tuple[str, float, str]]:
    try:
        from syncvp_core.data import sim
    except ImportError as e:
        return [("simulator", float("nan"), f"unavailable: {e}")]
    try:
        backend = sim.select_gl_backend()
    except sim.SimError as e:
        return [("simulator", float("nan"), str(e))]
    rows = []
    sim.simulate_sequence(sim.SimConfig(height=32, width=32, frames=1), 0)  # warm-up (GL, JIT)
    for label, fast in (("full quality", False), ("--fast", True)):
        cfg = sim.SimConfig(height=128, width=128, frames=frames, scene="street", antialias=not fast,
                            shadows=not fast)
        t = time.perf_counter()
        sim.simulate_sequence(cfg, 1)
        dt = time.perf_counter() - t
        rows.append((f"simulator 128x128, 1 process, {label}", frames / dt,
                     f"street scene incl. scene build, {backend}"))
    cfg = sim.SimConfig(height=128, width=128, frames=frames, scene="mixed")
    n_seq = 2 * workers
    t = time.perf_counter()
    sim.generate(tmp / "sim", n_seq, cfg, seed=0, workers=workers, progress=False)
    dt = time.perf_counter() - t
    rows.append((f"simulator 128x128, generate() with {workers} processes", n_seq * frames / dt,
                 f"{n_seq} sequences x {frames} frames incl. process start and .npz writing"))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=150, help="frames per 640x480 bag")
    ap.add_argument("--sim-frames", type=int, default=20, help="frames per simulated sequence")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--skip-sim", action="store_true")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as d:
        rows = bench_bags(args.frames, Path(d))
        if not args.skip_sim:
            rows += bench_sim(args.sim_frames, args.workers, Path(d))
    width = max(len(r[0]) for r in rows)
    print(f"{'what'.ljust(width)}  frames/s  notes")
    for name, fps, note in rows:
        print(f"{name.ljust(width)}  {fps:8.1f}  {note}")


if __name__ == "__main__":
    main()
