"""Can the representation carry a forecast better than doing nothing? Autoencoder ceilings vs baselines.

For held-out windows (context + 8 future frames at the model's 10 Hz) of

* the held-out tails of the real sequences (last 20 %, never trained on), and
* simulator sequences (default: the shipped demo bag ``data/demo/sim_street``, not in any training set),

it prints per horizon, at the sensor resolution (160x120 here):

* copy-last and constant velocity (the baselines every forecast is judged against);
* the *autoencoder ceiling* of each given model: decode(encode(true future)), the best any latent forecast of
  that model can do (anchored models also get the newest context frame, exactly as when forecasting).

    python bench/anchor_ceiling.py --ae direct=syncvp_core/assets/default/syncvp_tiny.safetensors \\
        --ae anchored=runs/anchored_tiny [--ae NAME=RUN_DIR_OR_BUNDLE ...] [--markdown docs/x.md]

A model is a bundle (``.safetensors`` with both autoencoders), a training run directory holding
``ae_rgb/ema.safetensors`` and ``ae_depth/ema.safetensors`` (the denoiser is irrelevant to a ceiling), or
``RGB_RUN,DEPTH_RUN`` to combine the colour autoencoder of one run with the depth one of another.
``--depth-repr`` prints how each depth representation uses [-1, 1] on the real and simulated depth and what
relative depth error one fixed step of the representation costs at the median depth.
``--latent-stats RUN_DIR`` instead prints each modality's latent second moment on training clips and the
``autoencoder.latent_scale`` that makes it 1 (issue #11 item 3).
"""
from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from syncvp_core.checkpoint import config_from_meta, load_checkpoint, load_into  # noqa: E402
from syncvp_core.data.mix import sequence_name  # noqa: E402
from syncvp_core.evaluation.baselines import ConstantVelocity  # noqa: E402
from syncvp_core.evaluation.heldout import Accumulator, score, windows  # noqa: E402
from syncvp_core.models.syncvp import SyncVPModel  # noqa: E402
from syncvp_core.predictor import Predictor  # noqa: E402
from syncvp_core.training.data import read_folder, split_point, stride_for  # noqa: E402

REAL = [ROOT.parent / "shared/data/real-rgbd/tum_freiburg1_xyz",
        ROOT.parent / "shared/data/real-rgbd/iclnuim_living_room_traj2"]
SIM = [ROOT / "data/demo/sim_street"]
METRICS = ("lpips", "psnr", "absrel", "delta1")
SIM_MIX_GROUP = "held-out simulator sequences"
REAL_GROUP = {"heldout": "real held-out tails", "train": "real training part"}


def load_model(spec: str) -> Predictor:
    """A bundle file, a run directory, or ``RGB_RUN,DEPTH_RUN`` (an ablation that changes one modality;
    the model config, which holds the depth representation, comes from the depth run)."""
    if Path(spec).is_file():
        return Predictor.from_checkpoint(spec)
    runs = spec.split(",")
    parts = {m: Path(runs[min(i, len(runs) - 1)]) / f"ae_{m}" / "ema.safetensors"
             for i, m in enumerate(("rgb", "depth"))}
    _, meta = load_checkpoint(parts["depth"])
    model = SyncVPModel(config_from_meta(meta, parts["depth"]))
    steps = {}
    for m, p in parts.items():
        t, meta_m = load_checkpoint(p)
        load_into(model.autoencoder(m), t, p, prefix=f"ae_{m}.")
        steps[m] = meta_m.get("step")
    return Predictor(model, meta={"ae_runs": {m: str(p) for m, p in parts.items()}, "ae_steps": steps})


