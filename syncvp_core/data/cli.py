"""``syncvp sim`` and ``syncvp data ...`` (bags, folders, simulator output -> training sets)."""
from __future__ import annotations

from pathlib import Path

import click

from .bag import BagError
from .encodings import EncodingError

CTX = {"help_option_names": ["-h", "--help"]}


def _fail(e: Exception) -> click.ClickException:
    return click.ClickException(str(e))


@click.command(context_settings=CTX)
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="Output folder: seq_NNNNN.npz + seq_NNNNN.json per sequence, sim_meta.json.")
@click.option("--sequences", "-n", default=8, show_default=True, help="Number of sequences.")
@click.option("--frames", default=30, show_default=True, help="Frames per sequence.")
@click.option("--rate", "rate_hz", default=10.0, show_default=True, help="Frame rate (Hz) of the stamps.")
@click.option("--height", default=128, show_default=True, help="Image height (px).")
@click.option("--width", default=128, show_default=True, help="Image width (px).")
@click.option("--scene", type=click.Choice(["mixed", "street", "yard"]), default="mixed", show_default=True,
              help="street: vehicle on a road; yard: mobile robot among shelves/crates; mixed: either.")
@click.option("--fovy", "fovy_deg", default=60.0, show_default=True, help="Vertical field of view (deg).")
@click.option("--max-depth", "max_depth_m", default=None, type=float,
              help="Sensor range in metres: farther depth becomes invalid (NaN). Default: unlimited.")
@click.option("--seed", default=0, show_default=True, help="Master seed (sequence i gets its own seed).")
@click.option("--workers", "-j", default=None, type=int, help="Parallel processes (default: all cores).")
@click.option("--fast", is_flag=True, help="No shadows, no anti-aliasing (about 2x faster, plainer images).")
@click.option("--bag-out", default=None, type=click.Path(file_okay=False),
              help="Also write each sequence as a RealSense-layout ROS 2 bag (zstd mcap) in this folder.")
@click.option("--overwrite", is_flag=True, help="Replace existing bags in --bag-out.")
@click.option("--preview", default=None, type=click.Path(dir_okay=False),
              help="Also save a PNG grid of colour + colourised depth frames of (up to 4) sequences.")
def sim(out, sequences, frames, rate_hz, height, width, scene, fovy_deg, max_depth_m, seed, workers, fast,
        bag_out, overwrite, preview) -> None:
    """Render simulated RGB-D video (MuJoCo, headless EGL/OSMesa): a camera moving like a vehicle or
    a mobile robot through procedural scenes, with metric z-depth, intrinsics, poses and stamps.

    Reproducible: the same --seed and options give the same sequences. Convert the output to a
    training set with `syncvp data from-sim OUT --out DATASET`."""
    from .sim import SimConfig, SimError, SimSequence, generate

    try:
        cfg = SimConfig(height=height, width=width, frames=frames, rate_hz=rate_hz, scene=scene,
                        fovy_deg=fovy_deg, max_depth_m=max_depth_m, antialias=not fast, shadows=not fast)
        results = generate(out, sequences, cfg, seed=seed, workers=workers)
        if preview:
            from .sim import preview_grid

            seqs = [SimSequence.load(Path(out) / f"seq_{r['index']:05d}") for r in results[:4]]
            preview_grid(seqs, preview)
            click.echo(f"wrote {preview}")
        if bag_out:
            from .bag import write_rgbd_bag

            for r in results:
                seq = SimSequence.load(Path(out) / f"seq_{r['index']:05d}")
                bag = Path(bag_out) / f"sim_{r['index']:05d}"
                write_rgbd_bag(bag, seq.frames(), compression="zstd", overwrite=overwrite)
                click.echo(f"wrote {bag}")
    except (SimError, BagError) as e:
        raise _fail(e) from e
    total = sum(r["render_s"] for r in results)
    click.echo(f"wrote {len(results)} sequences x {frames} frames to {out} "
               f"({len(results) * frames / max(total, 1e-9):.1f} frames/s per process)")


@click.group(context_settings=CTX)
def data() -> None:
    """Convert recordings to training sets and back: ROS 2 bags, RGB-D folders (real-rgbd and TUM RGB-D
    layouts), simulator output. See docs/data.md."""


@data.command("info", context_settings=CTX)
@click.argument("bag", type=click.Path(exists=True))
def info_cmd(bag: str) -> None:
    """Topics, message counts and duration of a ROS 2 bag."""
    from .bag import bag_info

    try:
        click.echo(bag_info(bag).describe())
    except BagError as e:
        raise _fail(e) from e


__all__ = ["sim", "data", "EncodingError"]
