"""``syncvp eval-dataset``: the paper's Cityscapes protocol (2 -> 28 frames at 128x128), cleaned up.

What is evaluated (all recorded in metrics.json with a protocol hash):

* **Videos**: each sequence's first ``context + future`` frames (30), as the official evaluation (test
  clips start at frame 0). Shorter sequences are skipped and counted, never silently dropped.
* **Resolution**: frames are resized to ``size`` x ``size`` with the project's policy (squash, no crop,
  :mod:`syncvp_core.imageops`) or, with ``resize="center-crop"``, centre-cropped to a square first like the
  official loader does with raw frames. Metrics are computed at that resolution.
* **Forecast**: the model sees the first ``context`` real frames and rolls out ``future`` frames
  autoregressively (Predictor ``horizon=future``).
* **Per-frame metrics** on the predicted frames only: PSNR, SSIM (standard, on [0,1]), LPIPS (AlexNet),
  depth AbsRel / RMSE / delta1 on valid pixels. Per video = mean over its predicted frames; reported =
  mean over videos (each video weighs the same), plus the per-step curve.
* **FVD** (colour and depth): real 30-frame video vs context + predicted (2 real + 28 predicted, as the
  official code), cut into 16-frame chunks [0,16) and [14,30) — each chunk one sample.
* **Trajectories**: with N > 1 samples per video, mean-of-N and best-of-N are reported separately
  (best-of-N picks per video and per metric independently, as the official code does: optimistic).

Official quirks documented and **not** repeated (docs/evaluation.md): SSIM on batch-min-max-normalised frames;
"L2" depth error after batch min-max; means of batch means; a last 14-frame FVD chunk squeezed through I3D;
RGB/depth matched by sort order of a global glob.

Input layouts (auto-detected):

* official Cityscapes packages (``leftImg8bit_sequence/``, ``disparity_sequence/``, ``camera/``), read by
  :func:`syncvp_core.data.cityscapes.cityscapes_sequences` (metric depth from disparity and calibration);
* the SyncVP archive layout ``rgb/<split>/<sequence>/*.png`` + ``depth/<split>/<sequence>/*.png``, colour
  and depth matched by file name. Depth PNGs: ``mm16`` = 16-bit millimetres (0 = invalid); ``disparity8`` =
  8-bit normalised disparity, read as the model's normalised inverse depth (grey/255 -> [-1, 1] -> metres
  through the model's depth range; 0 = invalid); ``auto`` = mm16 for 16-bit files, disparity8 for 8-bit.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import depth as depth_norm
from ..imageops import resize_depth, resize_rgb
from .metrics import METRIC_DEFINITIONS, HorizonStats, depth_errors, psnr, ssim
from .protocol import EvalError, metric_assets, model_description
from .scoring import fvd_chunks

PER_FRAME = ("psnr", "ssim", "lpips", "absrel", "rmse", "delta1")


@dataclass
class DatasetProtocol:
    split: str = "test"
    context_frames: int = 2
    future_frames: int = 28
    size: int = 128
    resize: str = "squash"  # squash | center-crop
    max_videos: int | None = None
    trajectories: int = 1
    steps: int | None = None
    seed: int = 0
    depth_format: str = "auto"  # auto | mm16 | disparity8
    lpips: bool = True
    fvd: bool = True

    def validate(self) -> None:
        if self.resize not in ("squash", "center-crop"):
            raise EvalError(f"resize must be squash or center-crop, got {self.resize!r}")
        if self.depth_format not in ("auto", "mm16", "disparity8"):
            raise EvalError(f"depth_format must be auto, mm16 or disparity8, got {self.depth_format!r}")
        for name in ("context_frames", "future_frames", "size", "trajectories"):
            if getattr(self, name) < 1:
                raise EvalError(f"{name} must be >= 1")


@dataclass
class Video:
    name: str
    rgb: np.ndarray  # uint8 (T, S, S, 3)
    depth: np.ndarray  # float32 metres (T, S, S)


# ----------------------------------------------------------------------------------------------------
# readers


def _center_crop(a: np.ndarray) -> np.ndarray:
    h, w = a.shape[-3:-1] if a.ndim == 4 else a.shape[-2:]
    s = min(h, w)
    y, x = (h - s) // 2, (w - s) // 2
    return a[..., y:y + s, x:x + s, :] if a.ndim == 4 else a[..., y:y + s, x:x + s]


def _to_size(rgb: np.ndarray, depth: np.ndarray, size: int, resize: str) -> tuple[np.ndarray, np.ndarray]:
    if resize == "center-crop":
        rgb, depth = _center_crop(rgb), _center_crop(depth)
    return resize_rgb(rgb, (size, size)), resize_depth(depth, (size, size))


def _read_depth_png(path: Path, fmt: str, depth_cfg: Any) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        raw = np.array(im)
    if raw.ndim == 3:
        raw = raw[..., 0]
    kind = fmt
    if fmt == "auto":
        kind = "mm16" if raw.dtype == np.uint16 or (raw.dtype.kind in "iu" and raw.max() > 255) else "disparity8"
    if kind == "mm16":
        d = raw.astype(np.float32) / 1000.0
        d[raw == 0] = np.nan
        return d
    u = raw.astype(np.float32) / 255.0
    d = depth_norm.denormalize(torch.from_numpy(u * 2.0 - 1.0), depth_cfg).numpy().astype(np.float32)
    d[raw == 0] = np.nan
    return d


def _folder_videos(root: Path, proto: DatasetProtocol, depth_cfg: Any, counts: dict) -> Iterator[Video]:
    from PIL import Image

    rgb_root, dep_root = root / "rgb" / proto.split, root / "depth" / proto.split
    if not rgb_root.is_dir():
        raise EvalError(f"{rgb_root}: not found (expected ROOT/rgb/{proto.split}/<sequence>/*.png and "
                        f"ROOT/depth/{proto.split}/<sequence>/*.png, or the official Cityscapes folders)")
    need = proto.context_frames + proto.future_frames
    seqs = sorted(p for p in rgb_root.iterdir() if p.is_dir())
    if not seqs:
        raise EvalError(f"{rgb_root}: no sequence folders")
    for seq in seqs:
        files = sorted(seq.glob("*.png"))
        if len(files) < need:
            counts["skipped_short"] += 1
            counts.setdefault("skipped_examples", []).append(f"{seq.name}: {len(files)} < {need} frames")
            continue
        rgb, dep = [], []
        for f in files[:need]:
            df = dep_root / seq.name / f.name
            if not df.exists():
                raise EvalError(f"{df}: missing depth for {f} (colour and depth are matched by file name)")
            with Image.open(f) as im:
                rgb.append(np.array(im.convert("RGB"), dtype=np.uint8))
            dep.append(_read_depth_png(df, proto.depth_format, depth_cfg))
            if dep[-1].shape != rgb[-1].shape[:2]:
                raise EvalError(f"{df}: depth {dep[-1].shape} and colour {rgb[-1].shape[:2]} differ in size")
        r, d = _to_size(np.stack(rgb), np.stack(dep), proto.size, proto.resize)
        yield Video(seq.name, r, d)


def _cityscapes_videos(root: Path, proto: DatasetProtocol, counts: dict) -> Iterator[Video]:
    from ..data.cityscapes import CityscapesError, cityscapes_sequences

    need = proto.context_frames + proto.future_frames
    try:
        seqs = cityscapes_sequences(root, proto.split)
    except CityscapesError as e:
        raise EvalError(str(e)) from e
    for seq in seqs:
        if len(seq) < need:
            counts["skipped_short"] += 1
            counts.setdefault("skipped_examples", []).append(f"{seq.name}: {len(seq)} < {need} frames")
            continue
        rgb, dep = [], []
        try:
            for i, f in enumerate(seq.frames()):
                if i >= need:
                    break
                rgb.append(f.rgb)
                dep.append(f.depth)
        except CityscapesError as e:
            raise EvalError(str(e)) from e
        r, d = _to_size(np.stack(rgb), np.stack(dep), proto.size, proto.resize)
        yield Video(seq.name, r, d)


def iter_videos(root: str | Path, proto: DatasetProtocol, depth_cfg: Any, counts: dict) -> tuple[str, Iterator[Video]]:
    root = Path(root)
    if not root.is_dir():
        raise EvalError(f"{root}: no such dataset folder")
    if (root / "leftImg8bit_sequence").is_dir():
        return "cityscapes", _cityscapes_videos(root, proto, counts)
    return "folder", _folder_videos(root, proto, depth_cfg, counts)


# ----------------------------------------------------------------------------------------------------
# evaluation


def _per_frame(pred_rgb, pred_dep, gt_rgb, gt_dep, lp) -> dict[str, np.ndarray]:
    out = {"psnr": psnr(pred_rgb, gt_rgb), "ssim": ssim(pred_rgb, gt_rgb)}
    if lp is not None:
        out["lpips"] = lp.compare(pred_rgb, gt_rgb)
    out.update({k: v for k, v in depth_errors(pred_dep, gt_dep).items() if k != "coverage"})
    return out


def _better(metric: str) -> Any:
    return np.nanargmax if METRIC_DEFINITIONS[metric]["better"] == "higher" else np.nanargmin


def evaluate_dataset(root: str | Path, predictor: Any, proto: DatasetProtocol | None = None,
                     progress: bool = True, metric_models: tuple[Any, Any, dict[str, str]] | None = None) -> dict:
    from tqdm import tqdm

    from .fvd import depth_to_video, frechet_distance, i3d_features
    from .protocol import EvalProtocol
    from .scoring import load_metric_models

    proto = proto or DatasetProtocol()
    proto.validate()
    t0 = time.perf_counter()
    if proto.context_frames < predictor.context_frames:
        raise EvalError(f"the model needs {predictor.context_frames} context frames; the protocol gives "
                        f"{proto.context_frames}")
    lp, i3d, unavailable = metric_models or load_metric_models(EvalProtocol(lpips=proto.lpips, fvd=proto.fvd))
    if lp is not None and proto.size < lp.min_size:
        unavailable["lpips"], lp = f"{proto.size}px frames are below AlexNet's minimum of {lp.min_size}", None
    c, k = proto.context_frames, proto.future_frames
    chunks = fvd_chunks(c + k)
    if not chunks and "fvd" not in unavailable:
        unavailable["fvd"] = f"videos of {c + k} frames are shorter than the 16-frame FVD clip"
    counts: dict[str, Any] = {"videos": 0, "skipped_short": 0}
    layout, videos = iter_videos(root, proto, predictor.config.depth, counts)
    n = proto.trajectories
    per_step = {m: HorizonStats(k) for m in PER_FRAME}  # mean-of-N, per predicted step
    video_means: dict[str, list[float]] = {m: [] for m in PER_FRAME}
    video_best: dict[str, list[float]] = {m: [] for m in PER_FRAME}
    feats: dict[str, list[np.ndarray]] = {"real_rgb": [], "real_depth": [], "pred_rgb": [], "pred_depth": []}

    def unit_depth(d: np.ndarray) -> np.ndarray:
        x, _ = depth_norm.normalize(torch.from_numpy(np.ascontiguousarray(d)), predictor.config.depth)
        return ((x + 1) / 2).numpy()

    def clips(video: np.ndarray) -> np.ndarray:
        return np.stack([video[a:b] for a, b in chunks])

    bar = tqdm(total=proto.max_videos, desc="eval videos", unit="video", disable=not progress)
    try:
        for vi, video in enumerate(videos):
            if proto.max_videos and counts["videos"] >= proto.max_videos:
                break
            ctx_r, ctx_d = video.rgb[:c], video.depth[:c]
            gt_r, gt_d = video.rgb[c:c + k], video.depth[c:c + k]
            traj: list[dict[str, np.ndarray]] = []
            for j in range(n):
                seed = proto.seed + vi * n + j
                out = predictor.predict(ctx_r, ctx_d, horizon=k, steps=proto.steps, seed=seed)
                traj.append(_per_frame(out.rgb, out.depth, gt_r, gt_d, lp))
                if i3d is not None and chunks:
                    feats["pred_rgb"].append(i3d_features(i3d, clips(np.concatenate([ctx_r, out.rgb]))))
                    dv = depth_to_video(unit_depth(np.concatenate([ctx_d, out.depth])))
                    feats["pred_depth"].append(i3d_features(i3d, clips(dv)))
            if i3d is not None and chunks:
                feats["real_rgb"].append(i3d_features(i3d, clips(video.rgb[:c + k])))
                feats["real_depth"].append(i3d_features(i3d, clips(depth_to_video(unit_depth(video.depth[:c + k])))))
            for m in traj[0]:
                stack = np.stack([t[m] for t in traj])  # (N, K)
                per_step[m].add(np.nanmean(stack, axis=0) if np.isfinite(stack).any() else stack[0])
                per_video = np.nanmean(stack, axis=1) if np.isfinite(stack).any() else np.full(n, np.nan)
                video_means[m].append(float(np.nanmean(per_video)) if np.isfinite(per_video).any() else math.nan)
                if np.isfinite(per_video).any():
                    video_best[m].append(float(per_video[_better(m)(per_video)]))
            counts["videos"] += 1
            bar.update(1)
    finally:
        bar.close()
    if counts["videos"] == 0:
        raise EvalError(f"{root}: no video with {c + k} frames in split {proto.split!r} "
                        f"({counts['skipped_short']} shorter sequences skipped)")

    metrics: dict[str, Any] = {}
    for m in PER_FRAME:
        if m in unavailable:
            metrics[m] = {"available": False, "reason": unavailable[m]}
            continue
        vals = np.array(video_means[m], dtype=float)
        ok = vals[np.isfinite(vals)]
        entry = {"available": bool(ok.size), "mean": float(ok.mean()) if ok.size else None,
                 "std_over_videos": float(ok.std(ddof=1)) if ok.size > 1 else None, "n_videos": int(ok.size),
                 "per_step": per_step[m].summary()["mean"]}
        if n > 1 and video_best[m]:
            entry["best_of_n"] = float(np.mean(video_best[m]))
        metrics[m] = entry
    fvd: dict[str, Any]
    if "fvd" in unavailable:
        fvd = {"available": False, "reason": unavailable["fvd"]}
    else:
        fvd = {"available": True, "chunks": [list(x) for x in chunks], "includes_context_frames": True}
        for mod in ("rgb", "depth"):
            real, pred = np.concatenate(feats[f"real_{mod}"]), np.concatenate(feats[f"pred_{mod}"])
            fvd[mod] = {"value": frechet_distance(real, pred) if min(len(real), len(pred)) >= 2 else None,
                        "n_real_clips": int(len(real)), "n_pred_clips": int(len(pred))}
    desc = model_description(predictor)
    protocol = {"kind": "eval-dataset", "layout": layout, **asdict(proto),
                "steps": proto.steps or desc["default_steps"], "eta": desc["eta"], "model": desc,
                "metric_assets": metric_assets(),
                "seed_rule": "video i, trajectory j uses seed + i * trajectories + j",
                "aggregation": "per video: mean over predicted frames; reported: mean over videos",
                "best_of_n": "per video and per metric independently (optimistic), only when trajectories > 1",
                "fvd_protocol": {"clip_frames": 16, "chunks": [list(x) for x in chunks],
                                 "features": "I3D Kinetics-400 logits", "resize": "bilinear 224x224",
                                 "depth_as": "normalised inverse depth as 3-channel grey"}}
    h = hashlib.sha256(json.dumps(protocol, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return {"protocol": protocol, "protocol_hash": h, "metrics": metrics, "fvd": fvd, "counts": counts,
            "timing": {"total_s": time.perf_counter() - t0}, "metric_definitions": METRIC_DEFINITIONS,
            "source_path": str(root)}


def write_dataset_report(result: dict, out_dir: str | Path) -> dict[str, Path]:
    from ..fileio import atomic_write_text
    from .report import LABELS, _arrow, _fmt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "metrics.json", json.dumps(result, indent=2, default=str))
    p, m = result["protocol"], result["metrics"]
    lines = [f"# syncvp dataset evaluation ({p['layout']}, split {p['split']})", ""]
    if p["model"].get("random_init"):
        lines += ["> **Randomly initialised model: numbers are meaningless.**", ""]
    lines += [f"- Protocol hash `{result['protocol_hash']}`: {p['context_frames']} -> {p['future_frames']} frames at "
              f"{p['size']}x{p['size']} ({p['resize']}), DDIM steps {p['steps']}, eta {p['eta']}, seed {p['seed']}, "
              f"{p['trajectories']} trajectory(ies)",
              f"- Videos: {result['counts']['videos']} (skipped, too short: {result['counts']['skipped_short']})",
              "", "| metric | mean over videos | best-of-N |", "|---|---|---|"]
    for name in PER_FRAME:
        e = m[name]
        if not e.get("available"):
            lines.append(f"| {LABELS[name]} {_arrow(name)} | N/A ({e.get('reason', 'no value')}) | |")
            continue
        best = _fmt(e.get("best_of_n"), name) if "best_of_n" in e else "–"
        lines.append(f"| {LABELS[name]} {_arrow(name)} | {_fmt(e['mean'], name)} | {best} |")
    f = result["fvd"]
    lines += [""]
    if f.get("available"):
        def fv(v: float | None) -> str:
            return "–" if v is None else f"{v:.1f}"

        lines += [f"FVD colour: {fv(f['rgb']['value'])}, depth: {fv(f['depth']['value'])} "
                  f"({f['rgb']['n_pred_clips']} predicted / {f['rgb']['n_real_clips']} real 16-frame clips; "
                  "few clips make FVD noisy and biased upwards)."]
    else:
        lines += [f"FVD not computed: {f.get('reason')}"]
    lines += ["", "Per-step curves are in metrics.json (`metrics.<name>.per_step`). Protocol and the official "
              "code's quirks that are not repeated: docs/evaluation.md."]
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n")
    return {"metrics": out / "metrics.json", "report": out / "report.md"}

