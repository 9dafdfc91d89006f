"""Replaying a bag through the real predictor node, in this process, for online evaluation.

Everything runs in the in-process :class:`~syncvp_ros.testing.Harness` (a private rclpy Context with
loopback discovery and its own domain id): the node under test, :class:`~syncvp_ros.predictor_node.PredictorNode`,
with ``use_sim_time`` and its ordinary parameters (reliable inputs and outputs, so the transport loses
nothing), and a driver node that plays the bag with :class:`~syncvp_ros.bag_player.BagPlayer` (recorded CDR
bytes, ``/clock`` never ahead of the data) and records what the node publishes: ``~/pred/h{k}/color/image``,
``~/pred/h{k}/depth/image`` (stamped with their target times) and ``~/status``.

The node's context spacing is set to the offline window plan's rate (``context_rate_hz``), so its contexts
are the planned windows' contexts; before the frame that completes window *i*'s context its ``seed``
parameter is set to ``seed + i`` (the offline seed rule). Pacing: lockstep (``rate=None``: wait after every
context-completing frame until its prediction is in; sim time stands still meanwhile) or the bag's timing
scaled by ``rate``. End-to-end latency of a prediction = wall time at which the last of its 2K output images
arrived minus the wall time at which the frame completing its context was published. Predicted images of the
evaluated windows are spooled to a folder (bounded memory on long bags).

Scoring is not done here: :mod:`.online_eval` hands the recordings to the offline evaluation code.
"""
from __future__ import annotations

import bisect
import json
import math
import statistics
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from syncvp_core.data.bag import BagTopics
from syncvp_core.evaluation.baselines import Forecast
from syncvp_core.evaluation.protocol import EvalError, EvalProtocol
from syncvp_core.evaluation.windows import WindowPlan

from .bag_player import BagPlayer

FORCE_MODE = {"full": "auto", "rgb_only": "rgb_only", "depth_only": "depth_only"}


@dataclass
class OnlineOptions:
    rate: float | None = None  # None = lockstep (wait for every prediction); R = bag timing x R
    torch_threads: int = 1  # the node's torch_threads (1: several threads collapse on a shared CPU)
    timeout_s: float = 120.0  # longest wait for one prediction (lockstep) or for the last one (paced)
    domain_id: int | None = None  # None = random 1..100
    node_params: dict[str, Any] = field(default_factory=dict)  # extra node parameters (override ours)

    def validate(self) -> None:
        if self.rate is not None and not self.rate > 0:
            raise EvalError(f"--rate must be > 0 (or omitted for lockstep), got {self.rate}")
        if self.timeout_s <= 0:
            raise EvalError(f"timeout must be > 0 s, got {self.timeout_s}")


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "mean": None, "max": None}
    a = np.asarray(values, dtype=float)
    return {"p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)), "mean": float(a.mean()),
            "max": float(a.max())}


class Expectations:
    """Maps each published (k, stamp) to the picked frame whose prediction it belongs to.

    The node stamps h_k ``newest + k * dt`` with ``dt`` the median spacing of its context frames; with
    the planned picks as context, that is computable here exactly (same integer arithmetic)."""

    def __init__(self, plan: WindowPlan, horizon: int):
        c = plan.context_frames
        p = plan.picked_stamps
        self.by_key: dict[tuple[int, int], int] = {}
        self.newest: dict[int, int] = {}  # picked stamp -> picked index
        for j in range(c - 1, len(p)):
            ctx = p[j - c + 1:j + 1]
            diffs = [b - a for a, b in zip(ctx, ctx[1:]) if b > a]
            dt = int(statistics.median(diffs)) if diffs else int(round(plan.period_ns))
            self.newest[p[j]] = j
            for k in range(1, horizon + 1):
                self.by_key[(k, p[j] + k * dt)] = j


