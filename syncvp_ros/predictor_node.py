"""The syncvp predictor node: colour + depth in, predicted future colour + depth out.

A thin adapter. The logic lives in ROS-free modules this file wires together:

* :mod:`syncvp_core.data.encodings` (via :mod:`.ros_io`): message <-> array, 16UC1 mm / 32FC1 m;
* :mod:`syncvp_core.data.sync`: colour/depth pairing by stamp;
* :mod:`.context`: the context window spaced at the model's frame interval, output stamps;
* :mod:`.modes`: dropout detection, usable frames and the guidance mode (full / rgb_only / depth_only / none);
* :mod:`syncvp_core.depth_hold`: depth while the depth sensor is out, from the newest context with both;
* :mod:`.worker`: the inference thread with a latest-only slot, latency and rate statistics;
* :mod:`.health`: counters, stall and input-rate watches, the diagnostics summary, rate-limited logging;
* :mod:`.params`: every parameter and its ROS descriptor, declared once;
* :mod:`.node_main`: the process (start-up errors, signals, exit codes).

Data path: one image callback for both modalities (:meth:`PredictorNode._on_image`) -> pairing ->
context window -> worker -> :meth:`~PredictorNode._predict` -> :meth:`~PredictorNode._publish`, which
publishes every horizon step through :meth:`~PredictorNode._publish_step`.

Lifecycle (``autostart`` = true does configure + activate in :func:`syncvp_ros.node_main.main`):

* ``configure``: load the model and backend, warm up. A missing/corrupt checkpoint logs why and returns
  FAILURE; the node stays up (unconfigured) and can be configured again after fixing the parameter.
* ``activate``: create publishers, subscriptions, the worker thread and the mode timer.
* ``deactivate``: stop the worker, destroy publishers and subscriptions.
* ``cleanup``: drop the model (frees GPU memory).

Run: ``python -m syncvp_ros.predictor_node --ros-args -p checkpoint:=... --params-file config/predict.yaml``
"""
from __future__ import annotations

import dataclasses
import json
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header, String
from std_srvs.srv import SetBool

from syncvp_core.data.encodings import EncodingError
from syncvp_core.data.frames import RGBDFrame
from syncvp_core.data.sync import StampSynchronizer, SyncEvent
from syncvp_core.depth_hold import DepthHold, HeldDepth
from syncvp_core.imageops import resize_depth, resize_rgb

from . import context as ctx
from . import health, params, ros_io
from .modes import DEPTH_ONLY, FULL, MODALITIES, NEEDS, NONE, RGB_ONLY, ModeTracker, depth_problem
from .planner_outputs import PlannerOutputs
from .worker import Worker

NODE_NAME = "syncvp"
# The guidance mode that conditions on one modality alone, and the Frame field that carries it.
_SOLO = {"color": RGB_ONLY, "depth": DEPTH_ONLY}
_FIELD = {"color": "rgb", "depth": "depth"}
_SIZE_FIX = ("Depth must be registered to colour (e.g. RealSense align_depth); allow_size_mismatch:=true "
             "resizes depth to the colour size")


class WarmUpInterrupted(BaseException):
    """A signal arrived during configure (warm-up): leave the transition without completing it.

    A BaseException on purpose: rclpy's lifecycle wrapper turns an Exception into a failed transition and
    then fails again (and logs it) completing that transition on a context that is shut down.
    """


@dataclass
class _Job:
    frames: list[RGBDFrame]
    stamps_ns: list[int]
    mode: str
    frame_id: str
    camera_info: CameraInfo | None
    steps: int
    draws: int  # 0 = the model's sampler.draws
    seed: int
    submitted: float = 0.0  # time.perf_counter() when the context became ready


@dataclass
class _Prediction:
    rgb: np.ndarray  # (K, H, W, 3) uint8 at the output size
    depth: np.ndarray  # (K, H, W) float32 metres
    started: float  # time.perf_counter() around the predict call
    finished: float
    spread: Any = None  # syncvp_core.spread.Spread when num_samples > 1 (at the predictor's output size)
    held: HeldDepth | None = None  # rgb_only: the depth came from the held synced context (depth_hold)


