"""``syncvp eval-bag``, ``syncvp eval-dataset``, ``syncvp eval-heldout`` and ``syncvp demo``."""
from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import click

from .protocol import SCENARIOS, EvalProtocol


def _fail(e: Exception) -> click.ClickException:
    return click.ClickException(str(e))


def _known_errors() -> tuple[type[Exception], ...]:
    from ..checkpoint import CheckpointError
    from ..config import ConfigError
    from ..data.bag import BagError
    from ..predictor import PredictorError
    from ..pretrained import WeightsUnavailable
    from .protocol import EvalError

    return (BagError, EvalError, PredictorError, CheckpointError, ConfigError, WeightsUnavailable)


def parse_topics(text: str | None):
    """``color=/a,depth=/b[,color_info=/c,depth_info=/d]`` -> BagTopics (None = auto-detect)."""
    from ..data.bag import BagTopics

    if not text:
        return None
    fields = {f.name for f in dataclasses.fields(BagTopics)}
    kwargs: dict[str, Any] = {}
    for part in text.split(","):
        if "=" not in part:
            raise click.BadParameter(f"{part!r} must look like name=/topic (names: {sorted(fields)})",
                                     param_hint="--topics")
        key, value = (s.strip() for s in part.split("=", 1))
        key = {"colour": "color", "rgb": "color", "colour_info": "color_info"}.get(key, key)
        if key not in fields:
            raise click.BadParameter(f"unknown topic name {key!r}; use {sorted(fields)}", param_hint="--topics")
        kwargs[key] = value or None
    if "color" not in kwargs or "depth" not in kwargs:
        raise click.BadParameter("give at least color=... and depth=...", param_hint="--topics")
    kwargs.setdefault("color_info", kwargs["color"].rsplit("/", 1)[0] + "/camera_info")
    kwargs.setdefault("depth_info", None)
    return BagTopics(**kwargs)