class _Recorder:
    """Subscribes to the node's outputs and status; spools the evaluated windows' images to disk."""

    def __init__(self, node: Any, base: str, horizon: int, expect: Expectations, keep: set[int], spool: Path):
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image
        from std_msgs.msg import String

        self.horizon, self.expect, self.keep, self.spool = horizon, expect, keep, spool
        self.cv = threading.Condition()
        self.parts: dict[int, int] = defaultdict(int)  # picked index -> outputs received
        self.done_at: dict[int, float] = {}  # picked index -> wall time of its last output
        self.stamps: dict[tuple[int, int], int] = {}  # (picked index, k) -> published stamp
        self.unmatched = 0
        self.statuses: list[dict] = []
        self.subs = []
        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        for k in range(1, horizon + 1):
            for kind in ("color", "depth"):
                self.subs.append(node.create_subscription(
                    Image, f"{base}/pred/h{k}/{kind}/image",
                    lambda m, k=k, kind=kind: self._on_image(k, kind, m), reliable))
        latched = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.subs.append(node.create_subscription(String, f"{base}/status", self._on_status, latched))

    def matched(self) -> bool:
        """Discovery has matched every one of our subscriptions with the node's publisher."""
        return all(sub.get_publisher_count() > 0 for sub in self.subs)

    def _on_status(self, msg: Any) -> None:
        try:
            st = json.loads(msg.data)
        except ValueError:
            return
        if st.get("event") == "prediction":
            with self.cv:
                self.statuses.append(st)

    def _on_image(self, k: int, kind: str, msg: Any) -> None:
        from .ros_io import color_from_msg, depth_from_msg, stamp_ns

        now = time.perf_counter()
        stamp = stamp_ns(msg.header)
        j = self.expect.by_key.get((k, stamp))
        if j is None:
            with self.cv:
                self.unmatched += 1
            return
        if j in self.keep:
            arr = color_from_msg(msg) if kind == "color" else depth_from_msg(msg)
            np.save(self.spool / f"{j}_{k}_{kind}.npy", arr)
        with self.cv:
            self.stamps[(j, k)] = stamp
            self.parts[j] += 1
            if self.parts[j] == 2 * self.horizon:
                self.done_at[j] = now
            self.cv.notify_all()

    def wait_done(self, j: int, timeout: float) -> bool:
        end = time.monotonic() + timeout
        with self.cv:
            while j not in self.done_at:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self.cv.wait(min(left, 0.1))
        return True



def load_spooled(spool: Path, j: int, horizon: int, mode: str) -> Forecast:
    """The forecast of picked frame ``j`` as spooled by :class:`_Recorder`."""
    rgb = np.stack([np.load(spool / f"{j}_{k}_color.npy") for k in range(1, horizon + 1)])
    dep = np.stack([np.load(spool / f"{j}_{k}_depth.npy") for k in range(1, horizon + 1)])
    return Forecast(rgb, dep, mode)


class _EvalPlayer(BagPlayer):
    """BagPlayer with hooks around colour/depth messages (seed changes, lockstep waits); time spent
    waiting in a hook is taken out of the pacing, and /clock stands still meanwhile."""

    def __init__(self, node: Any, path: Any, topics: list[str], color: str, depth: str, pace: float | None,
                 before: Any, after: Any):
        super().__init__(node, path, rate=pace or 1.0, clock=True, qos="reliable", topics=topics)
        self.pace, self.color, self.depth = pace, color, depth
        self.paced = pace is not None  # lockstep: the after() hook waits for each prediction instead
        self.before, self.after = before, after
        self.published_at: dict[tuple[str, int], float] = {}

    def _publish(self, topic: str, t_ns: int, data: bytes) -> float:
        from rclpy.serialization import deserialize_message
        from sensor_msgs.msg import Image

        from .ros_io import stamp_ns

        if topic not in (self.color, self.depth):
            return super()._publish(topic, t_ns, data)
        stamp = stamp_ns(deserialize_message(data, Image).header)
        self.before(topic, stamp)
        super()._publish(topic, t_ns, data)
        t0 = time.perf_counter()
        self.published_at[(topic, stamp)] = t0
        if not self.after(topic, stamp):
            self._stop = True
        return time.perf_counter() - t0


