"""The in-process node harness (node tests, the overhead benchmark and ``eval-bag --online``) and synthetic
messages.

:class:`Harness` runs the node under test and a driver node in one private ``rclpy`` Context with
loopback discovery and its own domain id, spun by a SingleThreadedExecutor in a background thread. Tests
use the driver to publish synthetic colour/depth/camera_info frames and record what the node publishes;
online evaluation plays a bag from it instead. It is the only place that sets this up.
"""
from __future__ import annotations

import json
import os
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np


def ros_env(domain_id: int | None = None) -> int:
    """Loopback-only discovery and a domain id for this run (set before rclpy.init). Returns the id."""
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.pop("ROS_LOCALHOST_ONLY", None)  # deprecated spelling; conflicts with the one above
    if domain_id is None:
        domain_id = random.SystemRandom().randint(1, 100)
    os.environ["ROS_DOMAIN_ID"] = str(domain_id)
    return domain_id


def synthetic_rgb(h: int, w: int, t: int) -> np.ndarray:
    """A moving gradient, so consecutive frames differ."""
    y, x = np.mgrid[0:h, 0:w]
    r = (x * 255 // max(w - 1, 1) + 7 * t) % 256
    g = (y * 255 // max(h - 1, 1)) % 256
    b = np.full_like(r, (40 * t) % 256)
    return np.stack([r, g, b], axis=-1).astype(np.uint8)


def synthetic_depth(h: int, w: int, t: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return (1.0 + 0.5 * x / max(w - 1, 1) + 0.01 * t + 0.2 * y / max(h - 1, 1)).astype(np.float32)


def image_msg(fields: tuple[str, int, int, int, bytes], stamp_ns: int, frame_id: str):
    from sensor_msgs.msg import Image

    from .ros_io import set_stamp

    msg = Image()
    msg.header.frame_id = frame_id
    set_stamp(msg.header, stamp_ns)
    msg.encoding, msg.height, msg.width, msg.step, msg.data = fields
    return msg


def color_msg(rgb: np.ndarray, stamp_ns: int, frame_id: str = "camera_color_optical_frame",
              encoding: str = "rgb8"):
    from syncvp_core.data.encodings import encode_color

    return image_msg(encode_color(rgb, encoding), stamp_ns, frame_id)


def depth_msg(depth_m: np.ndarray, stamp_ns: int, frame_id: str = "camera_color_optical_frame",
              encoding: str = "16UC1"):
    from syncvp_core.data.encodings import encode_depth

    return image_msg(encode_depth(depth_m, encoding), stamp_ns, frame_id)


def camera_info_msg(h: int, w: int, stamp_ns: int, frame_id: str = "camera_color_optical_frame"):
    from sensor_msgs.msg import CameraInfo

    from .ros_io import set_stamp

    f = 0.8 * w
    msg = CameraInfo(height=h, width=w, distortion_model="plumb_bob")
    msg.header.frame_id = frame_id
    set_stamp(msg.header, stamp_ns)
    msg.k = [f, 0.0, (w - 1) / 2, 0.0, f, (h - 1) / 2, 0.0, 0.0, 1.0]
    msg.p = [f, 0.0, (w - 1) / 2, 0.0, 0.0, f, (h - 1) / 2, 0.0, 0.0, 0.0, 1.0, 0.0]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.d = [0.0] * 5
    return msg


class Harness:
    """Node under test + driver node in a private context. Use as a context manager."""

    def __init__(self, overrides: dict[str, Any], horizon_topics: int | None = None,
                 record: tuple[str, ...] = ("color", "depth", "camera_info"), autostart: bool = True,
                 domain_id: int | None = None, node_name: str = "syncvp"):
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.parameter import Parameter

        from .predictor_node import PredictorNode

        self.domain_id = ros_env(domain_id)
        self.context = Context()
        rclpy.init(context=self.context, domain_id=self.domain_id)
        self.node = PredictorNode(node_name, context=self.context,
                                  parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
        self.driver = rclpy.create_node("syncvp_test_driver", context=self.context)
        self.received: dict[str, list] = defaultdict(list)
        self.received_at: dict[str, list[float]] = defaultdict(list)
        self._cv = threading.Condition()
        self._record = record
        self._horizon_topics = horizon_topics
        self.active = self.node.autostart() if autostart else False
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.driver)
        self._pubs: dict[str, Any] = {}
        self._subs: list = []
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()
        if self.active:
            self.subscribe_outputs()

    # ------------------------------------------------------------------ plumbing
    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException

        try:
            self.executor.spin()
        except (ExternalShutdownException, Exception):
            pass

    def __enter__(self) -> Harness:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        import rclpy

        self.stop_stream()
        self.node.stop()
        self.executor.shutdown(timeout_sec=2.0)
        self._thread.join(timeout=5.0)
        self.node.destroy_node()
        self.driver.destroy_node()
        rclpy.try_shutdown(context=self.context)

    def _store(self, key: str, msg: Any) -> None:
        with self._cv:
            self.received[key].append(msg)
            self.received_at[key].append(time.perf_counter())
            self._cv.notify_all()

    def subscribe(self, msg_type: Any, topic: str, key: str | None = None, qos: Any = 10) -> None:
        key = key or topic
        self._subs.append(self.driver.create_subscription(msg_type, topic, lambda m: self._store(key, m), qos))

    def subscribe_outputs(self) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image
        from std_msgs.msg import String

        base = self.node.get_fully_qualified_name()
        k_max = self._horizon_topics or len(self.node._pubs)
        types = {"color": (Image, "color/image"), "depth": (Image, "depth/image"),
                 "camera_info": (CameraInfo, "camera_info")}
        for k in range(1, k_max + 1):
            for what in self._record:
                t, suffix = types[what]
                self.subscribe(t, f"{base}/pred/h{k}/{suffix}", f"h{k}/{what}")
        latched = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.subscribe(String, f"{base}/status", "status", latched)
        self.subscribe(DiagnosticArray, "/diagnostics", "diagnostics")

    def publisher(self, msg_type: Any, topic: str, qos: Any = None) -> Any:
        from rclpy.qos import qos_profile_sensor_data

        key = (topic, id(qos))
        if key not in self._pubs:
            self._pubs[key] = self.driver.create_publisher(msg_type, topic, qos or qos_profile_sensor_data)
        return self._pubs[key]

    def wait_for_subscribers(self, timeout: float = 5.0) -> bool:
        """Wait until discovery matched the node's outputs with our subscriptions."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.node._has_subscribers() or not self.node._pubs:
                return True
            time.sleep(0.02)
        return False

    # ------------------------------------------------------------------ driving
    def publish_frame(self, t: int, stamp_ns: int, h: int = 48, w: int = 64, color: bool = True,
                      depth: bool = True, color_override: Any = None, depth_override: Any = None,
                      info: bool = True) -> None:
        """Publish frame number ``t`` (colour, depth, camera_info) with the given stamp."""
        from sensor_msgs.msg import CameraInfo, Image

        p = self.node._p
        if info:
            self.publisher(CameraInfo, p["color_info_topic"]).publish(camera_info_msg(h, w, stamp_ns))
        if color:
            msg = color_override or color_msg(synthetic_rgb(h, w, t), stamp_ns)
            self.publisher(Image, p["color_topic"]).publish(msg)
        if depth:
            msg = depth_override or depth_msg(synthetic_depth(h, w, t), stamp_ns)
            self.publisher(Image, p["depth_topic"]).publish(msg)

    def stream(self, n: int, start_t: int = 0, t0_ns: int = 1_000_000_000, period_s: float = 0.1,
               sleep: bool = True, **kw: Any) -> int:
        """Publish ``n`` frames ``period_s`` apart in stamp time (and in wall time when ``sleep``)."""
        for i in range(n):
            t = start_t + i
            self.publish_frame(t, t0_ns + int(round(t * period_s * 1e9)), **kw)
            if sleep:
                time.sleep(period_s)
        return start_t + n

    def start_stream(self, start_t: int = 0, t0_ns: int = 1_000_000_000, period_s: float = 0.1,
                     **kw: Any) -> None:
        """Publish frames in a background thread until :meth:`stop_stream`; ``self.streaming`` says which
        modalities are sent (change it to simulate a sensor dropping out and coming back)."""
        self.streaming = {"color": True, "depth": True}
        self.inject: list[Callable[[int, int], dict]] = []  # per-frame overrides: f(t, stamp) -> kwargs
        self._stream_stop = threading.Event()
        self.next_t = start_t

        def run() -> None:
            while not self._stream_stop.is_set():
                t = self.next_t
                stamp = t0_ns + int(round(t * period_s * 1e9))
                extra = self.inject.pop(0)(t, stamp) if self.inject else {}
                self.publish_frame(t, stamp, **{"color": self.streaming["color"],
                                                "depth": self.streaming["depth"], **kw, **extra})
                self.next_t = t + 1
                self.frames_sent = getattr(self, "frames_sent", 0) + 1
                self._stream_stop.wait(period_s)

        self._stream_thread = threading.Thread(target=run, daemon=True)
        self._stream_thread.start()

    def stop_stream(self) -> int:
        if getattr(self, "_stream_thread", None) is not None:
            self._stream_stop.set()
            self._stream_thread.join(timeout=5)
            self._stream_thread = None
        return getattr(self, "next_t", 0)

    def wait_until(self, pred: Callable[[], bool], timeout: float = 10.0) -> bool:
        end = time.monotonic() + timeout
        with self._cv:
            while not pred():
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(min(left, 0.05))
        return True

    def count(self, key: str) -> int:
        with self._cv:
            return len(self.received[key])

    def clear(self) -> None:
        with self._cv:
            self.received.clear()
            self.received_at.clear()

    def statuses(self) -> list[dict]:
        with self._cv:
            return [json.loads(m.data) for m in self.received["status"]]