def load_protocol(config: str | None, overrides: dict[str, Any]) -> EvalProtocol:
    """An EvalProtocol from a YAML file (keys = its fields; unknown keys are errors) plus CLI overrides."""
    from ..config import ConfigError, load_yaml

    data: dict[str, Any] = load_yaml(config) if config else {}
    names = {f.name for f in dataclasses.fields(EvalProtocol)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{config}: unknown key(s) {unknown}; valid keys: {sorted(names)}")
    data.update({k: v for k, v in overrides.items() if v is not None})
    for key in ("scenarios", "baselines"):
        if isinstance(data.get(key), str):
            data[key] = tuple(s.strip() for s in data[key].split(",") if s.strip())
        elif key in data:
            data[key] = tuple(data[key])
    proto = EvalProtocol(**data)
    proto.validate()
    return proto


def set_threads(n: int | None) -> None:
    if n is not None:
        if n < 1:
            raise click.BadParameter("must be >= 1", param_hint="--threads")
        import torch

        torch.set_num_threads(n)


def model_source(checkpoint: str | None, random_init: str | None):
    from ..model_source import ModelSource

    try:
        return ModelSource.from_options(checkpoint, random_init)
    except ValueError as e:
        raise click.UsageError("--checkpoint and --random-init are exclusive") from e


def load_predictor(checkpoint: str | None, random_init: str | None, device: str, backend: str):
    return model_source(checkpoint, random_init).open(device, backend)


def print_summary(result: Any, files: dict[str, Path]) -> None:
    from .report import method_label

    c = result.counts
    click.echo(f"evaluated {c['windows_evaluated']} windows ({c['windows_skipped_gap']} skipped for gaps) in "
               f"{result.timing['total_s']:.0f} s; protocol {result.protocol['hash']}")
    for scenario, by_method in result.results.items():
        click.echo(f"  {scenario}:")
        for meth, cell in by_method.items():
            parts = []
            for m in ("psnr", "ssim", "lpips", "absrel", "delta1"):
                v = cell[m].get("mean_over_horizon") if cell[m].get("available") else None
                parts.append(f"{m} {'N/A' if v is None else f'{v:.3f}'}")
            click.echo(f"    {method_label(meth):22s} " + "  ".join(parts))
    for w in result.warnings:
        click.echo(f"warning: {w}", err=True)
    click.echo(f"report:    {files['report']}")
    click.echo(f"metrics:   {files['metrics']}")
    for key in ("gif_full", "gif_rgb_only", "gif_depth_only"):
        if key in files:
            click.echo(f"animation: {files[key]}")


def _protocol_options(f):
    opts = [
        click.option("--config", "config", type=click.Path(dir_okay=False), default=None,
                     help="Evaluation protocol YAML (keys: horizon, stride, max_windows, steps, seed, scenarios, "
                          "baselines, frame_step, gap_tolerance, lpips, fvd, resize_ceiling, animate_window, "
                          "num_samples); "
                          "command-line options override it."),
        click.option("--horizon", type=int, default=None,
                     help="Future frames per window (default: the model's chunk; longer = autoregressive)."),
        click.option("--stride", type=int, default=None,
                     help="New window every N model-rate frames (default: the horizon)."),
        click.option("--max-windows", type=int, default=None, help="Stop after N windows."),
        click.option("--steps", type=int, default=None, help="DDIM steps (default: the model config's)."),
        click.option("--seed", type=int, default=None, help="Base seed; window i uses seed + i (default 0)."),
        click.option("--scenarios", default=None,
                     help=f"Comma list of sensor scenarios (default: {','.join(SCENARIOS)})."),
        click.option("--frame-step", type=int, default=None,
                     help="Keep every N-th frame (default: auto, round(bag rate / model rate))."),
        click.option("--num-samples", type=int, default=None,
                     help="Model samples per forecast (default 1). N > 1: the model row is their mean and the "
                          "report adds depth-uncertainty calibration and sparsification (offline only)."),
        click.option("--no-lpips", is_flag=True, help="Skip LPIPS."),
        click.option("--no-fvd", is_flag=True, help="Skip FVD."),
        click.option("--checkpoint", default=None, help="Model checkpoint (.safetensors); default: shipped model."),
        click.option("--random-init", default=None, metavar="CONFIG",
                     help="Evaluate a randomly initialised model of this config (pipeline check only)."),
        click.option("--device", default="cpu", show_default=True),
        click.option("--backend", default="torch", show_default=True, help="Predictor backend."),
        click.option("--threads", type=int, default=None,
                     help="torch CPU threads (default: torch's choice; use 1 on a busy shared machine)."),
        click.option("--quiet", is_flag=True, help="No progress bar."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _overrides(kw: dict[str, Any]) -> dict[str, Any]:
    return {
        "horizon": kw["horizon"], "stride": kw["stride"], "max_windows": kw["max_windows"], "steps": kw["steps"],
        "seed": kw["seed"], "scenarios": kw["scenarios"], "frame_step": kw["frame_step"],
        "lpips": False if kw["no_lpips"] else None, "fvd": False if kw["no_fvd"] else None,
        "num_samples": kw["num_samples"],
    }


def run_eval_bag(bag: str, out: str, protocol: EvalProtocol, predictor: Any, topics: Any = None,
                 slop_s: float = 0.02, progress: bool = True):
    from .replay import evaluate_bag
    from .report import write_report

    result = evaluate_bag(bag, predictor, protocol, topics=topics, slop_s=slop_s, progress=progress)
    files = write_report(result, out, title=f"syncvp forecast evaluation: {Path(bag).name}")
    return result, files


@click.command("eval-bag")
@click.argument("bag", type=click.Path())
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--topics", default=None,
              help="color=/topic,depth=/topic[,color_info=...,depth_info=...] (default: RealSense names, "
                   "else auto-detected).")
@click.option("--slop-ms", default=20.0, show_default=True, help="Colour/depth stamp pairing tolerance.")
@click.option("--online", is_flag=True,
              help="Replay the bag through the real ROS 2 predictor node in this process (needs rclpy: "
                   "pip install -e '.[ros]' or a sourced ROS 2) and score what it publishes; adds delivered "
                   "prediction rate, end-to-end latency and dropped work. One replay per scenario.")
@click.option("--rate", type=float, default=None,
              help="With --online: play the bag at its recorded timing x RATE (the node drops stale work if "
                   "it cannot keep up). Default: lockstep, the player waits for every prediction (nothing "
                   "dropped; metrics equal the offline ones).")
@click.option("--online-timeout", type=float, default=120.0, show_default=True,
              help="With --online: longest wait for one prediction, in seconds.")
@_protocol_options
def eval_bag(bag: str, out: str, topics: str | None, slop_ms: float, online: bool, rate: float | None,
             online_timeout: float, **kw: Any) -> None:
    """Replay a bag offline: forecast every window, score against the real future frames.

    Reads BAG directly (no `ros2 bag play`), pairs colour and depth by stamp, spaces frames at the model's
    frame rate and slides over the recording (bounded memory). Each window is forecast by the model and by
    four baselines (copy-last, constant velocity, optical-flow and scene-flow extrapolation) in three
    sensor scenarios (full, RGB-only, depth-only) and scored per horizon step at the sensor resolution:
    PSNR, SSIM, LPIPS, depth AbsRel/RMSE/delta1, and FVD when windows reach 16 frames. Writes
    OUT/metrics.json, OUT/report.md (tables, plots) and GIFs. Deterministic for a given seed.

    With --online the model row comes from the ROS 2 node instead (see docs/evaluation.md).
    """
    set_threads(kw["threads"])
    if rate is not None and not online:
        raise click.UsageError("--rate only applies with --online")
    if online and (kw["num_samples"] or 1) > 1:
        raise click.UsageError("--num-samples > 1 is offline only (the node's spread topics are not replayed)")
    if online:
        return _eval_bag_online(bag, out, topics, slop_ms, rate, online_timeout, kw)
    try:
        protocol = load_protocol(kw["config"], _overrides(kw))
        predictor = load_predictor(kw["checkpoint"], kw["random_init"], kw["device"], kw["backend"])
        result, files = run_eval_bag(bag, out, protocol, predictor, parse_topics(topics), slop_ms / 1000.0,
                                     progress=not kw["quiet"])
    except _known_errors() as e:
        raise _fail(e) from e
    print_summary(result, files)


ONLINE_ENTRY_POINTS = "syncvp.online_eval"  # group under which the ROS package registers ``--online``


def online_evaluator() -> Any:
    """The ``--online`` implementation, registered by the ROS package (``syncvp_ros``) as an entry point: the
    core never imports ROS code. Its signature: ``(bag, checkpoint, protocol, topics, slop_s, *, rate,
    timeout_s, torch_threads, progress, device, backend) -> EvalResult`` (``checkpoint`` as in
    :func:`syncvp_core.model_source.open_predictor`)."""
    from importlib.metadata import entry_points

    found = list(entry_points(group=ONLINE_ENTRY_POINTS))
    if not found:
        raise click.ClickException(
            "--online is provided by the syncvp_ros package, which is not installed here (install the project "
            "with `pip install -e '.[ros]'`, or colcon build it in a ROS 2 workspace); offline eval-bag "
            "(without --online) does not need ROS.")
    try:
        return found[0].load()
    except ImportError as e:
        raise click.ClickException(
            f"--online needs ROS 2's Python client library (rclpy) and the ROS message packages ({e}). Install "
            "them with `pip install -e '.[ros]'` (rclpy from PyPI) or source a ROS 2 installation; offline "
            "eval-bag (without --online) does not need ROS.") from e


def _eval_bag_online(bag: str, out: str, topics: str | None, slop_ms: float, rate: float | None,
                     timeout_s: float, kw: dict[str, Any]) -> None:
    from .report import write_report

    evaluate_online = online_evaluator()
    checkpoint = str(model_source(kw["checkpoint"], kw["random_init"]))
    import torch

    try:
        protocol = load_protocol(kw["config"], _overrides(kw))
        result = evaluate_online(bag, checkpoint, protocol, parse_topics(topics), slop_ms / 1000.0, rate=rate,
                                 timeout_s=timeout_s, torch_threads=torch.get_num_threads() if kw["threads"] else 1,
                                 progress=not kw["quiet"], device=kw["device"], backend=kw["backend"])
        files = write_report(result, out, title=f"syncvp online evaluation (through the node): {Path(bag).name}")
    except _known_errors() as e:
        raise _fail(e) from e
    for scenario, o in result.online["scenarios"].items():
        lat = o["latency"]
        ms = lambda v: "n/a" if v is None else f"{v:.0f} ms"  # noqa: E731
        click.echo(f"online {scenario}: delivered {o['delivered_predictions']}/{o['expected_predictions']} "
                   f"predictions, end-to-end latency p50 {ms(lat['p50'])} p95 {ms(lat['p95'])}, "
                   f"dropped work {o['dropped_work']}")
    print_summary(result, files)


# ----------------------------------------------------------------------------------------------------
# demo


def demo_dirs() -> list[Path]:
    """Where the shipped demo bags live: the source tree, then the installed share/ folder."""
    here = Path(__file__).resolve().parents[2] / "data" / "demo"
    return [here, Path(sys.prefix) / "share" / "syncvp_ros" / "data" / "demo"]


def find_demo_bags() -> list[Path]:
    bags: list[Path] = []
    for d in demo_dirs():
        if not d.is_dir():
            continue
        for p in sorted(d.iterdir()):
            if (p.is_dir() and (p / "metadata.yaml").exists()) or p.suffix in (".mcap", ".db3", ".bag"):
                bags.append(p)
        if bags:
            break
    return bags


@click.command("demo")
@click.option("--out", "-o", default="demo_out", show_default=True, type=click.Path(file_okay=False),
              help="Output folder (one sub-folder per demo bag when there are several).")
@click.option("--bag", "bags", multiple=True, type=click.Path(), help="Use this bag instead of the shipped ones.")
@click.option("--max-windows", type=int, default=8, show_default=True,
              help="Windows per bag (keeps the demo to a few minutes on a 2-core CPU).")
@click.option("--steps", type=int, default=None, help="DDIM steps (default: the model config's).")
@click.option("--checkpoint", default=None, help="Checkpoint (default: the shipped default model).")
@click.option("--threads", type=int, default=1, show_default=True,
              help="torch CPU threads. 1 is predictable on shared or busy machines (several intra-op threads "
                   "competing with other processes were measured 30x slower); try 2+ on an idle machine.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def demo(out: str, bags: tuple[str, ...], max_windows: int, steps: int | None, checkpoint: str | None,
         threads: int | None, quiet: bool) -> None:
    """The README demo: replay the shipped demo bag(s) through the shipped default model.

    Runs `syncvp eval-bag` with the default checkpoint on data/demo/*, a few windows each, writes the
    report into OUT and prints where report.md and the animation are.
    """
    from ..checkpoint import DEFAULT_CHECKPOINT

    set_threads(threads)
    missing = []
    ckpt = Path(checkpoint) if checkpoint else DEFAULT_CHECKPOINT
    if not ckpt.exists():
        missing.append(f"the default model checkpoint {ckpt}" if not checkpoint else f"checkpoint {ckpt}")
    paths = [Path(b) for b in bags] if bags else find_demo_bags()
    if not paths:
        missing.append("a demo bag (a rosbag2 folder or .mcap/.db3/.bag file) in "
                       + " or ".join(str(d) for d in demo_dirs()))
    missing += [f"bag {p}" for p in paths if not p.exists()]
    if missing:
        raise click.ClickException("cannot run the demo, missing: " + "; ".join(missing)
                                   + ". Use --checkpoint/--bag to point at your own.")
    t0 = time.perf_counter()
    try:
        predictor = load_predictor(checkpoint, None, "cpu", "torch")
        protocol = load_protocol(None, {"max_windows": max_windows, "steps": steps})
        reports = []
        for bag in paths:
            dest = Path(out) if len(paths) == 1 else Path(out) / bag.stem
            click.echo(f"demo: evaluating {bag} -> {dest}")
            result, files = run_eval_bag(str(bag), str(dest), protocol, predictor, progress=not quiet)
            print_summary(result, files)
            reports.append(files)
    except _known_errors() as e:
        raise _fail(e) from e
    click.echo(f"demo finished in {time.perf_counter() - t0:.0f} s")
    for files in reports:
        click.echo(f"open {files['report'].resolve()}")
        gif = files.get("gif_full") or next((v for k, v in files.items() if k.startswith("gif_")), None)
        if gif:
            click.echo(f"animation {gif.resolve()}")


@click.command("eval-dataset")
@click.argument("root", type=click.Path())
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--split", default="test", show_default=True, help="Sub-folder of rgb/ and depth/ to evaluate.")
@click.option("--context", "context_frames", type=int, default=2, show_default=True, help="Real context frames.")
@click.option("--future", "future_frames", type=int, default=28, show_default=True,
              help="Predicted frames (autoregressive rollout).")
@click.option("--size", type=int, default=128, show_default=True, help="Evaluation resolution (square).")
@click.option("--resize", type=click.Choice(["squash", "center-crop"]), default="squash", show_default=True,
              help="squash = the project's no-crop policy; center-crop = the official loader's square crop.")
@click.option("--max-videos", type=int, default=None, help="Evaluate at most N videos (sorted order).")
@click.option("--trajectories", type=int, default=1, show_default=True,
              help="Stochastic samples per video; >1 reports mean-of-N and best-of-N separately.")
@click.option("--steps", type=int, default=None, help="DDIM steps (default: the model config's).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--depth-format", type=click.Choice(["auto", "mm16", "disparity8"]), default="auto",
              show_default=True, help="Depth PNG encoding: 16-bit millimetres, or 8-bit normalised disparity.")
@click.option("--no-lpips", is_flag=True, help="Skip LPIPS.")
@click.option("--no-fvd", is_flag=True, help="Skip FVD.")
@click.option("--checkpoint", default=None, help="Model checkpoint (default: shipped model).")
@click.option("--random-init", default=None, metavar="CONFIG", help="Randomly initialised model (pipeline check).")
@click.option("--device", default="cpu", show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def eval_dataset(root: str, out: str, **kw: Any) -> None:
    """The paper's dataset protocol (Cityscapes-style folders): 2 -> 28 frames at 128x128.

    ROOT holds rgb/<split>/<sequence>/*.png and depth/<split>/<sequence>/*.png. Each sequence's first
    context+future frames form one test video; the model rolls out autoregressively; SSIM, PSNR, LPIPS
    per predicted frame (averaged per video, then over videos), depth metrics, and FVD on 16-frame chunks.
    The official code's quirks are documented in docs/evaluation.md and not repeated.
    """
    from .dataset import DatasetProtocol, evaluate_dataset, write_dataset_report

    try:
        predictor = load_predictor(kw["checkpoint"], kw["random_init"], kw["device"], "torch")
        proto = DatasetProtocol(split=kw["split"], context_frames=kw["context_frames"],
                                future_frames=kw["future_frames"], size=kw["size"], resize=kw["resize"],
                                max_videos=kw["max_videos"],
                                trajectories=kw["trajectories"], steps=kw["steps"], seed=kw["seed"],
                                depth_format=kw["depth_format"], lpips=not kw["no_lpips"], fvd=not kw["no_fvd"])
        result = evaluate_dataset(root, predictor, proto, progress=not kw["quiet"])
        files = write_dataset_report(result, out)
    except _known_errors() as e:
        raise _fail(e) from e
    click.echo(f"evaluated {result['counts']['videos']} videos; protocol {result['protocol_hash']}")
    click.echo(f"report:  {files['report']}")
    click.echo(f"metrics: {files['metrics']}")


@click.command("eval-heldout")
@click.option("--checkpoint", default=None, help="Model bundle (default: the shipped checkpoint).")
@click.option("--config", default="default_tiny", show_default=True,
              help="Train config naming the data folders and the hold-out fraction.")
@click.option("--window-step", type=int, default=12, show_default=True, help="Source frames between windows.")
@click.option("--steps", type=int, default=None, help="DDIM steps (default: the model config's).")
@click.option("--no-lpips", is_flag=True, help="Skip LPIPS.")
@click.option("--out", default=None, type=click.Path(dir_okay=False), help="Write the result JSON here.")
@click.option("--threads", type=int, default=None, help="torch CPU threads.")
@click.option("--sources", type=click.Choice(["all", "real", "sim"]), default="all", show_default=True,
              help="Score only the real sequences' held-out tails, or only the held-out simulator sequences "
                   "(one table pools every source it scores).")
def eval_heldout(checkpoint: str | None, config: str, window_step: int, steps: int | None, no_lpips: bool,
                 out: str | None, threads: int | None, sources: str) -> None:
    """Score a checkpoint on the held-out tails of a train config's sequences and on the held-out
    (validation) sequences of its simulator data mix (MODEL_CARD.md's table).

    Per horizon step: the model in full / rgb_only / depth_only, the baselines (copy-last, constant
    velocity, optical flow, scene flow) and the autoencoder ceiling, at the sensor resolution. Prints a Markdown table.
    """
    import json

    from ..training.config import load_train_config
    from .heldout import evaluate, table

    set_threads(threads)
    try:
        from ..data.mix import heldout_sim_sequences

        tcfg = load_train_config(config)
        folders = list(tcfg.data.folders) if sources != "sim" else []
        sims = heldout_sim_sequences(tcfg.data.sim_root, tcfg.data.sim_mix) if sources != "real" else []
        if not folders and not sims:
            raise click.ClickException(f"{config}: no held-out {sources} sources (is the simulator mix made?)")
        res = evaluate(checkpoint, folders, tcfg.data.holdout_fraction, window_step=window_step,
                       steps=steps, lpips=not no_lpips, sim_sequences=sims)
    except _known_errors() as e:
        raise _fail(e) from e
    if out:
        Path(out).write_text(json.dumps(res, indent=2))
    click.echo(table(res))