def _wait(pred: Any, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise EvalError(f"online replay: timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)


def _node_params(topics: BagTopics, plan: WindowPlan, scenario: str, checkpoint: str, protocol: EvalProtocol,
                 horizon: int, slop_s: float, options: OnlineOptions, device: str, backend: str) -> dict[str, Any]:
    params: dict[str, Any] = {
        "checkpoint": checkpoint, "backend": backend, "device": device, "torch_threads": options.torch_threads,
        "horizon": horizon, "steps": protocol.steps or 0, "seed": protocol.seed, "use_sim_time": True,
        "color_topic": topics.color, "depth_topic": topics.depth,
        "color_info_topic": topics.color_info or "/syncvp_eval/unused_color_info",
        "depth_info_topic": topics.depth_info or "/syncvp_eval/unused_depth_info",
        "input_qos": "RELIABLE", "input_qos_depth": 100, "output_qos": "RELIABLE", "output_qos_depth": 100,
        "sync_slop": slop_s, "context_stride": 0, "force_mode": FORCE_MODE[scenario], "depth_encoding": "32FC1",
        "output_height": 0, "output_width": 0, "predict_rate_hz": 0.0, "always_predict": False,
    }
    if plan.period_ns > 0:
        params["context_rate_hz"] = 1e9 / plan.period_ns  # the offline pick spacing, exactly
    params.update(options.node_params)
    return params


def _start_clock(h: Any, start_ns: int) -> None:
    """The node's sim clock must read the bag's time before it activates (its dropout timers start then)."""
    from rosgraph_msgs.msg import Clock

    clock_pub = h.driver.create_publisher(Clock, "/clock", 10)
    msg = Clock()
    msg.clock.sec, msg.clock.nanosec = divmod(int(start_ns) - 1, 1_000_000_000)

    def clock_set() -> bool:
        clock_pub.publish(msg)
        return h.node.get_clock().now().nanoseconds > 0

    _wait(clock_set, 20.0, "the node to receive /clock")


class _Pacing:
    """The player's hooks: set the node's seed before each window's context, and in lockstep wait after a
    context-completing frame until its prediction is in."""

    def __init__(self, node: Any, plan: WindowPlan, expect: Expectations, recorder: _Recorder, seed: int,
                 slop_s: float, options: OnlineOptions, bar: Any):
        c = plan.context_frames
        self.node, self.expect, self.recorder, self.seed, self.options, self.bar = (
            node, expect, recorder, seed, options, bar)
        self.window_newest = {w[c - 1]: i for i, w in enumerate(plan.windows)}
        self.picked_sorted = sorted(plan.picked_stamps[c - 1:])
        self.picked = set(self.picked_sorted)
        self.last_needed = plan.windows[-1][c - 1]
        self.slop_ns = slop_s * 1e9
        self.seeds_set: set[int] = set()
        self.timeouts = 0
        self.published: dict[int, set[str]] = defaultdict(set)

    def before(self, topic: str, stamp: int) -> None:
        from rclpy.parameter import Parameter

        i = self.window_newest.get(stamp)
        if i is not None and i not in self.seeds_set:
            self.seeds_set.add(i)
            self.node.set_parameters([Parameter("seed", value=self.seed + i)])

    def _picked_stamp(self, stamp: int) -> int | None:
        if stamp in self.picked:  # depth may be stamped a little off its colour partner (within the slop)
            return stamp
        i = bisect.bisect_left(self.picked_sorted, stamp - self.slop_ns)
        if i == len(self.picked_sorted) or abs(self.picked_sorted[i] - stamp) > self.slop_ns:
            return None
        return self.picked_sorted[i]

    def after(self, topic: str, stamp: int) -> bool:
        """False stops the player (the last window's context is out)."""
        stamp = self._picked_stamp(stamp)
        if stamp is None:
            return True
        # The pair for a picked frame is complete when both its colour and depth were published.
        self.published[stamp].add(topic)
        if len(self.published[stamp]) < 2:
            return True
        if self.options.rate is None:  # lockstep: wait for this prediction
            # After one miss (the node kept other frames than planned) don't pay the full timeout again.
            limit = self.options.timeout_s if not self.timeouts else min(self.options.timeout_s, 5.0)
            if not self.recorder.wait_done(self.expect.newest[stamp], limit):
                self.timeouts += 1
        if stamp in self.window_newest:
            self.bar.update(1)
        return stamp != self.last_needed


def replay_scenario(bag: str, topics: BagTopics, plan: WindowPlan, scenario: str, checkpoint: str,
                    protocol: EvalProtocol, horizon: int, slop_s: float, options: OnlineOptions, spool: Path,
                    device: str = "cpu", backend: str = "torch", progress: bool = True) -> dict:
    """Play the bag through a fresh node in ``scenario`` (the in-process :class:`~.testing.Harness`);
    returns the recording and the node's counters."""
    from tqdm import tqdm

    from .testing import Harness

    expect = Expectations(plan, horizon)
    keep = {expect.newest[w[plan.context_frames - 1]] for w in plan.windows}
    params = _node_params(topics, plan, scenario, checkpoint, protocol, horizon, slop_s, options, device, backend)
    player = None
    with Harness(params, record=(), autostart=False, domain_id=options.domain_id) as h:
        try:
            _start_clock(h, plan.picked_stamps[0])
            if not h.node.autostart():
                raise EvalError(f"the node did not start: {h.node.configure_error or 'activate failed (see log)'}")
            recorder = _Recorder(h.driver, h.node.get_fully_qualified_name(), horizon, expect, keep, spool)
            bar = tqdm(total=len(plan.windows), desc=f"online {scenario}", unit="win", disable=not progress)
            pacing = _Pacing(h.node, plan, expect, recorder, protocol.seed, slop_s, options, bar)
            player = _EvalPlayer(h.driver, bag, [t for t in (topics.color, topics.depth, topics.color_info,
                                                             topics.depth_info) if t],
                                 topics.color, topics.depth, options.rate, pacing.before, pacing.after)
            _wait(recorder.matched, 20.0, "the recorder to match the node's outputs")
            for t in (topics.color, topics.depth):
                _wait(lambda t=t: player._pubs[t].get_subscription_count() > 0, 20.0,
                      f"the node to subscribe to {t}")
            t0 = time.perf_counter()
            player.play()
            # Paced: the last predictions may still be running. Lockstep: already there.
            recorder.wait_done(expect.newest[pacing.last_needed], options.timeout_s)
            wall_s = time.perf_counter() - t0
            _wait(lambda: not h.node.counters()["busy"], options.timeout_s, "the node's worker to finish")
            bar.close()
            counters = h.node.counters()
            _, kv = h.node.diagnostics()  # recorded whole in the result, for people
            predictor = h.node.predictor
        finally:
            if player is not None:
                player.stop()
    with recorder.cv:
        done, parts, stamps = dict(recorder.done_at), dict(recorder.parts), dict(recorder.stamps)
        statuses, unmatched = list(recorder.statuses), recorder.unmatched
    summary = _summary(scenario, plan, expect, player, topics, done, parts, statuses, horizon, wall_s)
    summary.update(dropped_work=counters["dropped_work"], lockstep_timeouts=pacing.timeouts,
                   unmatched_outputs=unmatched, node_diagnostics=kv)
    return {"predictor": predictor, "done": done, "stamps": stamps, "summary": summary}


def _summary(scenario: str, plan: WindowPlan, expect: Expectations, player: _EvalPlayer, topics: BagTopics,
             done: dict[int, float], parts: dict[int, int], statuses: list[dict], horizon: int,
             wall_s: float) -> dict:
    """Delivery and latency of one scenario's replay."""
    c = plan.context_frames
    # End-to-end latency: last output received - publish of the later message of the context's last pair.
    latency_ms = []
    p = plan.picked_stamps
    for j, t_done in sorted(done.items()):
        t_in = [player.published_at.get((topic, p[j])) for topic in (topics.color, topics.depth)]
        t_in = [t for t in t_in if t is not None]
        if t_in:
            latency_ms.append((t_done - max(t_in)) * 1e3)
    # The replay stops after the last evaluated window's context: predictions up to it were possible.
    last_j = expect.newest[plan.windows[-1][c - 1]]
    expected = last_j - (c - 1) + 1
    span_s = (p[last_j] - p[c - 1]) / 1e9 if last_j >= c else math.nan
    inference = [s["latency_ms"] for s in statuses if "latency_ms" in s]
    return {
        "scenario": scenario,
        "expected_predictions": expected,
        "delivered_predictions": len(done),
        "incomplete_predictions": sum(1 for j, n in parts.items() if n < 2 * horizon),
        "delivered_fraction": len(done) / expected if expected else None,
        "delivered_rate_hz_bag_time": len(done) / span_s if span_s and span_s > 0 else None,
        "delivered_rate_hz_wall": len(done) / wall_s if wall_s > 0 else None,
        "opportunity_rate_hz_bag_time": expected / span_s if span_s and span_s > 0 else None,
        "replay_wall_s": wall_s,
        "latency_ms": latency_ms,
        "latency": _percentiles(latency_ms),
        "inference_ms": _percentiles(inference),
    }
