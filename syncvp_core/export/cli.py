"""``syncvp export`` and ``syncvp build-engine``."""
from __future__ import annotations

from pathlib import Path

import click

from ..checkpoint import DEFAULT_CHECKPOINT, CheckpointError
from ..config import ConfigError
from .deps import MissingDependency
from .manifest import ExportError

_USER_ERRORS = (CheckpointError, ConfigError, ExportError, MissingDependency)


def load_for_export(checkpoint: str | None, random_init: str | None, config: str | None, seed: int = 0):
    """(model, source-info) for an export; refuses a ``config`` that differs from the checkpoint's."""
    from ..checkpoint import config_from_meta, load_checkpoint, load_into
    from ..config import load_model_config
    from ..models.syncvp import SyncVPModel
    from .manifest import config_diff

    if random_init:
        if checkpoint:
            raise click.UsageError("--random-init and --checkpoint are exclusive")
        if config:
            raise click.UsageError("--random-init takes the config itself; drop --config")
        from ..predictor import Predictor

        model = Predictor.from_config(random_init, seed=seed).model
        return model, {"checkpoint": None, "random_init": random_init, "seed": seed}
    path = Path(checkpoint) if checkpoint else DEFAULT_CHECKPOINT
    if not path.exists():
        hint = " (the shipped default checkpoint is missing; pass --checkpoint or --random-init tiny)" \
            if path == DEFAULT_CHECKPOINT else ""
        raise CheckpointError(f"checkpoint not found: {path}{hint}")
    tensors, meta = load_checkpoint(path)
    cfg = config_from_meta(meta, path)
    if config:
        wanted = load_model_config(config)
        diffs = config_diff(cfg.to_dict(), wanted.to_dict())
        if diffs:
            raise ExportError(
                f"--config {config} does not match the config stored in {path} ({len(diffs)} difference(s): "
                + "; ".join(diffs[:8]) + "). The checkpoint's config is authoritative: drop --config, or pass "
                "the checkpoint trained with that config")
    model = SyncVPModel(cfg)
    load_into(model, tensors, path)
    source = {"checkpoint": str(path.resolve()), "checkpoint_sha256": meta.get("sha256"),
              "stage": meta.get("stage"), "step": meta.get("step", meta.get("joint_step")),
              "stage_steps": meta.get("steps")}
    return model, source


@click.command("export")
@click.option("--checkpoint", type=click.Path(dir_okay=False), default=None,
              help=f"SyncVP checkpoint (.safetensors). Default: the shipped model ({DEFAULT_CHECKPOINT.name}).")
@click.option("--random-init", metavar="CONFIG", default=None,
              help="Export a randomly initialised model of this config (e.g. tiny) instead; for tests.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of --random-init.")
@click.option("--config", metavar="NAME|PATH", default=None,
              help="Expected model config; export refuses a checkpoint whose stored config differs.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="Output directory.")
@click.option("--opset", type=int, default=17, show_default=True, help="ONNX opset (>= 17).")
@click.option("--batch", type=int, default=1, show_default=True, help="Static batch size of the graphs.")
@click.option("--dynamic-batch", is_flag=True, help="Make the batch dimension dynamic (all others stay static).")
@click.option("--exporter", type=click.Choice(["torchscript", "dynamo"]), default="torchscript", show_default=True,
              help="torch.onnx exporter: the TorchScript tracer, or the dynamo one (needs onnxscript).")
def export(checkpoint, random_init, seed, config, out_dir, opset, batch, dynamic_batch, exporter):
    """Export the model to ONNX: AE encoders, AE decoders and ONE joint denoiser step.

    Writes encoder_{rgb,depth}.onnx (context clips), decoder_{rgb,depth}.onnx (chunk clips),
    denoiser_step.onnx and manifest.json (shapes, dtypes, opset, I/O names, checkpoint sha256, config) to
    OUT. Each graph is checked with onnx.checker and for TensorRT compatibility. The DDIM loop stays in
    host code (see docs/deployment.md).
    """
    from .onnx_export import export_model

    try:
        model, source = load_for_export(checkpoint, random_init, config, seed)
        click.echo(f"model {model.cfg.name}: {model.cfg.resolution[0]}x{model.cfg.resolution[1]}, "
                   f"{model.cfg.context_frames} context -> {model.cfg.chunk_frames} frames; opset {opset}, batch "
                   f"{'dynamic' if dynamic_batch else batch}")
        manifest = export_model(model, out_dir, opset=opset, batch=batch, dynamic_batch=dynamic_batch,
                                source=source, dynamo=exporter == "dynamo", progress=click.echo)
    except _USER_ERRORS as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"exported {len(manifest.graphs)} graphs to {out_dir}")