class ComposedAs:
    """A predictor whose ceiling is composed with other options of :mod:`syncvp_core.warp` (an ablation of
    the composition alone: same weights, same latents)."""

    def __init__(self, predictor: Predictor, rgb: dict | None = None, depth: dict | None = None):
        self.p, self.rgb, self.depth = predictor, rgb or {}, depth or {}
        self.meta = {**predictor.meta, "compose": {"rgb": self.rgb, "depth": self.depth}}

    def autoencode(self, *args):
        import syncvp_core.predictor as pred_mod

        saved = pred_mod.compose_rgb, pred_mod.compose_depth
        pred_mod.compose_rgb = functools.partial(saved[0], **self.rgb)
        pred_mod.compose_depth = functools.partial(saved[1], **self.depth)
        try:
            return self.p.autoencode(*args)
        finally:
            pred_mod.compose_rgb, pred_mod.compose_depth = saved

    def __getattr__(self, name):
        return getattr(self.p, name)


def real_windows(folder: Path, context: int, horizon: int, rate: float, step: int, split: str = "heldout",
                 span: tuple[float, float] | None = None):
    """Windows of the held-out tail, or (``split="train"``, for design choices) of the training part; ``span``
    (fractions of the training part's frames, e.g. (0.75, 1.0)) narrows the training part further."""
    seq = read_folder(folder, resolution=None, show_progress=False)
    stride = stride_for(seq.rate_hz, rate)
    cut = split_point(len(seq), 0.2)
    first, n = (cut, len(seq)) if split == "heldout" else (0, cut)
    if split != "heldout" and span is not None:
        first, n = int(cut * span[0]), int(cut * span[1])
    for idx in windows(n, first, stride, context + horizon, step):
        yield seq.rgb[idx], seq.depth[idx]


def bag_windows(bag: Path, context: int, horizon: int, step: int):
    from syncvp_core.data.bag import read_rgbd_bag

    frames = list(read_rgbd_bag(bag))
    rgb = np.stack([f.rgb for f in frames])
    dep = np.stack([f.depth for f in frames]).astype(np.float32)
    n = context + horizon
    for s in range(0, len(frames) - n + 1, step):
        yield rgb[s : s + n], dep[s : s + n]


def sim_mix_windows(path: Path, context: int, horizon: int, rate: float, step: int):
    """Windows of one held-out simulator sequence of a data mix (its raw render, held out whole)."""
    from syncvp_core.data.sim import SimSequence

    sq = SimSequence.load(path)
    stride = stride_for(float(sq.meta["rate_hz"]), rate)
    for idx in windows(len(sq.rgb), 0, stride, context + horizon, step):
        yield sq.rgb[idx], sq.depth[idx]


def markdown(acc: Accumulator, group: str, methods: list[str]) -> str:
    lines = [f"**{group}** (mean over windows; t+k = k x 100 ms)", "",
             "| method | metric | " + " | ".join(f"t+{i + 1}" for i in range(acc.h)) + " | mean |",
             "|---|---|" + "---|" * (acc.h + 1)]
    for name in METRICS:
        for method in methods:
            st = acc.stats.get(f"{group}/{method}/{name}")
            if st is None:
                continue
            s = st.summary()
            fmt = (lambda v: f"{v:.2f}") if name == "psnr" else (lambda v: f"{v:.3f}")
            vals = " | ".join("n/a" if v is None else fmt(v) for v in s["mean"])
            lines.append(f"| {method} | {name} | {vals} | {fmt(s['mean_over_horizon'])} |")
    return "\n".join(lines)


