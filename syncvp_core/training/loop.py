"""The generic optimisation loop shared by every stage.

Determinism and resume: the data order comes from ``DistributedSampler(shuffle=True, seed, drop_last=True)``
with ``set_epoch`` (so 1 process with global batch B and W processes with B/W each see the same clips per
step), and all randomness of a micro-step (augmentation, timesteps, noise, guidance modes) is drawn for the
*global* batch from a generator seeded by (seed, step, micro-step), each rank keeping its share. The state
saved at a checkpoint (weights, EMA, AdamW moments, step, epoch and position in the epoch) therefore fully
determines the rest of the run: a resumed run repeats the uninterrupted one's losses exactly.
"""
from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DistributedSampler
from tqdm import tqdm

from ..checkpoint import save_checkpoint
from ..diffusion.losses import share_of
from .config import OptimConfig
from .dist import DistInfo, barrier, mean_across
from .state import EMA, load_state, lr_factor, save_state, trainable


@dataclass
class Task:
    """What a stage trains. ``loss(model, local_indices, generator, dist)`` -> (loss, {name: float})."""

    name: str                     # e.g. "ae_rgb", "single_depth", "joint"
    module: nn.Module
    n_items: int
    loss: Callable[..., tuple[torch.Tensor, dict[str, float]]]
    export_prefix: str            # state-dict prefix in the full model bundle, e.g. "ae_rgb."
    meta: dict[str, Any] = field(default_factory=dict)
    # sample(module, writer, step): writes example images to TensorBoard (optional)
    sample: Callable[..., None] | None = None


def micro_generator(seed: int, step: int, micro: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + step * 1_009 + micro) % (2**63 - 1))


def shard(x, info: DistInfo):
    """This rank's share of a value drawn for the global batch (global position W*j + rank)."""
    return share_of(x, info)


class _Order:
    """Per-rank clip order: epochs of a seeded DistributedSampler, consumed in local batches."""

    def __init__(self, n: int, info: DistInfo, seed: int, batch: int, epoch: int = 0, pos: int = 0):
        self.n, self.info, self.seed, self.batch = n, info, seed, batch
        self.epoch, self.pos = epoch, pos
        self.local = self._indices(epoch)
        if len(self.local) < batch:
            raise ValueError(f"{n} training items are too few for {info.world} x {batch} clips per step")

    def _indices(self, epoch: int) -> list[int]:
        s = DistributedSampler(range(self.n), num_replicas=self.info.world, rank=self.info.rank, shuffle=True,
                               seed=self.seed, drop_last=True)
        s.set_epoch(epoch)
        return list(s)

    def next(self) -> np.ndarray:
        if self.pos + self.batch > len(self.local):
            self.epoch, self.pos = self.epoch + 1, 0
            self.local = self._indices(self.epoch)
        idx = np.asarray(self.local[self.pos : self.pos + self.batch])
        self.pos += self.batch
        return idx


