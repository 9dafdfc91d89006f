"""``syncvp info`` and ``syncvp predict``."""
from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np


@click.command()
@click.option("--config", "config", default=None, help="Model config name (tiny, paper) or YAML path.")
@click.option("--checkpoint", default=None, help="Checkpoint (.safetensors); default: the shipped model.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def info(config: str | None, checkpoint: str | None, as_json: bool) -> None:
    """Show a model's configuration and parameter counts."""
    from .checkpoint import DEFAULT_CHECKPOINT, config_from_meta, load_checkpoint
    from .config import load_model_config
    from .models.syncvp import SyncVPModel, count_parameters

    meta: dict = {}
    if config:
        cfg = load_model_config(config)
        source = f"config {config}"
    else:
        path = Path(checkpoint) if checkpoint else DEFAULT_CHECKPOINT
        if not path.exists() and not checkpoint:
            cfg = load_model_config("tiny")
            source = "config tiny (no default checkpoint installed)"
        else:
            _, meta = load_checkpoint(path)
            cfg = config_from_meta(meta, path)
            source = str(path)
    model = SyncVPModel(cfg)
    d = model.denoiser
    counts = {
        "autoencoder_rgb": count_parameters(model.ae_rgb),
        "autoencoder_depth": count_parameters(model.ae_depth),
        "denoiser_total": count_parameters(d),
    }
    if cfg.fusion.kind == "concat":
        counts["unet_concat"] = count_parameters(d.unet)
    else:
        counts["unet_rgb"] = count_parameters(d.rgb)
        counts["unet_depth"] = count_parameters(d.depth)
        counts["fusion"] = count_parameters(d.fusion)
    counts["total"] = count_parameters(model)
    lh, lw = cfg.latent_size
    latent = {"xy": [lh, lw], "xt": [cfg.chunk_frames, lw], "yt": [cfg.chunk_frames, lh],
              "channels": cfg.autoencoder.latent_channels}
    out = {"source": source, "parameters": counts, "latent": latent, "config": cfg.to_dict(),
           "training": {k: meta[k] for k in ("stage", "step") if k in meta}}
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    click.echo(f"model {cfg.name} from {source}")
    click.echo(f"  frames {cfg.resolution[0]}x{cfg.resolution[1]}, context {cfg.context_frames} -> chunk "
               f"{cfg.chunk_frames} at {cfg.frame_rate_hz:g} Hz")
    click.echo(f"  latent planes xy {lh}x{lw}, xt {cfg.chunk_frames}x{lw}, yt {cfg.chunk_frames}x{lh}, "
               f"{cfg.autoencoder.latent_channels} channels")
    click.echo(f"  fusion {cfg.fusion.kind} at {cfg.fusion.points}; shared noise {cfg.diffusion.shared_noise}; "
               f"guidance {cfg.diffusion.guidance_probs}")
    click.echo(f"  sampler DDIM {cfg.sampler.steps} steps, eta {cfg.sampler.eta}")
    for k, v in counts.items():
        click.echo(f"  {k:18s} {v:>12,d}  ({v / 1e6:.2f} M)")


def read_clip(path: Path) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Read a context clip from ``.npz`` (arrays ``rgb`` uint8 (T,H,W,3) and/or ``depth`` float metres (T,H,W))
    or from a folder with ``rgb/*.png`` and/or ``depth/*.png`` (16-bit millimetres, 0 = invalid)."""
    from PIL import Image

    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            rgb = z["rgb"] if "rgb" in z.files else None
            dep = z["depth"].astype(np.float32) if "depth" in z.files else None
        if rgb is None and dep is None:
            raise click.ClickException(f"{path}: needs an array named 'rgb' and/or 'depth'")
        return rgb, dep
    if path.is_dir():
        rgb_files = sorted((path / "rgb").glob("*.png"))
        dep_files = sorted((path / "depth").glob("*.png"))
        if not rgb_files and not dep_files:
            raise click.ClickException(f"{path}: no rgb/*.png or depth/*.png")
        rgb = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in rgb_files]) if rgb_files else None
        dep = None
        if dep_files:
            from .data.encodings import mm_to_depth

            dep = np.stack([mm_to_depth(np.asarray(Image.open(f))) for f in dep_files])
        return rgb, dep
    raise click.ClickException(f"{path}: expected a .npz file or a folder with rgb/ and depth/ PNGs")


def write_prediction(out: Path, pred) -> None:
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / "prediction.npz", rgb=pred.rgb, depth=pred.depth)
    (out / "rgb").mkdir(exist_ok=True)
    (out / "depth").mkdir(exist_ok=True)
    for k in range(pred.rgb.shape[0]):
        Image.fromarray(pred.rgb[k]).save(out / "rgb" / f"h{k + 1:02d}.png")
        mm = np.nan_to_num(pred.depth[k] * 1000.0, nan=0.0).clip(0, 65535).round().astype(np.uint16)
        Image.fromarray(mm).save(out / "depth" / f"h{k + 1:02d}.png")


@click.command()
@click.argument("clip", type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out", type=click.Path(path_type=Path), default=Path("prediction"), show_default=True,
              help="Output folder: prediction.npz, rgb/hKK.png, depth/hKK.png (16-bit mm).")
@click.option("--checkpoint", default=None, help="Checkpoint (.safetensors); default: the shipped model.")
@click.option("--config", default=None, help="Use a randomly initialised model of this config (testing only).")
@click.option("--horizon", type=int, default=None, help="Frames to predict (default: one chunk).")
@click.option("--steps", type=int, default=None, help="DDIM steps (default: the model's config).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--drop", type=click.Choice(["none", "rgb", "depth"]), default="none", show_default=True,
              help="Ignore one modality of the clip (cross-modality guidance).")
@click.option("--backend", default="torch", show_default=True, help="auto|torch|onnxruntime|tensorrt")
@click.option("--device", default="cpu", show_default=True)
def predict(clip: Path, out: Path, checkpoint, config, horizon, steps, seed, drop, backend, device) -> None:
    """Predict future colour and depth frames from a context CLIP (.npz or folder of PNGs)."""
    from .model_source import ModelSource
    from .predictor import PredictorError

    rgb, dep = read_clip(clip)
    if drop == "rgb":
        rgb = None
    if drop == "depth":
        dep = None
    source = ModelSource(random_config=config) if config and not checkpoint else ModelSource.parse(checkpoint)
    p = source.open(device, backend)
    try:
        pred = p.predict(rgb, dep, horizon=horizon, steps=steps, seed=seed)
    except PredictorError as e:
        raise click.ClickException(str(e)) from e
    write_prediction(out, pred)
    click.echo(f"{pred.mode}: predicted {pred.rgb.shape[0]} frames of {pred.rgb.shape[1]}x{pred.rgb.shape[2]} "
               f"in {pred.timings['total_s']:.2f} s ({pred.steps} DDIM steps, backend {p.backend_name}) -> {out}")