class PredictorNode(LifecycleNode):
    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any):
        super().__init__(node_name, **kwargs)
        self._lock = threading.Lock()  # guards lifecycle teardown against the worker and timers
        self._state = "unconfigured"
        self._p: dict[str, Any] = {}
        # Validation is registered first so that initial values (overrides, params files) are checked too.
        self.add_on_set_parameters_callback(self._validate_params)
        for spec in params.PARAMS:
            self._p[spec.name] = self.declare_parameter(spec.name, spec.default, params.descriptor(spec)).value
        self.add_post_set_parameters_callback(self._apply_params)

        self.predictor = None
        self.configure_error = ""
        self._enabled = True
        self._warmup_s = 0.0  # one warm-up inference: the expected latency before the first prediction
        self.monitor = health.Monitor(time.monotonic())  # counters, stall and rate watches (public)
        self._reset_run_state()

        # Always-on interfaces: diagnostics and status must explain an inactive or failed node too.
        # Transient local: a late subscriber gets the latest statuses (mode, last prediction) at once.
        latched = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._status_pub = self.create_publisher(String, "~/status", latched)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._enable_srv = self.create_service(SetBool, "~/enable", self._on_enable)
        self._diag_timer = self.create_timer(float(self._p["diagnostics_period"]), self._publish_diagnostics)

    def _reset_run_state(self) -> None:
        self.sync: StampSynchronizer | None = None
        self.buffer: ctx.ContextBuffer | None = None
        self.modes: ModeTracker | None = None
        self.hold: DepthHold | None = None  # the newest context with both sensors, for depth dropouts
        self.worker: Worker | None = None
        self._subs: list = []
        self._pubs: list[tuple[Any, Any, Any]] = []  # per horizon step: (color, depth, camera_info)
        self._planner: PlannerOutputs | None = None  # points, depth/std, color/std per horizon step
        self._mode_timer = None
        self._infos: dict[str, CameraInfo | None] = {"color": None, "depth": None}
        self._color_hw: tuple[int, int] | None = None  # size of the newest colour frame
        self._frame_id = ""

    # ============================================================================ parameters
    def _validate_params(self, changes: list[rclpy.parameter.Parameter]) -> SetParametersResult:
        for p in changes:
            reason = params.check(p.name, p.value)
            if reason is None and p.name in params.BY_NAME:
                spec = params.BY_NAME[p.name]
                if spec.scope == "configure" and self._state != "unconfigured" and p.value != self._p[p.name]:
                    reason = (f"{p.name} is applied at configure: the node is {self._state}; deactivate "
                              f"and clean it up first, then configure again")
            if reason is not None:
                self.get_logger().warning(f"rejected parameter change: {reason}")
                return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    def _apply_params(self, changes: list[rclpy.parameter.Parameter]) -> None:
        for p in changes:
            if p.name not in params.BY_NAME:
                continue
            value = float(p.value) if params.BY_NAME[p.name].type is float else p.value
            self._p[p.name] = value
            if p.name == "sync_slop" and self.sync is not None:
                self.sync.slop_ns = int(round(value * 1e9))
            elif p.name == "dropout_timeout" and self.modes is not None:
                self.modes.timeout_s = value
            elif p.name == "force_mode" and self.modes is not None:
                self._log_transition(self.modes.set_force(value, self._now_s()))
            elif p.name == "depth_hold" and self.hold is not None:
                self.hold.max_age_s = value
            elif p.name == "predict_rate_hz" and self.worker is not None:
                self.worker.min_period_s = 1.0 / value if value > 0 else 0.0

    def warn_unknown_parameters(self, names: list[str]) -> None:
        """Start-up overrides that match no parameter (typos) are otherwise ignored without a word."""
        for line in params.unknown_names(names):
            self.get_logger().warning(line)

    # ============================================================================ lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load model + backend. FAILURE (-> unconfigured, node alive) with the reason on any error."""
        checkpoint, backend = self._p["checkpoint"], self._p["backend"]
        device = self._resolve_device(self._p["device"])
        what = f"checkpoint={checkpoint or '<shipped default>'!r} backend={backend!r} device={device!r}"
        try:
            pred = self._load(checkpoint, backend, device)
            self._warm_up(pred)
        except Exception as e:  # any failure to load must leave the node alive and reconfigurable
            self.configure_error = f"cannot load the model ({what}): {type(e).__name__}: {e}"
            self.get_logger().error(
                f"configure failed: {self.configure_error}. Fix the file or set the 'checkpoint'/'backend' "
                "parameters, then trigger configure again.")
            return TransitionCallbackReturn.FAILURE
        self.predictor = pred
        self.configure_error = ""
        self._state = "inactive"
        self.get_logger().info(
            f"configured: model {pred.model_name} ({pred.context_frames} context -> horizon "
            f"{self._horizon()} frames at {pred.frame_rate_hz:g} Hz), backend {pred.backend_name}, {what}")
        return TransitionCallbackReturn.SUCCESS

    def _load(self, checkpoint: str, backend: str, device: str):
        from syncvp_core.model_source import ModelSource

        if self._p["torch_threads"] > 0:
            import torch

            torch.set_num_threads(int(self._p["torch_threads"]))
        source = ModelSource.parse(checkpoint)
        if source.random:
            self.get_logger().warning(
                f"checkpoint={checkpoint!r}: randomly initialised model; predictions are noise "
                "(tests and benchmarks only)")
        return source.open(device, backend)

    def _resolve_device(self, device: str) -> str:
        if device != "auto":
            return device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def _warm_up(self, pred) -> None:
        n = int(self._p["warmup"])
        if n <= 0:
            return
        h, w = pred.resolution
        t = pred.context_frames
        rgb = np.zeros((t, h, w, 3), np.uint8)
        depth = np.ones((t, h, w), np.float32)
        self.get_logger().info(f"warm-up: {n} inference(s) at {w}x{h}")
        t0 = time.perf_counter()
        for i in range(n):
            if not self.context.ok():  # SIGTERM/SIGINT shut the context down: stop after this run
                raise WarmUpInterrupted(f"signal during warm-up run {i + 1}/{n}")
            pred.predict(rgb, depth, horizon=self._horizon(pred), steps=self._p["steps"] or None, seed=0,
                         draws=self._p["draws"] or None)
        self._warmup_s = (time.perf_counter() - t0) / n
        self.get_logger().info(f"warm-up done in {self._warmup_s * n:.2f} s")

    def _horizon(self, pred=None) -> int:
        pred = pred or self.predictor
        return int(self._p["horizon"]) or int(pred.chunk_frames)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._activate()
        except Exception as e:
            self.get_logger().error(f"activate failed: {type(e).__name__}: {e}")
            self._teardown()
            return TransitionCallbackReturn.FAILURE
        self._state = "active"
        self._publish_status(event="activated")
        return super().on_activate(state)

    def _activate(self) -> None:
        p, pred = self._p, self.predictor
        rate = p["context_rate_hz"] or pred.frame_rate_hz
        self.sync = StampSynchronizer(slop_s=p["sync_slop"], max_queue=p["sync_queue"],
                                      on_event=self._on_sync_event, eager=True)
        self.buffer = ctx.ContextBuffer(pred.context_frames, 1.0 / rate, stride=p["context_stride"],
                                         backwards_tolerance_s=max(p["sync_slop"], 1e-3))
        self.modes = ModeTracker(p["dropout_timeout"], self._now_s(), force=p["force_mode"])
        self.hold = DepthHold(p["depth_hold"], step_frames=pred.chunk_frames)
        self.monitor.stall.progress(time.monotonic(), self._progress())
        in_qos = ros_io.qos_profile(p["input_qos"], p["input_qos_depth"])
        out_qos = ros_io.qos_profile(p["output_qos"], p["output_qos_depth"])
        for k in range(1, self._horizon() + 1):
            self._pubs.append(tuple(
                self.create_publisher(t, f"~/pred/h{k}/{name}", out_qos,
                                      event_callbacks=self._pub_events(f"~/pred/h{k}/{name}"))
                for t, name in ((Image, "color/image"), (Image, "depth/image"), (CameraInfo, "camera_info"))))
        self._planner = PlannerOutputs(self, self._horizon(), out_qos, self._p, self._problem, self._pub_events)
        for which in MODALITIES:
            self._subscribe(Image, p[f"{which}_topic"], lambda m, w=which: self._on_image(w, m), in_qos)
            self._subscribe(CameraInfo, p[f"{which}_info_topic"], lambda m, w=which: self._on_info(w, m), in_qos)
        self.worker = Worker(self._run_job, on_error=self._on_job_error)
        self.worker.min_period_s = 1.0 / p["predict_rate_hz"] if p["predict_rate_hz"] > 0 else 0.0
        self.worker.start()
        # Dropouts and stalls must be noticed while nothing arrives at all, so they are checked on a timer.
        self._last_tick = time.monotonic()
        self._mode_timer = self.create_timer(min(0.1, p["dropout_timeout"] / 4), self._on_timer)
        self.get_logger().info(
            f"active: colour {p['color_topic']}, depth {p['depth_topic']} ({p['input_qos']}); publishing "
            f"{self.get_fully_qualified_name()}/pred/h1..h{self._horizon()}; context {pred.context_frames} "
            f"frames every {1.0 / rate:.3f} s" + (f" (stride {p['context_stride']})" if p["context_stride"]
                                                   else ""))

    def _subscribe(self, msg_type: Any, topic: str, cb: Any, qos: QoSProfile) -> None:
        self._subs.append(self.create_subscription(msg_type, topic, cb, qos, event_callbacks=self._sub_events(topic)))

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        self._state = "inactive"
        self._publish_status(event="deactivated")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        self._free_model()
        self._state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        self._free_model()
        self._state = "finalized"
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        self._free_model()
        self._state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def _teardown(self) -> None:
        """Stop the worker first (it may be publishing), then destroy what activate created."""
        worker, self.worker = self.worker, None
        if worker is not None and not worker.stop(timeout=60.0):
            self.get_logger().warning("the inference thread did not stop within 60 s")
        with self._lock:
            if self._mode_timer is not None:
                self.destroy_timer(self._mode_timer)
            for sub in self._subs:
                self.destroy_subscription(sub)
            for triple in self._pubs:
                for pub in triple:
                    self.destroy_publisher(pub)
            if self._planner is not None:
                self._planner.destroy()
            self._reset_run_state()

    def _free_model(self) -> None:
        dev = getattr(self.predictor, "device", "cpu")
        self.predictor = None
        if str(dev).startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    def autostart(self) -> bool:
        """configure + activate (what a lifecycle manager would do); True when active."""
        if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            return False
        return self.trigger_activate() == TransitionCallbackReturn.SUCCESS

    def stop(self) -> None:
        """Stop threads before the node is destroyed (also after the context was shut down)."""
        self._teardown()

    # ============================================================================ QoS events
    def _sub_events(self, topic: str) -> SubscriptionEventCallbacks:
        def incompatible(info) -> None:
            self.monitor.qos_incompatible += 1
            self.get_logger().warning(
                f"input {topic}: a publisher offers an incompatible QoS (policy id {info.last_policy_kind}, "
                f"{info.total_count} so far); nothing is received from it. input_qos={self._p['input_qos']}"
                + ("; cameras usually publish best effort: try input_qos:=SENSOR_DATA"
                   if self._p["input_qos"] in ("DEFAULT", "RELIABLE") else ""))
        return SubscriptionEventCallbacks(incompatible_qos=incompatible)

    def _pub_events(self, topic: str) -> PublisherEventCallbacks:
        def incompatible(info) -> None:
            self.monitor.qos_incompatible += 1
            self.get_logger().warning(
                f"output {topic}: a subscriber requests an incompatible QoS (policy id "
                f"{info.last_policy_kind}); output_qos={self._p['output_qos']}")
        return PublisherEventCallbacks(incompatible_qos=incompatible)

    # ============================================================================ input callbacks
    def _now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _problem(self, kind: str, message: str) -> None:
        line = self.monitor.problems.report(kind, message, time.monotonic())
        if line is not None:
            self.get_logger().warning(line)

    def _on_info(self, which: str, msg: CameraInfo) -> None:
        self._infos[which] = msg

    def _on_image(self, which: str, msg: Image) -> None:
        """Colour and depth alike: decode, judge usability (dropout modes), pair, feed the context."""
        if self.modes is None:
            return
        now = self._now_s()
        stamp = ros_io.stamp_ns(msg.header)
        self.monitor.frame_received(which, time.monotonic())
        image = self._decode(which, msg, now)
        self._update_mode()
        if image is None:
            return
        self.monitor.frame_usable(which, stamp)
        if which == "color" or not self._frame_id:
            self._frame_id = msg.header.frame_id or self._frame_id
        if not self.modes.force_excludes(which):
            add = self.sync.add_color if which == "color" else self.sync.add_depth
            for pair in add(stamp, image):
                self._on_pair(pair)
        if self.modes.mode == _SOLO[which]:
            self._push(RGBDFrame(stamp, **{_FIELD[which]: image}))

    def _decode(self, which: str, msg: Image, now: float) -> np.ndarray | None:
        """The frame as an array, or None when unusable (counted, and recorded as missing for the modes)."""
        topic = self._p[f"{which}_topic"]
        try:
            image = ros_io.color_from_msg(msg) if which == "color" else ros_io.depth_from_msg(msg)
        except EncodingError as e:
            return self._unusable(which, now, f"{which}_encoding", str(e), f"{which} frame on {topic} ignored")
        if which == "color":
            self._color_hw = image.shape[:2]
        else:
            # Only colour that is there now defines the size depth must have (depth_only keeps working).
            check_size = not self._p["allow_size_mismatch"] and self.modes.present("color", now)
            bad = depth_problem(image, self._p["depth_invalid_threshold"], self._color_hw if check_size else None)
            if bad is not None:
                fix = _SIZE_FIX if bad[0] == "size_mismatch" else ""
                return self._unusable(which, now, bad[0], bad[1], f"depth frame on {topic} unusable", fix)
        self.modes.record(which, now, usable=True)
        return image

    def _unusable(self, which: str, now: float, kind: str, why: str, what: str, fix: str = "") -> None:
        self.modes.record(which, now, usable=False, problem=why)
        self._problem(kind, f"{what}: {why}" + (f". {fix}" if fix else ""))
        return None

    def _on_pair(self, pair) -> None:
        rgb, depth = pair.color, pair.depth
        if rgb.shape[:2] != depth.shape[:2]:
            if not self._p["allow_size_mismatch"]:
                # Only when the colour size changed between a depth frame and its partner.
                self._problem("size_mismatch", f"colour {rgb.shape[1]}x{rgb.shape[0]} and depth "
                                               f"{depth.shape[1]}x{depth.shape[0]} differ: pair dropped")
                return
            depth = resize_depth(depth, rgb.shape[:2])
        self._push(RGBDFrame(pair.color_stamp_ns, rgb=rgb, depth=depth))

    def _on_sync_event(self, ev: SyncEvent) -> None:
        if ev.kind == "gap":
            self.get_logger().debug(ev.message)

    def _push(self, frame: RGBDFrame) -> None:
        before = self.buffer.newest
        result = self.buffer.push(frame)
        if result == ctx.RESET_BACKWARDS:
            back = (before.stamp_ns - frame.stamp_ns) / 1e9 if before else 0.0
            self._problem("backwards", f"input stamps jumped back by {back:.3f} s (looping bag or restarted "
                                       "driver): context reset")
        elif result == ctx.RESET_SHAPE:
            self._problem("size_change", f"image size changed to {frame.size[1]}x{frame.size[0]}: "
                                         "context reset")
        elif result == ctx.RESET_GAP:
            self.get_logger().info("input gap longer than 3 context intervals: context restarted",
                                   throttle_duration_sec=5.0)
        if result in ctx.CHANGED:
            self._maybe_submit()

    # ============================================================================ modes and stalls
    def _on_timer(self) -> None:
        mono = time.monotonic()
        late, self._last_tick = mono - self._last_tick, mono
        if late > 3 * self._mode_timer.timer_period_ns * 1e-9:
            # The executor was starved (CPU load): it runs timers before the frames queued meanwhile, so
            # judging ages now would report a dropout of sensors that did send. Next tick, after them.
            return
        self._update_mode()
        self._check_stall()

    def _update_mode(self) -> None:
        if self.modes is not None:
            self._log_transition(self.modes.update(self._now_s()))

    def _awaiting_first_input(self) -> str:
        """What start-up still waits for, or "" once any input arrived (then silence is a dropout)."""
        if self.modes is None or any(self.modes.ever_seen(m) for m in MODALITIES):
            return ""
        return f"no frame yet on {self._p['color_topic']} or {self._p['depth_topic']}"

    def _log_transition(self, tr) -> None:
        if tr is None:
            return
        if tr.new == NONE:
            if self.worker is not None:
                self.worker.discard_pending()
            waiting = self._awaiting_first_input()
            if waiting:  # start-up before the camera publishes is normal, not an error (issue 14.6)
                self.get_logger().info(f"waiting for the camera: {waiting}")
            else:
                self.get_logger().error(f"{tr}: no predictions until a sensor returns")
        elif tr.new in (RGB_ONLY, DEPTH_ONLY):
            self.get_logger().warning(f"{tr}: predicting both modalities from the remaining one")
        else:
            self.get_logger().info(str(tr))
        self._publish_status(event="mode")

    def _progress(self) -> health.Progress:
        if self.sync is None:
            return health.Progress(problems=dict(self.monitor.problems.totals))
        s = self.sync.stats
        return health.Progress(pairs=s.pairs, misses={"color": s.unmatched_color, "depth": s.unmatched_depth},
                               resets=sum(self.buffer.resets.values()),
                               problems=dict(self.monitor.problems.totals))

    def _predictions_expected(self) -> bool:
        return (self._state == "active" and self._enabled and self.modes is not None
                and self.modes.mode != NONE and (self._p["always_predict"] or self.has_subscribers()))

    def _check_stall(self) -> None:
        """Health from what is published: WARN, then ERROR, when inputs arrive and nothing comes out."""
        if self.worker is None:
            return
        mono = time.monotonic()
        latency = self.monitor.latency.p95 or self._warmup_s
        if not self._predictions_expected() or (not latency and self.worker.busy):
            # Nothing expected, or the first inference is running and its duration is not known yet.
            self.monitor.stall.progress(mono, self._progress(), published=False)
            return
        interval = max(self.buffer.interval_ns * 1e-9, self.buffer.input_period_ns * 1e-9, latency,
                       self.worker.min_period_s)
        fill = self.buffer.length * self.buffer.interval_ns * 1e-9 + self._p["dropout_timeout"]
        _, line = self.monitor.stall.check(mono, interval, fill, self._progress(), self.worker.busy_for(mono))
        if line is None:
            return
        # Two call sites: rclpy refuses a severity change between calls from one line.
        if self.monitor.stall.verdict.level == health.ERROR:
            self.get_logger().error(line)
        else:
            self.get_logger().warning(line)

    # ============================================================================ inference
    def has_subscribers(self) -> bool:
        """Whether anyone listens to a prediction topic (the node is lazy otherwise)."""
        return any(pub.get_subscription_count() > 0 for triple in self._pubs for pub in triple) or (
            self._planner is not None and self._planner.has_subscribers())

    _has_subscribers = has_subscribers  # the name the test harness and online evaluation use

    def _maybe_submit(self) -> None:
        mode = self.modes.mode
        if not self._enabled or mode == NONE or self.worker is None:
            return
        window = self.buffer.window(*NEEDS[mode])
        if window is None:
            return
        if mode == FULL and self.hold.enabled:
            self.hold.remember(np.stack([f.rgb for f in window.frames]), np.stack([f.depth for f in window.frames]),
                               window.newest_ns, window.dt_ns)
        if not self._p["always_predict"] and not self.has_subscribers():
            self.monitor.lazy_skips += 1
            return
        seed = self._p["seed"] if self._p["seed"] >= 0 else random.randrange(2**31)
        info = self._infos["color"] if mode != DEPTH_ONLY else self._infos["depth"]
        info = info or self._infos["color"] or self._infos["depth"]
        self.worker.submit(_Job(window.frames, window.output_stamps(self._horizon()), mode, self._frame_id,
                                info, int(self._p["steps"]), int(self._p["draws"]), seed, time.perf_counter()))

    def _run_job(self, job: _Job) -> None:
        self._publish(job, self._predict(job))

    def _predict(self, job: _Job) -> _Prediction:
        """Inference on the job's context, resized to the output size."""
        need_rgb, need_depth = NEEDS[job.mode]
        rgb = np.stack([f.rgb for f in job.frames]) if need_rgb else None
        depth = np.stack([f.depth for f in job.frames]) if need_depth else None
        t0 = time.perf_counter()
        out = self.predictor.predict(rgb, depth, horizon=len(job.stamps_ns), steps=job.steps or None,
                                     seed=job.seed, num_samples=int(self._p["num_samples"]),
                                     draws=job.draws or None)
        pred_rgb, pred_depth, spread = out.rgb, out.depth, out.spread
        held = self._held_depth(job) if job.mode == RGB_ONLY else None
        if held is not None:
            pred_depth = held.depth
            if spread is not None:
                spread = dataclasses.replace(spread, depth=held.samples, depth_std=held.std)
        t1 = time.perf_counter()
        oh, ow = int(self._p["output_height"]), int(self._p["output_width"])
        if oh or ow:
            size = (oh or pred_rgb.shape[1], ow or pred_rgb.shape[2])
            pred_rgb, pred_depth = resize_rgb(pred_rgb, size), resize_depth(pred_depth, size)
        return _Prediction(pred_rgb, pred_depth, t0, t1, spread, held)

    def _held_depth(self, job: _Job) -> HeldDepth | None:
        """Depth forecast from the newest context with both sensors, while it is recent enough (depth_hold)."""
        newest = job.frames[-1]
        if self.modes.force_excludes("depth") or not self.hold.usable(newest.stamp_ns, newest.size):
            return None  # force_mode rgb_only asks for colour-only conditioning, depth included

        def forecast(rgb, depth, horizon):
            out = self.predictor.predict(rgb, depth, horizon=horizon, steps=job.steps or None, seed=job.seed,
                                         num_samples=int(self._p["num_samples"]), draws=job.draws or None)
            return out.rgb, out.depth, *((out.spread.depth, out.spread.depth_std) if out.spread else (None, None))

        return self.hold.depth_for(job.stamps_ns, newest.stamp_ns, forecast)

    def _publish(self, job: _Job, pred: _Prediction) -> None:
        """Every horizon step's outputs, then the statistics and the ~/status line of this prediction."""
        with self._lock:
            if not self._pubs or not self.context.ok():  # deactivated or shutting down while predicting
                return
            withhold = self._withholds_depth(job.mode, pred)
            for k, stamp in enumerate(job.stamps_ns):
                header = Header(frame_id=job.frame_id)
                ros_io.set_stamp(header, stamp)
                self._publish_step(k, header, job, pred, withhold)
            self._planner.publish(job.stamps_ns, job.frames[-1].stamp_ns, job.frame_id, pred.rgb, pred.depth,
                                  pred.spread, job.camera_info, with_depth=not withhold)
        mono = time.monotonic()
        self.monitor.published(mono, pred.finished - pred.started, self._now_s() - job.frames[-1].stamp_ns * 1e-9)
        resumed = self.monitor.stall.progress(mono, self._progress())
        if resumed is not None:
            self.get_logger().info(resumed)
        t2 = time.perf_counter()
        # Where the time went: waiting for the worker, inference, encoding + publishing the outputs.
        self._publish_status(event="prediction", stamp_ns=job.frames[-1].stamp_ns, used_mode=job.mode,
                             latency_ms=round((pred.finished - pred.started) * 1e3, 2),
                             queue_ms=round((pred.started - job.submitted) * 1e3, 2),
                             publish_ms=round((t2 - pred.finished) * 1e3, 2),
                             **({"depth_withheld": True} if withhold else {}), **self._depth_source(job, pred))

    def _withholds_depth(self, mode: str, pred: _Prediction) -> bool:
        """Depth predicted from colour alone is not published with ``inferred_depth: withhold``."""
        return mode == RGB_ONLY and pred.held is None and self._p["inferred_depth"] == "withhold"

    @staticmethod
    def _depth_source(job: _Job, pred: _Prediction) -> dict[str, Any]:
        """Where an rgb_only prediction's depth came from, for the ~/status line."""
        if job.mode != RGB_ONLY:
            return {}
        if pred.held is None:
            return {"depth_from": "colour"}
        return {"depth_from": "held", "depth_held_s": round(pred.held.age_s, 3)}

    def _publish_step(self, k: int, header: Header, job: _Job, pred: _Prediction, withhold: bool) -> None:
        """Horizon step ``k`` (0-based, topics h{k+1}): colour, depth (unless ``withhold``), camera_info.
        Outputs without a subscriber are not encoded. Further per-step outputs belong here."""
        pub_c, pub_d, pub_i = self._pubs[k]
        always = self._p["always_predict"]
        if pub_c.get_subscription_count() or always:
            pub_c.publish(ros_io.color_msg(pred.rgb[k], header))
        if not withhold and (pub_d.get_subscription_count() or always):
            pub_d.publish(ros_io.depth_msg(pred.depth[k], header, self._p["depth_encoding"]))
        if job.camera_info is not None and (pub_i.get_subscription_count() or always):
            pub_i.publish(ros_io.scaled_camera_info(job.camera_info, pred.rgb.shape[1:3], header))

    def _on_job_error(self, e: BaseException) -> None:
        if not self.context.ok():
            return  # shutting down (SIGINT) while a prediction was being published: nothing is wrong
        self._problem("predict_error", f"prediction failed: {type(e).__name__}: {e}")

    # ============================================================================ enable, status, diagnostics
    def _on_enable(self, req: SetBool.Request, resp: SetBool.Response) -> SetBool.Response:
        self._enabled = bool(req.data)
        resp.success = True
        resp.message = "predictions enabled" if self._enabled else "predictions disabled"
        self.get_logger().info(resp.message + " (~/enable)")
        self._publish_status(event="enable")
        return resp

    def _publish_status(self, event: str = "heartbeat", **extra: Any) -> None:
        status = {"event": event, "state": self._state, "enabled": self._enabled,
                  "mode": self.modes.mode if self.modes is not None else NONE,
                  "predictions": self.monitor.predictions}
        if self.modes is not None:
            status["conditioned_on"] = [m for m, need in zip(MODALITIES, NEEDS[status["mode"]]) if need]
        status.update(extra)
        if "used_mode" in status:
            status["conditioned_on"] = [m for m, need in zip(MODALITIES, NEEDS[status["used_mode"]]) if need]
        try:
            self._status_pub.publish(String(data=json.dumps(status)))
        except Exception:  # context already shut down (SIGINT while the worker finishes): nothing to say
            pass

    def counters(self) -> dict[str, int | bool]:
        """Numbers for programs (online evaluation, harnesses); :meth:`diagnostics` is text for people."""
        w = self.worker
        return {"predictions": self.monitor.predictions, "dropped_work": w.dropped if w else 0,
                "busy": bool(w and w.busy), "skipped_no_subscribers": self.monitor.lazy_skips}

    def diagnostics(self) -> tuple[health.Health, dict[str, str]]:
        """The current health and key/values (also used by tests)."""
        mode = self.modes.mode if self.modes is not None else NONE
        waiting = self.buffer is not None and len(self.buffer) < self.buffer.length
        stall = self.monitor.stall.verdict if self._predictions_expected() else None
        h = health.assess(self._state, mode, self._enabled, self.configure_error,
                          self.monitor.problems.take_recent(), waiting, stall, self._awaiting_first_input(),
                          self._p["inferred_depth"], self._held_age_s(mode))
        pred = self.predictor
        kv = {"state": self._state, "mode": mode, "enabled": str(self._enabled),
              "backend": getattr(pred, "backend_name", "n/a"), "model": getattr(pred, "model_name", "n/a"),
              "checkpoint": self._p["checkpoint"] or "<shipped default>"}
        kv.update(self.monitor.key_values(time.monotonic()))
        kv.update(health.Monitor.pipeline_values(self.sync, self.buffer, self.modes, self.worker))
        return h, kv

    def _held_age_s(self, mode: str) -> float | None:
        """In rgb_only, how old the held context is while the next prediction's depth would come from it."""
        newest = self.buffer.newest if self.buffer is not None else None
        if (mode != RGB_ONLY or newest is None or self.modes.force_excludes("depth")
                or not self.hold.usable(newest.stamp_ns, newest.size)):
            return None
        return self.hold.age_s(newest.stamp_ns)

    def _publish_diagnostics(self) -> None:
        for warn, line in self.monitor.rate_lines(time.monotonic(), {m: self._p[f"{m}_topic"] for m in MODALITIES}):
            if warn:
                self.get_logger().warning(line)
            else:
                self.get_logger().info(line)
        h, kv = self.diagnostics()
        name = f"{self.get_fully_qualified_name()}: predictor"
        hw = getattr(self.predictor, "model_name", "") or "syncvp"
        self._diag_pub.publish(ros_io.diagnostic_array(name, hw, h.level, h.message, kv, self.get_clock().now()))
        self._publish_status()


if __name__ == "__main__":
    from syncvp_ros.node_main import cli

    cli()
