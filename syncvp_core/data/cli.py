"""``syncvp sim`` and ``syncvp data ...`` (bags, folders, simulator output -> training sets)."""
from __future__ import annotations

from pathlib import Path

import click

from .bag import BagError
from .encodings import EncodingError
from .sim.config import MOTIONS

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
@click.option("--motion", type=click.Choice(MOTIONS), default="auto", show_default=True,
              help="Camera motion: auto drives like the scene's vehicle; handheld, robot and car are profiles "
                   "with stops, bumps and turns (docs/data.md).")
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
def sim(out, sequences, frames, rate_hz, height, width, scene, motion, fovy_deg, max_depth_m, seed, workers, fast,
        bag_out, overwrite, preview) -> None:
    """Render simulated RGB-D video (MuJoCo, headless EGL/OSMesa): a camera moving like a vehicle or
    a mobile robot through procedural scenes, with metric z-depth, intrinsics, poses and stamps.

    Reproducible: the same --seed and options give the same sequences; a run that was interrupted
    continues where it stopped (finished sequences are kept). Convert the output to a
    training set with `syncvp data from-sim OUT --out DATASET`."""
    from .sim import SimConfig, SimError, SimSequence, generate

    try:
        cfg = SimConfig(height=height, width=width, frames=frames, rate_hz=rate_hz, scene=scene, motion=motion,
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


def _size(size: tuple[int, int] | None, config: str) -> tuple[int, int]:
    if size:
        return int(size[0]), int(size[1])
    from ..config import ConfigError, load_model_config

    try:
        return tuple(load_model_config(config).resolution)
    except ConfigError as e:
        raise _fail(e) from e


def _dataset_options(f):
    """Options shared by every converter to the training-set format."""
    opts = [
        click.option("--out", required=True, type=click.Path(file_okay=False), help="Output dataset folder."),
        click.option("--size", nargs=2, type=int, default=None, metavar="H W",
                     help="Frame size of the dataset (default: the resolution of --config)."),
        click.option("--config", "config", default="tiny", show_default=True,
                     help="Model config whose resolution is used when --size is not given."),
        click.option("--val-fraction", default=0.0, show_default=True,
                     help="Fraction of the sequences held out as validation sequences."),
        click.option("--val-tail", default=0.0, show_default=True,
                     help="Hold out the last fraction of every training sequence for validation (e.g. 0.2)."),
        click.option("--val-sequence", "val_sequences", multiple=True,
                     help="Name of a sequence to use for validation (repeatable)."),
        click.option("--seed", default=0, show_default=True, help="Seed of the sequence split."),
        click.option("--shard-frames", default=256, show_default=True, help="Frames per shard file."),
        click.option("--overwrite", is_flag=True, help="Replace an existing dataset in --out."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _split(kw: dict) -> dict:
    return {"val_fraction": kw.pop("val_fraction"), "val_tail": kw.pop("val_tail"),
            "val_sequences": kw.pop("val_sequences"), "seed": kw.pop("seed")}


def _errors():
    from .cityscapes import CityscapesError
    from .dataset import DatasetError
    from .folder import FolderError
    from .sim import SimError

    return (BagError, EncodingError, DatasetError, FolderError, CityscapesError, SimError)


def _topics(color, depth, color_info):
    from .bag import BagTopics

    if color is None and depth is None:
        return None  # auto-detect (RealSense defaults first)
    d = BagTopics()
    return BagTopics(color or d.color, depth or d.depth, color_info if color_info != "" else None, None)


@data.command("from-bag", context_settings=CTX)
@click.argument("bags", nargs=-1, required=True, type=click.Path(exists=True))
@_dataset_options
@click.option("--color-topic", default=None, help="Colour topic (default: auto-detect, RealSense names first).")
@click.option("--depth-topic", default=None, help="Depth topic (default: auto-detect).")
@click.option("--color-info-topic", default="/camera/color/camera_info", show_default=True,
              help="camera_info topic of the colour camera ('' for none); used with --color-topic.")
@click.option("--slop", "slop_s", default=0.02, show_default=True, help="Colour/depth sync tolerance (s).")
@click.option("--max-frames", default=None, type=int, help="Convert at most this many frames per bag.")
def from_bag(bags, out, size, config, color_topic, depth_topic, color_info_topic, slop_s, max_frames, **kw):
    """Convert ROS 2 bags (mcap, sqlite3, or ROS 1 .bag) to a sharded training set, one sequence per bag.

    Colour and depth are synchronised by header stamp (approximate time, --slop); unmatched frames and
    gaps are counted and recorded in dataset.json. Frames are squashed to the dataset size (no crop)."""
    from .convert import from_bags

    split = _split(kw)
    try:
        path = from_bags(bags, out, _size(size, config), topics=_topics(color_topic, depth_topic, color_info_topic),
                         slop_s=slop_s, max_frames=max_frames, overwrite=kw["overwrite"],
                         shard_frames=kw["shard_frames"], **split)
    except _errors() as e:
        raise _fail(e) from e
    _summary(path)


@data.command("from-sim", context_settings=CTX)
@click.argument("sim_dir", type=click.Path(exists=True, file_okay=False))
@_dataset_options
def from_sim_cmd(sim_dir, out, size, config, **kw):
    """Convert `syncvp sim` output (seq_*.npz) to a sharded training set (poses kept)."""
    from .convert import from_sim

    split = _split(kw)
    try:
        path = from_sim(sim_dir, out, _size(size, config), overwrite=kw["overwrite"],
                        shard_frames=kw["shard_frames"], **split)
    except _errors() as e:
        raise _fail(e) from e
    _summary(path)


@data.command("from-folder", context_settings=CTX)
@click.argument("folders", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@_dataset_options
@click.option("--depth-scale", "depth_units", default=None, type=float,
              help="Depth PNG units per metre (1000 = mm, 5000 = TUM). Default: from intrinsics.yaml, or "
                   "5000 for the TUM layout.")
@click.option("--intrinsics", default=None, type=click.Path(exists=True, dir_okay=False),
              help="YAML with fx, fy, cx, cy for every folder (TUM folders carry none).")
@click.option("--slop", "slop_s", default=0.02, show_default=True,
              help="Colour/depth association tolerance (s) for TUM rgb.txt/depth.txt.")
def from_folder(folders, out, size, config, depth_units, intrinsics, slop_s, **kw):
    """Convert RGB-D sequence folders to a sharded training set, one sequence per folder.

    Layouts: real-rgbd (rgb/, depth/ uint16, frames.csv, intrinsics.yaml) and TUM RGB-D (rgb/, depth/,
    rgb.txt, depth.txt with '#' comments, depth 5000 units per metre; colour and depth associated by
    timestamp within --slop). Use --val-tail 0.2 to hold out the last 20% of every sequence."""
    from .convert import from_folders
    from .folder import read_intrinsics

    split = _split(kw)
    try:
        K = read_intrinsics(intrinsics)[0] if intrinsics else None
        path = from_folders(folders, out, _size(size, config), overwrite=kw["overwrite"],
                            shard_frames=kw["shard_frames"], depth_units_per_metre=depth_units, slop_s=slop_s,
                            K=K, **split)
    except _errors() as e:
        raise _fail(e) from e
    _summary(path)


@data.command("from-cityscapes", context_settings=CTX)
@click.argument("root", type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output dataset folder.")
@click.option("--size", nargs=2, type=int, default=None, metavar="H W",
              help="Frame size (default: the resolution of --config).")
@click.option("--config", "config", default="paper", show_default=True,
              help="Model config whose resolution is used when --size is not given.")
@click.option("--split", "splits", multiple=True, default=("train", "val"), show_default=True,
              help="Cityscapes splits to convert; 'val' becomes the validation split.")
@click.option("--overwrite", is_flag=True, help="Replace an existing dataset in --out.")
def from_cityscapes_cmd(root, out, size, config, splits, overwrite):
    """Convert Cityscapes sequences (leftImg8bit_sequence + disparity_sequence + camera) to a training set,
    depth = baseline * fx / ((p - 1) / 256). Squashed to the dataset size (no crop)."""
    from .convert import from_cityscapes

    try:
        path = from_cityscapes(root, out, _size(size, config), splits=splits, overwrite=overwrite)
    except _errors() as e:
        raise _fail(e) from e
    _summary(path)


@data.command("to-bag", context_settings=CTX)
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output bag directory.")
@click.option("--storage", type=click.Choice(["mcap", "sqlite3"]), default="mcap", show_default=True)
@click.option("--depth-encoding", type=click.Choice(["auto", "16UC1", "32FC1"]), default="auto",
              show_default=True, help="auto: 16UC1 mm when the folder stores mm (lossless), else 32FC1 m.")
@click.option("--compress", is_flag=True, help="zstd chunk compression (mcap only).")
@click.option("--depth-scale", "depth_units", default=None, type=float, help="Depth PNG units per metre.")
@click.option("--intrinsics", default=None, type=click.Path(exists=True, dir_okay=False),
              help="YAML with fx, fy, cx, cy (TUM folders carry none).")
@click.option("--slop", "slop_s", default=0.02, show_default=True, help="TUM association tolerance (s).")
@click.option("--start", default=0, show_default=True, help="First frame to write.")
@click.option("--frames", "n_frames", default=None, type=int, help="Number of frames to write (default all).")
@click.option("--overwrite", is_flag=True, help="Replace an existing bag.")
def to_bag(folder, out, storage, depth_encoding, compress, depth_units, intrinsics, slop_s, start, n_frames,
           overwrite):
    """Write an RGB-D sequence folder (real-rgbd or TUM layout) as a RealSense-layout ROS 2 bag:
    /camera/color/image_raw (rgb8), /camera/aligned_depth_to_color/image_raw, both camera_info topics."""
    from .folder import folder_to_bag, read_intrinsics

    try:
        K = read_intrinsics(intrinsics)[0] if intrinsics else None
        n = folder_to_bag(folder, out, depth_encoding=depth_encoding, storage=storage,
                          compression="zstd" if compress else "none", overwrite=overwrite, start=start,
                          stop=None if n_frames is None else start + n_frames, depth_units_per_metre=depth_units,
                          slop_s=slop_s, K=K)
    except _errors() as e:
        raise _fail(e) from e
    click.echo(f"wrote {n} frames to {out}")


@data.command("make-demo", context_settings=CTX)
@click.option("--out", default="data/demo", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the demo bags.")
@click.option("--which", type=click.Choice(["all", "sim", "tum"]), default="all", show_default=True)
@click.option("--real-rgbd", "real_root", default="../shared/data/real-rgbd", show_default=True,
              type=click.Path(), help="Folder holding tum_freiburg1_xyz/ (for --which tum).")
def make_demo(out, which, real_root):
    """Regenerate the committed demo bags: sim_street (simulated, seed and size fixed in
    syncvp_core/data/demo.py) and tum_fr1_xyz (first 60 frames of TUM fr1_xyz, CC BY 4.0, with its
    attribution file)."""
    from .demo import make_sim_demo, make_tum_demo

    try:
        if which in ("all", "sim"):
            click.echo(f"wrote {make_sim_demo(out)}")
        if which in ("all", "tum"):
            click.echo(f"wrote {make_tum_demo(out, real_root)}")
    except _errors() as e:
        raise _fail(e) from e


def _summary(path: Path) -> None:
    import json

    doc = json.loads(Path(path).read_text())
    seqs = doc["sequences"]
    n = sum(s["frames"] for s in seqs)
    n_val = sum(1 for s in seqs if s["split"] == "val")
    click.echo(f"wrote {path}: {len(seqs)} sequences ({n_val} validation), {n} frames at "
               f"{doc['resolution'][0]}x{doc['resolution'][1]}")
    for s in seqs:
        sync = s["source"].get("sync")
        extra = f", unmatched colour {sync['unmatched_color']}/depth {sync['unmatched_depth']}" if sync else ""
        click.echo(f"  {s['name']}: {s['frames']} frames at {s['rate_hz']:.2f} Hz, {len(s['segments'])} "
                   f"segment(s), split {s['split']}{extra}")


__all__ = ["sim", "data", "EncodingError"]
