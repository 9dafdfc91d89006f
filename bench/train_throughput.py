"""Training throughput (clips/s) of every stage: eager vs torch.compile, 1 vs 2 processes (DDP, gloo on CPU,
NCCL on GPU), printed as ratios in one run.

    python bench/train_throughput.py                 # tiny model (64x64), CPU
    python bench/train_throughput.py --micro --steps 5   # 16x16 smoke model (seconds)
    python bench/train_throughput.py --no-compile --stages joint

Each measurement runs ``--warmup`` optimiser steps (compilation happens there) and times ``--steps`` more on
synthetic data (the real data reader is not part of the step). The global batch is the same for 1 and 2
processes (2 processes use half the batch each), so "2 proc / 1 proc" is the data-parallel speed-up.
"""
from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as tdist
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from syncvp_core.training import stages as S  # noqa: E402
from syncvp_core.training.config import load_train_config  # noqa: E402
from syncvp_core.training.dist import DistInfo  # noqa: E402
from syncvp_core.training.pipeline import Session  # noqa: E402
from syncvp_core.training.synthetic import smoke_overrides, write_synthetic_folder  # noqa: E402

STAGES = ("ae", "single", "joint")


def _prepare(root: Path, micro: bool) -> list[str]:
    """A synthetic sequence, and (for the diffusion stages) a latent cache from untrained autoencoders."""
    folder = write_synthetic_folder(root / "seq", n_frames=80, size=(48, 64))
    base = "smoke" if micro else "default_tiny"
    ovr = smoke_overrides(folder, root / "run", "ae.steps=0", "progress=false", "threads=0", "data.hflip=false")
    s = Session(load_train_config(base, ovr), DistInfo())
    s.run_ae("rgb")
    s.run_ae("depth")
    s.run_cache()
    return [base, *ovr]


def _task(stage: str, args_cfg: list[str], device: str):
    s = Session(load_train_config(args_cfg[0], args_cfg[1:]), DistInfo())
    cfg = s.cfg
    if stage == "ae":
        return S.ae_task(cfg, s.tcfg.ae, "rgb", s.clips(cfg.chunk_frames), False, device)
    lat = S.Latents(s.latent_path(), device)
    if stage == "single":
        return S.single_task(cfg, s.tcfg.single, "rgb", lat, device)
    s.tcfg.joint.init = "scratch"
    return S.joint_task(cfg, s.tcfg.joint, lat, s.run_dir, device)


def measure(stage: str, args_cfg: list[str], batch: int, steps: int, warmup: int, compile_: bool,
            info: DistInfo, device: str) -> float:
    """Clips per second (global) for ``steps`` optimiser steps of ``stage``."""
    torch.manual_seed(0)
    task = _task(stage, args_cfg, device)
    module = task.module.to(device).train()
    runner = module
    if info.enabled:
        runner = torch.nn.parallel.DistributedDataParallel(module)
    if compile_:
        # Static shapes: the three triplane planes go through the same modules with different shapes, and
        # automatic dynamic shapes then hit an Inductor error on the joint model (torch 2.13, CPU).
        runner = torch.compile(runner, dynamic=False)
    opt = torch.optim.AdamW(module.parameters(), lr=1e-4)
    local = batch // info.world
    t0 = 0.0
    for i in range(warmup + steps):
        if i == warmup:
            if info.enabled:
                tdist.barrier()
            t0 = time.perf_counter()
        idx = torch.randint(0, task.n_items, (local,), generator=torch.Generator().manual_seed(i + info.rank)).numpy()
        loss, _ = task.loss(runner, idx, torch.Generator().manual_seed(i), info)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    if info.enabled:
        tdist.barrier()
    return batch * steps / (time.perf_counter() - t0)


def _worker(rank: int, world: int, port: int, job: tuple, out) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    tdist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(max(1, job[-1] // world))
    info = DistInfo(rank, world, rank)
    r = measure(*job[:-1], info, "cpu")
    if rank == 0:
        out.put(r)
    tdist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--micro", action="store_true", help="16x16 smoke model instead of tiny")
    ap.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES)
    ap.add_argument("--batch", type=int, default=4, help="global clips per step")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--no-ddp", action="store_true")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads in total (split between processes)")
    a = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as tmp:
        cfg_args = _prepare(Path(tmp), a.micro)
        rows = []
        for stage in a.stages:
            eager = measure(stage, cfg_args, a.batch, a.steps, a.warmup, False, DistInfo(), device)
            row = {"stage": stage, "eager": eager}
            if not a.no_compile:
                try:
                    row["compile"] = measure(stage, cfg_args, a.batch, a.steps, a.warmup, True, DistInfo(), device)
                except Exception as e:  # compile back-ends are optional (no C++ compiler, ...)
                    print(f"torch.compile failed for {stage}: {type(e).__name__}: {str(e)[:200]}")
            if not a.no_ddp and device == "cpu":
                q = mp.get_context("spawn").SimpleQueue()
                mp.spawn(_worker, args=(2, _free_port(), (stage, cfg_args, a.batch, a.steps, a.warmup, False,
                                                         a.threads), q), nprocs=2, join=True)
                row["ddp2"] = q.get()
            rows.append(row)
    model = "micro (16x16)" if a.micro else "tiny (64x64)"
    print(f"\nTraining throughput, {model}, device {device}, global batch {a.batch}, {a.steps} timed steps, "
          f"{a.threads} threads")
    print(f"{'stage':<8}{'eager clips/s':>15}{'compile clips/s':>17}{'compile/eager':>15}{'2-proc clips/s':>16}"
          f"{'2proc/1proc':>13}")
    for r in rows:
        e, c, d = r["eager"], r.get("compile"), r.get("ddp2")
        cs, cr = (f"{c:.2f}", f"{c / e:.2f}x") if c else ("n/a", "n/a")
        ds, dr = (f"{d:.2f}", f"{d / e:.2f}x") if d else ("n/a", "n/a")
        print(f"{r['stage']:<8}{e:>15.2f}{cs:>17}{cr:>15}{ds:>16}{dr:>13}")


if __name__ == "__main__":
    main()
