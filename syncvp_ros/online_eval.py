"""Online replay evaluation (``syncvp eval-bag BAG --online``): the bag through the real predictor node.

Which frames make up the evaluation windows is decided by the offline code itself
(:func:`syncvp_core.evaluation.windows.plan_windows`, stamps only); :mod:`.online_replay` plays the bag
through a fresh node per scenario and records what it publishes. Scoring is the offline code too:
:func:`~syncvp_core.evaluation.replay.evaluate_bag` with the node's forecasts in place of the model row
(:class:`NodeForecasts`); each published ``h_k`` is paired with the ground-truth frame of the same stamp (a
mismatch larger than half a source interval fails the window). Baselines and the resize ceiling are
computed as offline.

Two pacings (:class:`~.online_replay.OnlineOptions` ``rate``):

* ``None`` (default, **lockstep**): the player waits after every context-completing frame until that
  prediction has been published. Nothing is dropped; with a fixed seed the metrics equal the offline ones
  (tested).
* ``R``: the bag's timing scaled by ``R`` (like ``bag_player --rate R``); the node drops stale work when
  inference is slower than the frames, as in deployment. Dropped work, delivered rate and latency show
  what a robot would get. (The per-window seed is set just before the window's frames are published; if
  the node is still processing the previous frame then, that frame's prediction uses it too, which only
  matters when windows overlap: stride 1.)

Registered in setup.py as the ``syncvp.online_eval`` entry point (:func:`run_from_cli`), which the core CLI
looks up: ``syncvp_core`` never imports this package.
"""
from __future__ import annotations

import math
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from syncvp_core.data.bag import IMAGE, BagTopics, read_rgbd_bag
from syncvp_core.evaluation.baselines import Forecast
from syncvp_core.evaluation.methods import MODEL
from syncvp_core.evaluation.protocol import EvalError, EvalProtocol, protocol_hash
from syncvp_core.evaluation.replay import EvalResult, evaluate_bag
from syncvp_core.evaluation.windows import Window, plan_windows
from syncvp_core.model_source import ModelSource

from .online_replay import Expectations, OnlineOptions, load_spooled, replay_scenario


class NodeForecasts:
    """The model row of an online evaluation: what the node published for each window (a
    :class:`~syncvp_core.evaluation.methods.Method`), paired with the ground truth by stamp."""

    name = MODEL

    def __init__(self, runs: dict[str, dict], expect: Expectations, context: int, horizon: int, tol_ns: float):
        self.runs, self.expect, self.c, self.horizon, self.tol_ns = runs, expect, context, horizon, tol_ns

    def forecast(self, window: Window, scenario: str) -> Forecast:
        run = self.runs[scenario]
        newest = int(window.stamps[self.c - 1])
        j = self.expect.newest.get(newest)
        if j is None or j not in run["done"]:
            raise ValueError(f"the node published no complete forecast for the window whose context ends "
                             f"at stamp {newest} ns (dropped as stale work, or lost)")
        for k in range(1, self.horizon + 1):
            pub, gt = run["stamps"][(j, k)], int(window.stamps[self.c + k - 1])
            if abs(pub - gt) > self.tol_ns:
                raise ValueError(f"h{k} is stamped {pub} ns but the ground-truth frame is at {gt} ns "
                                 f"(more than half a source interval apart)")
        return load_spooled(run["spool"], j, self.horizon, scenario)


def evaluate_bag_online(bag: str, checkpoint: str | None, protocol: EvalProtocol | None = None,
                        topics: BagTopics | None = None, slop_s: float = 0.02,
                        options: OnlineOptions | None = None, progress: bool = True,
                        metric_models: tuple[Any, Any, dict[str, str]] | None = None,
                        device: str = "cpu", backend: str = "torch") -> EvalResult:
    """Replay ``bag`` through the node (one pass per scenario), then score its forecasts with the offline
    evaluation code. ``checkpoint``: a path, None (the shipped default) or ``"random:CONFIG"``."""
    protocol = protocol or EvalProtocol()
    protocol.validate()
    options = options or OnlineOptions()
    options.validate()
    reader = read_rgbd_bag(bag, topics=topics, slop_s=slop_s)
    topics = reader.topics
    for role, name in (("colour", topics.color), ("depth", topics.depth)):
        if reader.info.topics[name].msgtype != IMAGE:
            raise EvalError(f"{bag}: {role} topic {name!r} is {reader.info.topics[name].msgtype}; the node "
                            f"subscribes to {IMAGE} only, so --online needs raw images (offline eval-bag reads "
                            "compressed ones)")
    cfg = ModelSource.parse(checkpoint).config()  # for the window plan, before the node exists
    horizon = protocol.horizon or cfg.chunk_frames
    plan = plan_windows(reader, cfg.context_frames, horizon, cfg.frame_rate_hz, protocol)
    if not plan.windows:
        raise EvalError(f"{bag}: no window to evaluate online ({len(plan.picked_stamps)} frames at the model "
                        f"rate; one window needs {cfg.context_frames + horizon})")
    c = cfg.context_frames
    tol_ns = 0.5 * plan.source_interval_ns if math.isfinite(plan.source_interval_ns) else 0.0
    runs: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="syncvp_online_") as tmp:
        for scenario in protocol.scenarios:
            spool = Path(tmp) / scenario
            spool.mkdir()
            runs[scenario] = replay_scenario(bag, topics, plan, scenario, checkpoint or "", protocol, horizon,
                                             slop_s, options, spool, device, backend, progress)
            runs[scenario]["spool"] = spool
        predictor = runs[protocol.scenarios[0]]["predictor"]
        node_rows = NodeForecasts(runs, Expectations(plan, horizon), c, horizon, tol_ns)

        result = evaluate_bag(bag, predictor, protocol, topics=topics, slop_s=slop_s, progress=progress,
                              metric_models=metric_models, model=node_rows)
    settings = {"pacing": "lockstep" if options.rate is None else f"rate x{options.rate:g}",
                "rate": options.rate, "torch_threads": options.torch_threads,
                "node_params": {k: v for k, v in options.node_params.items()}}
    result.protocol["online"] = settings
    result.protocol["kind"] = "eval-bag --online"
    result.protocol["hash"] = protocol_hash(result.protocol)
    result.online = {"settings": settings, "scenarios": {s: r["summary"] for s, r in runs.items()},
                     "plan": {k: v for k, v in asdict(plan).items() if k not in ("picked_stamps", "windows")}}
    for s, r in runs.items():
        summ = r["summary"]
        if summ["lockstep_timeouts"]:
            result.warnings.append(f"online {s}: {summ['lockstep_timeouts']} prediction(s) did not arrive within "
                                   f"{options.timeout_s:.0f} s (the node's context differed from the plan?)")
        if summ["unmatched_outputs"]:
            result.warnings.append(f"online {s}: {summ['unmatched_outputs']} output image(s) had stamps that match "
                                   "no planned context (the node kept other frames than the offline picks)")
    return result


def run_from_cli(bag: str, checkpoint: str | None, protocol: EvalProtocol, topics: BagTopics | None, slop_s: float,
                 *, rate: float | None, timeout_s: float, torch_threads: int, progress: bool, device: str,
                 backend: str) -> EvalResult:
    """``syncvp eval-bag --online``: registered in setup.py under the ``syncvp.online_eval`` entry points,
    which the core CLI looks up (syncvp_core never imports this package)."""
    options = OnlineOptions(rate=rate, torch_threads=torch_threads, timeout_s=timeout_s)
    return evaluate_bag_online(bag, checkpoint, protocol, topics, slop_s, options, progress=progress, device=device,
                               backend=backend)