@click.command("build-engine")
@click.option("--export-dir", type=click.Path(file_okay=False, exists=True), required=True,
              help="A `syncvp export` directory.")
@click.option("--precision", type=click.Choice(["fp16", "bf16", "fp32"]), default="fp16", show_default=True)
@click.option("--engine-dir", type=click.Path(file_okay=False), default=None,
              help="Where engines are cached. Default: EXPORT_DIR/engines (where the backend looks).")
@click.option("--opt-batch", type=int, default=1, show_default=True,
              help="Batch the dynamic-batch profile is optimised for.")
@click.option("--max-batch", type=int, default=4, show_default=True, help="Largest batch of a dynamic-batch export.")
@click.option("--workspace-gb", type=float, default=None, help="TensorRT builder workspace limit (GiB).")
@click.option("--device", default="cuda:0", show_default=True, help="GPU to build for.")
@click.option("--check-only", is_flag=True,
              help="Only check the graphs TensorRT would receive (ops, no Einsum, static shapes); needs no GPU.")
def build_engine(export_dir, precision, engine_dir, opt_batch, max_batch, workspace_gb, device, check_only):
    """Build (or validate the cached) TensorRT engines for an export, on the GPU that will run them.

    Engines are keyed by the ONNX file's sha256, the TensorRT version, the GPU name and compute capability,
    the precision and the profile shapes; a cached engine with another key, a corrupt file or one that fails
    to deserialize is rebuilt. Needs NVIDIA's TensorRT wheel and a GPU (except --check-only).
    """
    from .deps import require
    from .graphs import graph_names
    from .manifest import read_manifest
    from .trt_compat import check_graph

    try:
        manifest = read_manifest(export_dir)
        onnx = require("onnx", "checking ONNX graphs")
        bad = False
        names = graph_names(manifest.config())
        for g in names:
            problems = check_graph(onnx.load(str(manifest.onnx_path(g))), allow_dynamic_batch=manifest.dynamic_batch)
            click.echo(f"{g}: " + ("ok for TensorRT" if not problems else "PROBLEMS:\n  " + "\n  ".join(problems)))
            bad = bad or bool(problems)
        if bad:
            raise ExportError("some graphs would not import cleanly into TensorRT (see above)")
        if check_only:
            return
        trt = require("tensorrt", "syncvp build-engine")
        import torch

        from .engine_cache import EngineCache
        from .trt_build import current_device_info, engine_for

        if not torch.cuda.is_available():
            raise ExportError("no CUDA device: TensorRT engines must be built on the GPU that runs them")
        index = torch.device(device).index or 0
        torch.cuda.set_device(index)
        info = current_device_info(index)
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        root = Path(engine_dir) if engine_dir else manifest.path / "engines"
        cache = EngineCache(root, runtime.deserialize_cuda_engine)
        click.echo(f"TensorRT {trt.__version__} on {info.name} (sm {info.compute_capability}), {precision}, "
                   f"engines in {root}")
        ws = int(workspace_gb * (1 << 30)) if workspace_gb else None
        for i, g in enumerate(names, 1):
            click.echo(f"[{i}/{len(names)}] {g} ...")
            engine_for(manifest, g, cache, precision, info, opt_batch, max_batch, ws, trt)
        click.echo("engines ready")
    except _USER_ERRORS as e:
        raise click.ClickException(str(e)) from e