def train(task: Task, scfg: OptimConfig, stage_dir: Path, info: DistInfo, device: str, seed: int,
          base_meta: dict[str, Any], compile_model: bool = False, bf16: bool = True,
          progress: bool = True, stop_after: int | None = None) -> Path:
    """Train ``task`` for ``scfg.steps`` optimiser steps (resuming from ``stage_dir/state.safetensors``) and
    export its (EMA) weights to ``stage_dir/ema.safetensors``. Returns the export path.

    ``stop_after``: return right after this step without a final checkpoint, as if the process had been
    killed there (tests of resume use it)."""
    stage_dir = Path(stage_dir)
    stage_dir.mkdir(parents=True, exist_ok=True)
    state_path = stage_dir / "state.safetensors"
    module = task.module.to(device)
    params = trainable(module)
    opt = torch.optim.AdamW(params, lr=scfg.lr, betas=tuple(scfg.betas), weight_decay=scfg.weight_decay,
                            eps=scfg.eps)
    ema = EMA(module, scfg.ema_decay) if scfg.ema_decay > 0 else None
    step, epoch, pos = 0, 0, 0
    if state_path.exists():
        meta = load_state(state_path, module, ema, opt)
        step, epoch, pos = int(meta["step"]), int(meta["epoch"]), int(meta["pos"])
        if info.main:
            print(f"[{task.name}] resumed from {state_path} at step {step}")
    order = _Order(task.n_items, info, seed, scfg.batch_size, epoch, pos)
    runner: nn.Module = module
    if info.enabled:
        runner = nn.parallel.DistributedDataParallel(
            module, device_ids=[info.local_rank] if device.startswith("cuda") else None)
    if compile_model:
        # Static shapes: the three triplane planes go through the same modules with different shapes, and
        # automatic dynamic shapes then hit an Inductor error on the joint model (torch 2.13, CPU).
        runner = torch.compile(runner, dynamic=False)
    use_bf16 = bf16 and device.startswith("cuda")
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if use_bf16 else contextlib.nullcontext

    log_path = stage_dir / "losses.jsonl"
    writer = None
    if info.main:
        _truncate_log(log_path, step)
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(stage_dir / "tb"), purge_step=step)

    def meta_now() -> dict[str, Any]:
        return {**base_meta, **task.meta, "stage": task.name, "step": step, "epoch": order.epoch,
                "pos": order.pos, "world_size": info.world, "steps_total": scfg.steps}

    def checkpoint() -> None:
        if info.main:
            save_state(state_path, module, ema, opt, meta_now())
            export(stage_dir / "ema.safetensors", module, ema, task.export_prefix, meta_now())
        barrier(info)

    bar = tqdm(total=scfg.steps, initial=step, desc=task.name, disable=not (progress and info.main),
               dynamic_ncols=True)
    last_ckpt_t = time.time()
    t_log, n_log = time.time(), 0
    module.train()
    while step < scfg.steps:
        lr = scfg.lr * lr_factor(step, scfg.warmup_steps, scfg.steps, scfg.min_lr_ratio)
        for g in opt.param_groups:
            g["lr"] = lr
        logs: dict[str, float] = {}
        total = 0.0
        for micro in range(scfg.grad_accum):
            idx = order.next()
            gen = micro_generator(seed, step, micro)
            sync_off = info.enabled and micro < scfg.grad_accum - 1
            with runner.no_sync() if sync_off and hasattr(runner, "no_sync") else contextlib.nullcontext():
                with autocast():
                    loss, parts = task.loss(runner, idx, gen, info)
                (loss / scfg.grad_accum).backward()
            total += float(loss.detach()) / scfg.grad_accum
            for k, v in parts.items():
                logs[k] = logs.get(k, 0.0) + float(v) / scfg.grad_accum
        if not np.isfinite(total):
            raise FloatingPointError(f"[{task.name}] loss became {total} at step {step}; lower the lr")
        gnorm = torch.nn.utils.clip_grad_norm_(params, scfg.grad_clip if scfg.grad_clip > 0 else float("inf"))
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        n_log += 1
        if ema is not None and step % scfg.ema_every == 0:
            ema.update(module)
        total = mean_across(total, info, device)
        if info.main:
            rec = {"step": step, "loss": total, "lr": lr, "grad_norm": float(gnorm), **logs}
            with open(log_path, "a") as f:
                f.write(json.dumps(rec) + "\n")
            bar.update(1)
            bar.set_postfix(loss=f"{total:.4f}", lr=f"{lr:.2e}")
            if step % scfg.log_every == 0 or step == scfg.steps:
                dt = time.time() - t_log
                clips = n_log * scfg.batch_size * scfg.grad_accum * info.world
                for k, v in rec.items():
                    if k != "step":
                        writer.add_scalar(f"{task.name}/{k}", v, step)
                writer.add_scalar(f"{task.name}/clips_per_s", clips / max(dt, 1e-9), step)
                t_log, n_log = time.time(), 0
            if task.sample is not None and scfg.sample_every and step % scfg.sample_every == 0:
                module.eval()
                with torch.no_grad():
                    task.sample(module, writer, step)
                module.train()
        due = step % scfg.ckpt_every == 0 if scfg.ckpt_every else False
        if scfg.ckpt_every_s:
            # All ranks must agree on when to checkpoint (a barrier follows): rank 0 decides.
            flag = torch.tensor([1 if time.time() - last_ckpt_t >= scfg.ckpt_every_s else 0])
            if info.enabled:
                torch.distributed.broadcast(flag.to(device), 0)
            due = due or bool(flag.item())
        if due or step == scfg.steps:
            checkpoint()
            last_ckpt_t = time.time()
        if stop_after is not None and step >= stop_after:
            bar.close()
            if writer is not None:
                writer.close()
            return stage_dir / "ema.safetensors"
    if not state_path.exists():
        checkpoint()
    bar.close()
    if writer is not None:
        writer.close()
    return stage_dir / "ema.safetensors"


def export(path: Path, module: nn.Module, ema: EMA | None, prefix: str, meta: dict[str, Any]) -> None:
    """Weights for the next stage / the bundle: EMA weights when kept, under the bundle prefix."""
    sd = ema.state() if ema is not None else module.state_dict()
    save_checkpoint(path, {prefix + k: v for k, v in sd.items()}, {**meta, "kind": "weights"})


def _truncate_log(path: Path, step: int) -> None:
    """Drop loss records after the resumed step (they were logged after the last checkpoint)."""
    if not path.exists():
        return
    keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= step]
    path.write_text("".join(ln + "\n" for ln in keep))


def read_losses(stage_dir: Path) -> list[dict[str, Any]]:
    path = Path(stage_dir) / "losses.jsonl"
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()] if path.exists() else []
