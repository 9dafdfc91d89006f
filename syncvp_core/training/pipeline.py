"""Stage orchestration: data loading, run directory layout, resolved configs, and the model bundle.

Run directory (``run_dir`` of the train config)::

    resolved_config.json            train + model config of the last invocation
    ae_rgb/ ae_depth/               state.safetensors (resume), ema.safetensors (weights), losses.jsonl, tb/
    latents.safetensors             cached latents (syncvp cache-latents)
    single_rgb/ single_depth/ joint/
    syncvp_<model>.safetensors      full model bundle (AEs + joint denoiser), what the Predictor loads
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..checkpoint import CheckpointError
from ..config import ModelConfig
from . import data as D
from . import stages as S
from .config import TrainConfig, resolved_json
from .dist import DistInfo, barrier, init_distributed, resolve_device
from .loop import train


def read_training_data(tcfg: TrainConfig, cfg: ModelConfig, show_progress: bool) -> list[D.Sequence]:
    """The training sequences of ``tcfg.data`` at the model resolution: from its pack when it names one,
    else from its folders, data sets and simulator mix (which must be made)."""
    d = tcfg.data
    if d.pack:
        from .pack import read_pack

        return read_pack(d.pack, tuple(cfg.resolution))
    from ..data.mix import mix_datasets

    missing = [str(p) for p in mix_datasets(d.sim_root, d.sim_mix) if not (p / "dataset.json").exists()]
    if missing:
        raise D.DataError(f"the simulator part of the data mix is not made yet ({', '.join(missing)}): "
                          f"run `syncvp make-mix --config <this config>` first")
    return D.load_sequences(d.folders, cfg, show_progress, d.all_datasets(), d.reversible)


class Session:
    """Everything a stage needs, set up once per process."""

    def __init__(self, tcfg: TrainConfig, info: DistInfo | None = None, stop_after: int | None = None):
        self.tcfg = tcfg
        self.stop_after = stop_after  # simulate a kill after this step (tests)
        self.cfg = tcfg.model_config()
        self.device = resolve_device(tcfg.device)
        self.info = info or init_distributed(self.device)
        if self.device.startswith("cuda"):
            self.device = resolve_device(tcfg.device, self.info)
        if tcfg.threads and not self.device.startswith("cuda"):
            torch.set_num_threads(tcfg.threads)
        self.run_dir = Path(tcfg.run_dir)
        self._seqs: list[D.Sequence] | None = None
        self._mix: dict[str, Any] | None = None
        if self.info.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "resolved_config.json").write_text(resolved_json(tcfg))
        barrier(self.info)

    # -- data ------------------------------------------------------------------------------------------

    def sequences(self) -> list[D.Sequence]:
        if self._seqs is None:
            self._seqs = read_training_data(self.tcfg, self.cfg, self.tcfg.progress and self.info.main)
        return self._seqs

    def fingerprint(self) -> str:
        return D.data_fingerprint(self.sequences(), self.tcfg.data.holdout_fraction)

    def clips(self, length: int, start_step: int = 0) -> D.ClipIndex:
        return D.ClipIndex(self.sequences(), length, self.cfg.frame_rate_hz, self.tcfg.data.holdout_fraction,
                           start_step, self.tcfg.data.reverse_time)

    def data_mix(self) -> dict[str, Any]:
        """What the diffusion clips are made of (recorded in every checkpoint, shown by the model card)."""
        if self._mix is None:
            d = self.tcfg.data
            clips = self.clips(self.cfg.context_frames + self.cfg.chunk_frames, d.start_step)
            self._mix = D.describe_mix(self.sequences(), clips, d.holdout_fraction, hflip=d.hflip,
                                       cache_hflip=d.cache_hflip, start_step=d.start_step,
                                       reverse_time=d.reverse_time)
        return self._mix

    def base_meta(self) -> dict[str, Any]:
        return {"config": self.cfg.to_dict(), "train_config": self.tcfg.to_dict(), "code_version": __version__,
                "data_fingerprint": self.fingerprint(), "seed": self.tcfg.seed, "data_mix": self.data_mix()}

    def latent_path(self) -> Path:
        custom = self.tcfg.data.latent_cache
        return Path(custom) if custom else self.run_dir / "latents.safetensors"

    def ae_path(self, mod: str) -> Path:
        return self.run_dir / f"ae_{mod}" / "ema.safetensors"

    def _stage_dir(self, name: str) -> Path:
        d = self.run_dir / name
        if self.info.main:
            d.mkdir(parents=True, exist_ok=True)
            (d / "resolved_config.json").write_text(resolved_json(self.tcfg))
        return d

    def _train(self, task: S.Task, scfg) -> Path:
        t0 = time.time()
        out = train(task, scfg, self._stage_dir(task.name), self.info, self.device, self.tcfg.seed, self.base_meta(),
                    self.tcfg.compile, self.tcfg.bf16, self.tcfg.progress, self.stop_after)
        if self.info.main:
            print(f"[{task.name}] done: {scfg.steps} steps, {time.time() - t0:.0f} s this invocation -> {out}")
        return out

    # -- stages ------------------------------------------------------------------------------------------

    def run_ae(self, modality: str) -> Path:
        clips = self.clips(S.ae_clip_length(self.cfg))
        torch.manual_seed(self.tcfg.seed)
        task = S.ae_task(self.cfg, self.tcfg.ae, modality, clips, self.tcfg.data.hflip, self.device)
        return self._train(task, self.tcfg.ae)

    def run_forecast_decoder(self, modality: str, bundle: Path) -> Path:
        """Fine-tune this run's ``ae_<modality>`` decoder on the forecasts of ``bundle`` (encoders, denoiser
        frozen; syncvp_core.training.forecast_decoder). Uses the ``ae`` settings (steps, lr, batch)."""
        from .forecast_decoder import forecast_decoder_task

        if self.info.world > 1:  # it calls decode(), which DistributedDataParallel would not synchronise
            raise CheckpointError("decoder fine-tuning on forecasts runs in one process (no torchrun)")
        clips = self.clips(self.cfg.context_frames + self.cfg.chunk_frames, self.tcfg.data.start_step)
        torch.manual_seed(self.tcfg.seed)
        task = forecast_decoder_task(self.cfg, self.tcfg.ae, modality, clips, Path(bundle), self.tcfg.data.hflip,
                                     self.device)
        return self._train(task, self.tcfg.ae)

    def _cache_key(self) -> dict[str, Any]:
        from ..checkpoint import file_sha256

        return {"ae_rgb_sha256": file_sha256(self.ae_path("rgb")),
                "ae_depth_sha256": file_sha256(self.ae_path("depth")), "data_fingerprint": self.fingerprint(),
                "start_step": self.tcfg.data.start_step,
                **({"reverse_time": True} if self.tcfg.data.reverse_time else {}),  # old caches stay valid
                "cache_hflip": self.tcfg.data.cache_hflip, "config": self._latent_config()}

    def _latent_config(self) -> dict[str, Any]:
        # The sampler does not change what the autoencoders encode: switching it keeps the cache.
        return {k: v for k, v in json.loads(self.cfg.to_json()).items() if k != "sampler"}

    def run_cache(self, reuse: bool = False) -> Path:
        """Encode the training clips; with ``reuse`` an existing cache made from the same autoencoder files,
        data and clip settings is kept (``--stage all`` re-run after an interruption)."""
        for mod in ("rgb", "depth"):
            if not self.ae_path(mod).exists():
                raise CheckpointError(f"{self.ae_path(mod)} not found: train `--stage ae --modality {mod}` first")
        out = self.latent_path()
        if self.info.main:
            key = self._cache_key()
            if reuse and out.exists():
                from ..checkpoint import load_checkpoint

                meta = load_checkpoint(out)[1]
                if all(meta.get(k) == v for k, v in key.items()):
                    print(f"[cache-latents] {out} is up to date; kept")
                    barrier(self.info)
                    return out
            clips = self.clips(self.cfg.context_frames + self.cfg.chunk_frames, self.tcfg.data.start_step)
            S.cache_latents(self.cfg, self.ae_path("rgb"), self.ae_path("depth"), clips, self.tcfg.data.cache_hflip,
                            out, self.device, progress=self.tcfg.progress, meta={**self.base_meta(), **key},
                            part_key=key)
        barrier(self.info)
        return out

    def _latents(self) -> S.Latents:
        p = self.latent_path()
        if not p.exists():
            raise CheckpointError(f"{p} not found: run `syncvp cache-latents` (or --stage all) first")
        return S.Latents(p, self.device)

    def run_single(self, modality: str) -> Path:
        torch.manual_seed(self.tcfg.seed)
        task = S.single_task(self.cfg, self.tcfg.single, modality, self._latents(), self.device)
        return self._train(task, self.tcfg.single)

    def run_joint(self) -> Path:
        aes = (self.ae_path("rgb"), self.ae_path("depth"))
        task = S.joint_task(self.cfg, self.tcfg.joint, self._latents(), self.run_dir, self.device,
                            aes if all(p.exists() for p in aes) else None)
        out = self._train(task, self.tcfg.joint)
        if self.stop_after is None:
            self.bundle()
        return out

    def bundle(self, out: Path | None = None, dtype: torch.dtype = torch.float32, ae_run: Path | None = None) -> Path:
        """Merge ae_rgb, ae_depth and joint exports into the model bundle the Predictor loads. Metadata comes
        from the joint export (config, data fingerprint, step), so no data is read here. ``ae_run``: take the
        autoencoders from another run directory (e.g. a decoder fine-tuning run)."""
        out = Path(out) if out else self.run_dir / f"syncvp_{self.cfg.name}.safetensors"
        if self.info.main:
            from ..checkpoint import load_checkpoint

            ae_dir = Path(ae_run) if ae_run else self.run_dir
            parts = {"ae_rgb.": ae_dir / "ae_rgb" / "ema.safetensors",
                     "ae_depth.": ae_dir / "ae_depth" / "ema.safetensors",
                     "denoiser.": self.run_dir / "joint" / "ema.safetensors"}
            steps = {}
            for prefix, p in parts.items():
                if not p.exists():
                    raise CheckpointError(f"{p} not found: train that stage first")
                steps[prefix.rstrip(".")] = load_checkpoint(p)[1].get("step")
            _, jmeta = load_checkpoint(parts["denoiser."])
            keep = ("train_config", "data_fingerprint", "seed", "init", "data_mix")
            meta = {k: jmeta[k] for k in keep if k in jmeta}
            meta.update(stage="bundle", steps=steps, joint_step=jmeta.get("step"),
                        parts={k.rstrip("."): str(p) for k, p in parts.items()})
            S.write_bundle(self.cfg, parts, out, meta, dtype)
        barrier(self.info)
        return out

    def run(self, stage: str, modality: str | None) -> list[Path]:
        mods = [modality] if modality else ["rgb", "depth"]
        if stage == "ae":
            return [self.run_ae(m) for m in mods]
        if stage == "single":
            return [self.run_single(m) for m in mods]
        if stage == "joint":
            return [self.run_joint()]
        if stage == "all":
            outs = [self.run_ae(m) for m in ("rgb", "depth")]
            outs.append(self.run_cache(reuse=True))
            if self.tcfg.joint.init == "singles":
                outs += [self.run_single(m) for m in ("rgb", "depth")]
            outs.append(self.run_joint())
            return outs
        raise ValueError(f"unknown stage {stage!r}")
