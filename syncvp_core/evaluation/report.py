"""Writes an evaluation's results: metrics.json, report.md with tables and plots, and side-by-side GIFs.

Everything is viewable without special tools: Markdown with PNG plots and GIF animations next to it.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..fileio import atomic_write_text
from .figures import pyplot, save
from .methods import BASELINES
from .metrics import DEPTH_METRICS, METRIC_DEFINITIONS, RGB_METRICS
from .uncertainty import NAME as UNCERTAINTY
from .uncertainty import report_section as uncertainty_section

LABELS = {"psnr": "PSNR", "ssim": "SSIM", "lpips": "LPIPS", "absrel": "AbsRel", "rmse": "RMSE",
          "delta1": "δ<1.25", "coverage": "coverage"}
METHOD_LABELS = {"model": "model", "resize_ceiling": "resize ceiling (ref.)"}  # others: name with dashes
SCENARIO_LABELS = {"full": "full (colour + depth)", "rgb_only": "RGB-only (depth removed)",
                   "depth_only": "depth-only (colour removed)"}
REFERENCE_METHODS = ("resize_ceiling",)


def method_label(name: str) -> str:
    return METHOD_LABELS.get(name, name.replace("_", "-"))


def _fmt(v: float | None, metric: str) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if metric == "psnr":
        return f"{v:.2f}"
    if metric == "rmse":
        return f"{v:.3f}"
    return f"{v:.3f}"


def _arrow(metric: str) -> str:
    return "↑" if METRIC_DEFINITIONS[metric]["better"] == "higher" else "↓"


def _best(values: dict[str, float | None], metric: str) -> str | None:
    cand = {m: v for m, v in values.items() if v is not None and m not in REFERENCE_METHODS}
    if len(cand) < 2:
        return None
    pick = max if METRIC_DEFINITIONS[metric]["better"] == "higher" else min
    return pick(cand, key=cand.get)


def summary_table(results: dict, scenario: str, metrics: tuple[str, ...]) -> str:
    methods = list(results[scenario])
    head = "| method | " + " | ".join(f"{LABELS[m]} {_arrow(m)}" for m in metrics) + " |"
    lines = [head, "|" + "---|" * (len(metrics) + 1)]
    means = {m: {meth: (results[scenario][meth][m].get("mean_over_horizon")
                        if results[scenario][meth][m].get("available") else None) for meth in methods}
             for m in metrics}
    best = {m: _best(means[m], m) for m in metrics}
    for meth in methods:
        cells = []
        for m in metrics:
            cell = results[scenario][meth][m]
            if not cell.get("available"):
                cells.append("N/A")
                continue
            txt = _fmt(cell.get("mean_over_horizon"), m)
            cells.append(f"**{txt}**" if best[m] == meth else txt)
        fails = results[scenario][meth].get("failed_windows", 0)
        name = method_label(meth) + (f" ({fails} failed windows)" if fails else "")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def horizon_table(results: dict, metric: str, horizon: int, dt_s: float | None) -> str:
    cols = [f"t+{k}" + (f" ({k * dt_s:.2f}s)" if dt_s else "") for k in range(1, horizon + 1)]
    lines = ["| scenario | method | " + " | ".join(cols) + " |", "|" + "---|" * (horizon + 2)]
    for scenario, by_method in results.items():
        for meth, cell in by_method.items():
            c = cell[metric]
            if not c.get("available"):
                continue
            vals = " | ".join(_fmt(v, metric) for v in c["mean"])
            lines.append(f"| {scenario} | {method_label(meth)} | {vals} |")
    return "\n".join(lines)


def plot_metric(results: dict, metric: str, path: Path, dt_s: float | None) -> bool:
    """One PNG per metric: a panel per scenario, a line per method (mean with 95% CI band)."""
    plt = pyplot()

    scenarios = [s for s in results if any(c[metric].get("available") for c in results[s].values())]
    if not scenarios:
        return False
    fig, axes = plt.subplots(1, len(scenarios), figsize=(4.2 * len(scenarios), 3.2), squeeze=False, sharey=True)
    for ax, scenario in zip(axes[0], scenarios):
        for meth, cell in results[scenario].items():
            c = cell[metric]
            if not c.get("available"):
                continue
            mean = np.array([np.nan if v is None else v for v in c["mean"]], dtype=float)
            ci = np.array([0.0 if v is None else v for v in c["ci95"]], dtype=float)
            k = np.arange(1, len(mean) + 1)
            x = k * dt_s if dt_s else k
            ref = meth in REFERENCE_METHODS
            line, = ax.plot(x, mean, "--" if ref else "-o", ms=3, label=method_label(meth),
                            color="grey" if ref else None)
            ax.fill_between(x, mean - ci, mean + ci, alpha=0.15, color=line.get_color())
        ax.set_title(SCENARIO_LABELS.get(scenario, scenario), fontsize=9)
        ax.set_xlabel("horizon (s)" if dt_s else "horizon (frames)")
        ax.grid(alpha=0.3)
    unit = METRIC_DEFINITIONS[metric]["unit"]
    axes[0][0].set_ylabel(f"{LABELS[metric]}{' (' + unit + ')' if unit else ''} {_arrow(metric)}")
    handles: dict = {}
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=len(handles), fontsize=8,
               frameon=False)
    return save(fig, path, rect=(0, 0.08, 1, 1))


def plot_latency(online: dict, path: Path) -> bool:
    """Histogram of the end-to-end latency of every delivered prediction, one colour per scenario."""
    plt = pyplot()

    series = {s: o["latency_ms"] for s, o in online["scenarios"].items() if o.get("latency_ms")}
    if not series:
        return False
    allv = np.concatenate([np.asarray(v, dtype=float) for v in series.values()])
    bins = np.linspace(0.0, float(allv.max()) * 1.05 + 1e-6, 31)
    fig, ax = plt.subplots(figsize=(6.0, 3.2))
    for scenario, v in series.items():
        o = online["scenarios"][scenario]["latency"]
        ax.hist(v, bins=bins, alpha=0.5, label=f"{SCENARIO_LABELS.get(scenario, scenario)}: p50 {o['p50']:.0f} ms, "
                                               f"p95 {o['p95']:.0f} ms")
    ax.set_xlabel("end-to-end latency (ms): context frame published -> last output received")
    ax.set_ylabel("predictions")
    return save(fig, path, ax)


def online_section(online: dict, latency_plot: Path | None, out: Path) -> list[str]:
    settings = online["settings"]
    lines = ["## Online replay through the node", "",
             f"The bag was played through the ROS 2 predictor node in-process (`use_sim_time`, pacing: "
             f"**{settings['pacing']}**, node torch threads {settings['torch_threads']}); the model rows above are "
             "the node's published forecasts, each h_k paired with the ground-truth frame of its stamp.", "",
             "| scenario | delivered / context-ready | delivered rate (bag time) | latency p50 | latency p95 "
             "| inference p50 | dropped work |", "|---|---|---|---|---|---|---|"]
    ms = lambda v: "–" if v is None else f"{v:.0f} ms"  # noqa: E731
    hz = lambda v: "–" if v is None else f"{v:.2f} Hz"  # noqa: E731
    for scenario, o in online["scenarios"].items():
        lines.append(f"| {scenario} | {o['delivered_predictions']} / {o['expected_predictions']} | "
                     f"{hz(o['delivered_rate_hz_bag_time'])} (of {hz(o['opportunity_rate_hz_bag_time'])}) | "
                     f"{ms(o['latency']['p50'])} | {ms(o['latency']['p95'])} | {ms(o['inference_ms']['p50'])} | "
                     f"{o['dropped_work']} |")
    lines.append("")
    if latency_plot is not None:
        lines += [f"![latency]({latency_plot.relative_to(out)})", ""]
    lines += ["End-to-end latency: from publishing the frame that completes a context to receiving the last of "
              "the prediction's output images. Dropped work: contexts the node replaced before inference "
              "started (its latest-only queue), from its diagnostics.", ""]
    return lines


# ----------------------------------------------------------------------------------------------------
# animation


def colorize_depth(depth: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """metres (..., H, W) -> uint8 RGB with the turbo colour map (near = red, far = blue); invalid = black."""
    from matplotlib import colormaps

    d = np.asarray(depth, dtype=np.float64)
    ok = np.isfinite(d) & (d > 0)
    u = np.clip((np.where(ok, d, hi) - lo) / max(hi - lo, 1e-6), 0, 1)
    rgb = (colormaps["turbo"](1.0 - u)[..., :3] * 255).astype(np.uint8)
    rgb[~ok] = 0
    return rgb


def panel(img: np.ndarray | None, size: tuple[int, int], text: str | None = None) -> np.ndarray:
    from PIL import Image, ImageDraw

    h, w = size
    if img is None:
        im = Image.new("RGB", (w, h), (60, 60, 60))
        ImageDraw.Draw(im).text((6, h // 2 - 6), text or "", fill=(220, 220, 220))
        return np.asarray(im)
    im = Image.fromarray(img)
    if im.size != (w, h):
        im = im.resize((w, h), Image.NEAREST)
    return np.asarray(im)


def labelled(grid: list[list[np.ndarray]], col_titles: list[str], row_titles: list[str], caption: str) -> np.ndarray:
    from PIL import Image, ImageDraw

    ph, pw = grid[0][0].shape[:2]
    top, left, pad = 18, 52, 4
    h = top + len(grid) * (ph + pad) + 16
    w = left + len(grid[0]) * (pw + pad)
    canvas = Image.new("RGB", (w, h), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for j, t in enumerate(col_titles):
        draw.text((left + j * (pw + pad) + 4, 3), t, fill=(0, 0, 0))
    for i, row in enumerate(grid):
        draw.text((4, top + i * (ph + pad) + ph // 2 - 6), row_titles[i], fill=(0, 0, 0))
        for j, p in enumerate(row):
            canvas.paste(Image.fromarray(p), (left + j * (pw + pad), top + i * (ph + pad)))
    draw.text((left, h - 14), caption, fill=(0, 0, 0))
    return np.asarray(canvas)


def animation_frames(anim: dict, scenario: str, method: str = "model", dt_s: float | None = None,
                     ) -> list[np.ndarray]:
    """Frames of the side-by-side animation: columns context | forecast | ground truth, rows colour and
    colourised depth. Context frames are shown first; then the forecast steps next to the real frames."""
    ctx_r, ctx_d = anim["ctx_rgb"], anim["ctx_depth"]
    fut_r, fut_d = anim["fut_rgb"], anim["fut_depth"]
    fc = anim["forecasts"][scenario].get(method)
    h, w = fut_r.shape[1:3]
    scale = max(1, int(round(240 / w)))  # small sensor frames are enlarged (nearest) to stay legible
    size = (h * scale, w * scale)
    allv = np.concatenate([ctx_d.ravel(), fut_d.ravel()])
    allv = allv[np.isfinite(allv) & (allv > 0)]
    lo, hi = (np.percentile(allv, 2), np.percentile(allv, 98)) if allv.size else (0.5, 5.0)
    rgb_gone = scenario == "depth_only"
    dep_gone = scenario == "rgb_only"
    cols = ["context", f"forecast ({method_label(method)})", "ground truth"]
    frames = []
    c = len(ctx_r)
    for t in range(c + len(fut_r)):
        if t < c:
            ci = t
            caption = f"context frame {t + 1}/{c}   scenario: {scenario}"
            pr = pd = gr = gd = None
        else:
            k = t - c
            ci = c - 1
            when = f" ({(k + 1) * dt_s:.2f} s)" if dt_s else ""
            caption = f"forecast step t+{k + 1}{when}   scenario: {scenario}"
            pr = None if fc is None or fc.rgb is None else fc.rgb[k]
            pd = None if fc is None or fc.depth is None else colorize_depth(fc.depth[k], lo, hi)
            gr, gd = fut_r[k], colorize_depth(fut_d[k], lo, hi)
        row_c = [panel(None if rgb_gone else ctx_r[ci], size, "removed"),
                 panel(pr, size, "N/A" if t >= c else ""), panel(gr, size, "")]
        row_d = [panel(None if dep_gone else colorize_depth(ctx_d[ci], lo, hi), size, "removed"),
                 panel(pd, size, "N/A" if t >= c else ""), panel(gd, size, "")]
        frames.append(labelled([row_c, row_d], cols, ["colour", "depth"], caption))
    return frames


def write_gif(frames: list[np.ndarray], path: Path, frame_s: float = 0.4) -> None:
    from PIL import Image

    # Fast octree palette per frame: GIF allows 256 colours; adaptive median-cut is ~10x slower.
    ims = [Image.fromarray(f).quantize(colors=255, method=Image.Quantize.FASTOCTREE) for f in frames]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.gif")
    ims[0].save(tmp, save_all=True, append_images=ims[1:], duration=int(frame_s * 1000), loop=0)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------------------------
# the whole report


def write_report(result: Any, out_dir: str | Path, title: str = "syncvp forecast evaluation") -> dict[str, Path]:
    """Write metrics.json, report.md, plots/*.png and animation_*.gif (+ a still PNG) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = result.to_json()
    files: dict[str, Path] = {}
    atomic_write_text(out / "metrics.json", json.dumps(data, indent=2, sort_keys=False, default=_json_default))
    files["metrics"] = out / "metrics.json"
    proto, results = data["protocol"], data["results"]
    rate = proto.get("effective_rate_hz")
    dt_s = 1.0 / rate if rate else None
    horizon = proto["horizon"]

    plots = {}
    for metric in RGB_METRICS + DEPTH_METRICS:
        p = out / "plots" / f"{metric}.png"
        if plot_metric(results, metric, p, dt_s):
            plots[metric] = p
    files.update({f"plot_{k}": v for k, v in plots.items()})
    latency_plot = None
    if data.get("online") and plot_latency(data["online"], out / "plots" / "latency.png"):
        latency_plot = files["plot_latency"] = out / "plots" / "latency.png"

    gifs = {}
    anim = result.animation
    if anim is not None:
        for scenario in anim["forecasts"]:
            frames = animation_frames(anim, scenario, "model", dt_s)
            gif = out / f"animation_{scenario}.gif"
            write_gif(frames, gif)
            gifs[scenario] = gif
            if scenario == "full" or len(gifs) == 1:
                from PIL import Image

                Image.fromarray(frames[-1]).save(out / "animation_still.png")
                files["still"] = out / "animation_still.png"
    files.update({f"gif_{k}": v for k, v in gifs.items()})

    md = _markdown(data, title, plots, gifs, out, dt_s, horizon, latency_plot)
    atomic_write_text(out / "report.md", md)
    files["report"] = out / "report.md"
    return files


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def _markdown(data: dict, title: str, plots: dict, gifs: dict, out: Path, dt_s: float | None, horizon: int,
              latency_plot: Path | None = None) -> str:
    proto, results, counts = data["protocol"], data["results"], data["counts"]
    model = proto["model"]
    src = proto.get("source", {})
    lines = [f"# {title}", ""]
    if model.get("random_init"):
        lines += ["> **The model is randomly initialised (not trained): its numbers are meaningless and only "
                  "show that the pipeline runs.**", ""]
    ck = model.get("checkpoint")
    lines += [
        f"- Source: `{src.get('bag', proto.get('source_path'))}` ({src.get('message_count', '?')} messages, "
        f"{src.get('duration_s', 0) or 0:.1f} s)" if src else f"- Source: {proto.get('source_path')}",
        f"- Model: `{model['name']}`, checkpoint `{Path(ck).name if ck else 'none'}`"
        + (f" (sha256 {model['checkpoint_sha256'][:12]})" if model.get("checkpoint_sha256") else "")
        + f", backend {model['backend']}, model resolution {model['resolution'][0]}x{model['resolution'][1]}",
        f"- Protocol hash `{data['protocol_hash']}`: {proto['context_frames']} context -> {horizon} future frames, "
        f"stride {proto['stride']}, DDIM steps {proto['steps']}, eta {proto['eta']}{_draws(model)}, "
        f"seed {proto['seed']} "
        f"({proto['seed_rule']})",
        f"- Frames: {counts['source_frames']} synchronised read, frame step {proto['frame_step']}"
        f"{' (auto)' if proto['frame_step_auto'] else ''} -> {_hz(proto.get('effective_rate_hz'))} "
        f"(source {_hz(proto.get('source_rate_hz'))}, model trained at {model['frame_rate_hz']:g} Hz)",
        f"- Windows evaluated: **{counts['windows_evaluated']}** (skipped for gaps: {counts['windows_skipped_gap']})",
        f"- Time: {data['timing']['total_s']:.0f} s in all; model forecast "
        + (f"{data['timing']['model_predict_s_mean']:.2f} s per call ({data['timing']['model_predict_calls']} calls)"
           if data["timing"].get("model_predict_s_mean") is not None else "n/a"),
        f"- Scored at the **sensor resolution** (predictions resized back from the model resolution); "
        f"aggregation: {proto['aggregation']}.",
        "",
    ]
    for w in data.get("warnings", []):
        lines.append(f"> warning: {w}")
    if data.get("warnings"):
        lines.append("")
    lines += ["## Summary (mean over all horizon steps)", "",
              "Bold = best forecast per column (the resize ceiling is a reference, not a forecast). N/A = the "
              "method cannot forecast that modality in that scenario (a baseline never invents a removed "
              "modality) or the metric is unavailable (reason below).", ""]
    for scenario in results:
        lines += [f"### {SCENARIO_LABELS.get(scenario, scenario)}", "",
                  summary_table(results, scenario, RGB_METRICS + DEPTH_METRICS), ""]
    if data.get("online"):
        lines += online_section(data["online"], latency_plot, out)
    blocks = dict(data.get("blocks", {}))
    if UNCERTAINTY in blocks:
        lines += uncertainty_section(blocks.pop(UNCERTAINTY), out)
    lines += blocks_section(blocks)
    lines += ["## Per horizon step", ""]
    for metric in RGB_METRICS + DEPTH_METRICS:
        if metric not in plots:
            continue
        lines += [f"### {LABELS[metric]} {_arrow(metric)}", "", f"![{metric}]({plots[metric].relative_to(out)})", "",
                  horizon_table(results, metric, horizon, dt_s), ""]
    lines += ["## FVD", ""]
    fvd = data["fvd"]
    if not fvd.get("available"):
        lines += [f"FVD not computed: {fvd.get('reason')}", ""]
    else:
        lines += ["| scenario | method | FVD colour ↓ | FVD depth ↓ | clips |", "|---|---|---|---|---|"]
        for scenario, by_method in fvd["values"].items():
            for meth, mods in by_method.items():
                vals = [("–" if mods.get(m, {}).get("value") is None else f"{mods[m]['value']:.1f}")
                        for m in ("rgb", "depth")]
                n = next(iter(mods.values()))["n_clips"]
                lines.append(f"| {scenario} | {method_label(meth)} | {vals[0]} | {vals[1]} | {n} |")
        lines += ["", f"FVD over {fvd['clip_frames']}-frame clips (context frames included). With few clips "
                  "FVD is noisy and biased upwards (the 400-d covariance is estimated from far fewer samples); "
                  "compare methods within one run only. See docs/evaluation.md.", ""]
    unavailable = {m: c for m, c in next(iter(next(iter(results.values())).values())).items()
                   if isinstance(c, dict) and not c.get("available") and "reason" in c
                   and not c["reason"].startswith("cannot forecast")}
    if unavailable:
        lines += ["## Unavailable metrics", ""]
        lines += [f"- {LABELS.get(m, m)}: {c['reason']}" for m, c in unavailable.items()]
        lines.append("")
    if gifs:
        lines += ["## Animation (one window)", "",
                  "Columns: context | model forecast | ground truth; rows: colour and depth (turbo colour map, "
                  "near = red, far = blue, black = no depth).", ""]
        for scenario, gif in gifs.items():
            lines += [f"**{SCENARIO_LABELS.get(scenario, scenario)}**", "", f"![{scenario}]({gif.name})", ""]
    lines += ["## Definitions", ""]
    for m in RGB_METRICS + DEPTH_METRICS:
        d = METRIC_DEFINITIONS[m]
        lines.append(f"- **{LABELS[m]}** ({d['better']} is better{', ' + d['unit'] if d['unit'] else ''}): "
                     f"{d['description']}")
    lines += [f"- **{method_label(name)}**: {factory.description}" for name, factory in BASELINES.items()
              if name in proto["methods"]]
    lines += ["- **resize ceiling**: the real future frames through the model resolution and back: the best "
              "any model at that resolution can score here (not a forecast).", ""]
    return "\n".join(lines)


def blocks_section(blocks: dict[str, dict]) -> list[str]:
    """Extra metric blocks (:class:`~.scoring.MetricBlock`): a table when the summary has ``rows`` (a list
    of flat dicts, one row each), then its other keys as a list."""
    lines: list[str] = []
    for name, summary in blocks.items():
        lines += [f"## {name}", ""]
        rows = summary.get("rows") or []
        if rows:
            cols = list(rows[0])
            lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
            lines += ["| " + " | ".join(_cell(r.get(c)) for c in cols) + " |" for r in rows]
            lines.append("")
        lines += [f"- {k}: {_cell(v)}" for k, v in summary.items() if k != "rows"]
        lines.append("")
    return lines


def _cell(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _hz(v: float | None) -> str:
    return "? Hz" if v is None else f"{v:.2f} Hz"


def _draws(model: dict) -> str:
    """", mean latent of N draws" when the sampler averages several draws (sampler.draws)."""
    n = ((model.get("config") or {}).get("sampler") or {}).get("draws", 1)
    return f", mean latent of {n} draws" if n > 1 else ""
