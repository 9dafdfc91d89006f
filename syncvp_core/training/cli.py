"""``syncvp train``, ``syncvp cache-latents``, ``syncvp pack-data`` and ``syncvp make-mix``."""
from __future__ import annotations

import click

from ..checkpoint import CheckpointError
from ..config import ConfigError
from .data import DataError


def _session(config: str, overrides: tuple[str, ...]):
    from .config import load_train_config
    from .pipeline import Session

    return Session(load_train_config(config, list(overrides)))


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config", required=True,
              help="Train config: a name in config/train/ (e.g. default_tiny) or a YAML path.")
@click.option("--stage", type=click.Choice(["ae", "single", "joint", "all"]), required=True,
              help="ae: autoencoders; single: one diffusion model per modality (needs cached latents); joint: "
                   "SyncVP initialised from the single models; all: ae -> cache-latents -> [single] -> joint.")
@click.option("--modality", type=click.Choice(["rgb", "depth"]), default=None,
              help="Train only this modality (stages ae/single); default both, one after the other.")
@click.option("--forecasts-of", "forecasts_of", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Stage ae only: fine-tune the decoders (encoders frozen) on the forecasts of this model "
                   "bundle instead of on true latents (docs/training.md).")
@click.argument("overrides", nargs=-1)
def train(config: str, stage: str, modality: str | None, forecasts_of: str | None,
          overrides: tuple[str, ...]) -> None:
    """Train SyncVP. OVERRIDES are key=value pairs applied to the train config, e.g. joint.steps=2000
    run_dir=runs/x; keys starting with model. change the model config, e.g. model.resolution=[32,32].

    Runs resume automatically from <run_dir>/<stage>/state.safetensors. Multi-process:
    torchrun --nproc_per_node=N -m syncvp_core.training.cli ... (see docs/training.md)."""
    try:
        if forecasts_of is not None and stage != "ae":
            raise click.UsageError("--forecasts-of goes with --stage ae")
        s = _session(config, overrides)
        if forecasts_of is not None:
            for m in [modality] if modality else ["rgb", "depth"]:
                click.echo(f"wrote {s.run_forecast_decoder(m, forecasts_of)}")
            return
        for p in s.run(stage, modality):
            if s.info.main:
                click.echo(f"wrote {p}")
    except (ConfigError, CheckpointError, DataError) as e:
        raise click.ClickException(str(e)) from e


@click.command("cache-latents", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config", required=True, help="Train config (name in config/train/ or YAML path).")
@click.argument("overrides", nargs=-1)
def cache_latents(config: str, overrides: tuple[str, ...]) -> None:
    """Encode every training clip once with the trained autoencoders (<run_dir>/ae_*/ema.safetensors) into
    <run_dir>/latents.safetensors (or data.latent_cache), so diffusion training skips the encoder. Written in
    parts under <cache>.parts/: run it again after an interruption and it continues from the finished parts."""
    try:
        s = _session(config, overrides)
        p = s.run_cache()
        if s.info.main:
            click.echo(f"wrote {p}")
    except (ConfigError, CheckpointError, DataError) as e:
        raise click.ClickException(str(e)) from e


@click.command("pack-data", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config", required=True, help="Train config (name in config/train/ or YAML path).")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
              help="The pack to write (e.g. runs/pack/motion_prior.npz).")
@click.argument("overrides", nargs=-1)
def pack_data(config: str, out: str, overrides: tuple[str, ...]) -> None:
    """Pack the config's training data (folders, data sets, the simulator mix: the frames that may train,
    at the model resolution, depth as float16) into one file, for a machine without the sources; train there
    with data.pack=FILE (bench/device_train.sh)."""
    from .config import load_train_config
    from .pack import write_pack
    from .pipeline import read_training_data

    try:
        tcfg = load_train_config(config, list(overrides))
        if tcfg.data.pack:
            raise click.UsageError("data.pack is set: that config already trains from a pack")
        cfg = tcfg.model_config()
        seqs = read_training_data(tcfg, cfg, tcfg.progress)
        info = write_pack(seqs, tcfg.data.holdout_fraction, tuple(cfg.resolution), out)
    except (ConfigError, DataError) as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"wrote {out}: {info['sequences']} sequences, {info['frames']} frames, "
               f"{info['bytes'] / 2**20:.1f} MiB")


@click.command("make-mix", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config", required=True, help="Train config (name in config/train/ or YAML path).")
@click.option("--limit", type=int, default=None,
              help="Render at most N sequences per part (a sample; a later full run continues from it).")
@click.option("--workers", "-j", type=int, default=None, help="Rendering processes (default: all cores).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.argument("overrides", nargs=-1)
def make_mix(config: str, limit: int | None, workers: int | None, quiet: bool, overrides: tuple[str, ...]) -> None:
    """Render the simulator part of the config's data mix (data.sim_mix) into data.sim_root and convert it
    to training sets at the model resolution (see docs/data.md). Resumable: run it again after an
    interruption and only the missing sequences are rendered."""
    from ..data.mix import make_mix as run
    from ..data.sim import SimError
    from .config import load_train_config

    try:
        tcfg = load_train_config(config, list(overrides))
        if not tcfg.data.sim_mix:
            raise click.ClickException(f"{config}: data.sim_mix is empty, nothing to make")
        path = run(tcfg.data.sim_root, tcfg.data.sim_mix, tuple(tcfg.model_config().resolution), workers,
                   limit, progress=not quiet)
    except (ConfigError, SimError, DataError) as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"wrote {path}")


if __name__ == "__main__":  # torchrun -m syncvp_core.training.cli --stage ... (train only)
    train()