def evaluate(models: dict[str, Predictor], window_step: int, lpips: bool, split: str = "heldout",
             silent: bool = False, sim_sequences: list[Path] = ()) -> tuple[Accumulator, dict]:
    any_p = next(iter(models.values()))
    c, k, rate = any_p.context_frames, any_p.chunk_frames, any_p.frame_rate_hz
    lp = None
    if lpips:
        from syncvp_core.evaluation.lpips import LPIPS

        lp = LPIPS.pretrained()
    acc = Accumulator(k)
    counts = {}
    def file_name(src: Path) -> str:
        return src.name

    groups = [(REAL_GROUP[split], lambda f: real_windows(f, c, k, rate, window_step, split), REAL, file_name)]
    if split == "heldout":
        groups.append(("simulator", lambda f: bag_windows(f, c, k, max(1, window_step // 3)), SIM, file_name))
    if sim_sequences:
        groups.append((SIM_MIX_GROUP, lambda f: sim_mix_windows(f, c, k, rate, max(1, window_step // 3)),
                       sim_sequences, sequence_name))
    cv = ConstantVelocity(c)
    for group, source_windows, sources, name_of in groups:
        for src in sources:
            if not src.exists():
                print(f"skipping {src}: not found", file=sys.stderr)
                continue
            n = 0
            for rgb, dep in source_windows(src):
                n += 1
                cr, cd, fr, fd = rgb[:c], dep[:c], rgb[c:], dep[c:]
                truth = (fr[None], fd[None])
                score(acc, f"{group}/copy_last", np.repeat(cr[-1:], k, 0)[None], np.repeat(cd[-1:], k, 0)[None],
                      *truth, lp)
                f = cv.predict(cr, cd, k)
                score(acc, f"{group}/const_velocity", f.rgb[None], f.depth[None], *truth, lp)
                for name, p in models.items():
                    r, d = p.autoencode(cr[None], cd[None], fr[None], fd[None])
                    score(acc, f"{group}/ceiling:{name}", r, d, *truth, lp)
                    if silent and p.anchored:  # each modality against its empty anchor (a silent sensor)
                        r, _ = p.autoencode(None, cd[None], fr[None], fd[None])
                        _, d = p.autoencode(cr[None], None, fr[None], fd[None])
                        score(acc, f"{group}/ceiling:{name}/silent_sensor", r, d, *truth, lp)
            counts[name_of(src)] = n
    return acc, counts


def latent_stats(run: Path, config: str, overrides: list[str] | None = None) -> dict:
    """Second moment of each modality's latents over training clips and the scale that makes it 1."""
    from syncvp_core.training.config import load_train_config
    from syncvp_core.training.data import ClipIndex, load_sequences, to_model_tensors
    from syncvp_core.training.stages import encoder_inputs

    p = load_model(str(run))
    cfg = p.config
    tcfg = load_train_config(config, overrides)
    seqs = load_sequences(tcfg.data.folders, cfg, show_progress=False, datasets=tcfg.data.all_datasets())
    clips = ClipIndex(seqs, cfg.context_frames + cfg.chunk_frames, cfg.frame_rate_hz, tcfg.data.holdout_fraction,
                      start_step=1)
    rng = np.random.default_rng(0)
    pick = rng.choice(len(clips), size=min(64, len(clips)), replace=False)
    out = {}
    with torch.inference_mode():
        for mod in ("rgb", "depth"):
            sq, n = 0.0, 0
            for s in range(0, len(pick), 16):
                rgb, dep = zip(*(clips.frames(int(i)) for i in pick[s : s + 16]))
                x_r, x_d, valid = to_model_tensors(np.stack(rgb), np.stack(dep), cfg)
                x, anchor = encoder_inputs(cfg, mod, x_r if mod == "rgb" else x_d, valid)
                z = p.model.autoencoder(mod).encode(x[:, :, cfg.context_frames:], anchor)
                for plane in z.planes():
                    sq += float((plane.double() ** 2).sum())
                    n += plane.numel()
            m2 = sq / n
            out[mod] = {"second_moment": m2, "rms": m2**0.5, "scale_for_unit_rms": 1.0 / m2**0.5}
    out["current_latent_scale"] = cfg.autoencoder.latent_scale
    return out


def depth_representations(step: float = 0.02) -> str:
    """Markdown: per data group and representation, the share of [-1, 1] between the 1st and 99th depth
    percentile and the relative depth error of a ``step`` error in the representation at the median."""
    from syncvp_core import depth as depth_norm
    from syncvp_core.config import DepthConfig

    groups = {}
    for src in REAL:
        seq = read_folder(src, resolution=None, show_progress=False)
        groups.setdefault("real (TUM + ICL-NUIM)", []).append(seq.depth[::10].ravel())
    for src in SIM:
        groups.setdefault("simulator street", []).extend(d.ravel() for _, d in bag_windows(src, 0, 1, 10))
    lines = [f"| data | representation (0.2-20 m) | share of [-1, 1] used (p1-p99) | relative error of a {step} "
             "step at the median depth |", "|---|---|---|---|"]
    for name, parts in groups.items():
        d = np.concatenate(parts)
        d = d[np.isfinite(d) & (d > 0)]
        p1, p50, p99 = np.percentile(d, [1, 50, 99])
        for rep in ("inverse", "linear", "log"):
            cfg = DepthConfig(0.2, 20.0, rep)
            x = depth_norm.normalize(torch.tensor([p1, p50, p99], dtype=torch.float64), cfg)[0]
            moved = depth_norm.denormalize(x[1:2] - step, cfg)
            err = abs(float(moved[0]) / p50 - 1.0)
            lines.append(f"| {name} ({p1:.2f}-{p99:.2f} m, median {p50:.2f}) | {rep} | "
                         f"{float(x[2] - x[0]).__abs__() / 2:.0%} | {err:.1%} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ae", action="append", default=[], metavar="NAME=PATH")
    ap.add_argument("--window-step", type=int, default=12, help="source frames between real windows")
    ap.add_argument("--no-lpips", action="store_true")
    ap.add_argument("--json", default=None)
    ap.add_argument("--markdown", default=None)
    ap.add_argument("--latent-stats", default=None, metavar="RUN_DIR")
    ap.add_argument("--config", default="anchored_tiny", help="train config for --latent-stats")
    ap.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                    help="train config override for --latent-stats (e.g. data.datasets=[...])")
    ap.add_argument("--sim-config", default=None, metavar="TRAIN_CONFIG",
                    help="also the held-out simulator sequences of this train config's data mix")
    ap.add_argument("--depth-repr", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--split", choices=("heldout", "train"), default="heldout",
                    help="train: windows of the real sequences' training part (for design choices)")
    ap.add_argument("--silent", action="store_true",
                    help="also the ceiling of each modality decoded against its empty anchor (a silent sensor)")
    ap.add_argument("--compose-ablation", action="store_true",
                    help="also score each model composed the earlier way: colour bilinear, holes from the fill")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.depth_repr:
        print(depth_representations())
        return
    if a.latent_stats:
        print(json.dumps(latent_stats(Path(a.latent_stats), a.config, a.override), indent=2))
        return
    models = {}
    for item in a.ae:
        name, _, path = item.partition("=")
        models[name] = load_model(path)
    t0 = time.time()
    if a.compose_ablation:
        base = list(models.items())
        models.update({f"{n}/bilinear_rgb": ComposedAs(p, rgb={"sampling": "bilinear"}) for n, p in base})
        models.update({f"{n}/fill_holes": ComposedAs(p, depth={"holes": "fill"}) for n, p in base})
    sims = []
    if a.sim_config:
        from syncvp_core.data.mix import heldout_sim_sequences
        from syncvp_core.training.config import load_train_config

        tcfg = load_train_config(a.sim_config)
        sims = heldout_sim_sequences(tcfg.data.sim_root, tcfg.data.sim_mix)
    acc, counts = evaluate(models, a.window_step, not a.no_lpips, a.split, a.silent, sims)
    methods = ["copy_last", "const_velocity"] + [f"ceiling:{n}" for n in models]
    methods += [f"ceiling:{n}/silent_sensor" for n in models] if a.silent else []
    text = "\n\n".join(markdown(acc, g, methods) for g in (REAL_GROUP[a.split], "simulator", SIM_MIX_GROUP)
                       if any(k.startswith(g + "/") for k in acc.stats))
    text += f"\n\nwindows: {counts}; {time.time() - t0:.0f} s\n"
    print(text)
    if a.markdown:
        Path(a.markdown).write_text(text)
    if a.json:
        Path(a.json).write_text(json.dumps({"windows": counts, "models": {n: p.meta for n, p in models.items()},
                                            "metrics": acc.summary()}, indent=2, default=str))


if __name__ == "__main__":
    main()
