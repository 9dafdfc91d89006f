"""Planner outputs (syncvp_ros.planner_outputs): PointCloud2 and spread topics over real rclpy.

The clouds are read back with our own decoder and with ``sensor_msgs_py.point_cloud2`` (ROS 2's reference
reader; not on PyPI: the tests that need it are skipped by name where it is missing, and ``make test-launch``
runs them in the ROS 2 tool venv built from source with ../shared/tools/ros2-cli, where a skip fails the run).
"""
import os
import threading
import time
from collections import defaultdict

import numpy as np
import pytest

pytest.importorskip("rclpy")
import rclpy  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from sensor_msgs.msg import Image, PointCloud2  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from syncvp_core.pointcloud import depth_to_cloud, read_cloud  # noqa: E402
from syncvp_core.spread import Spread  # noqa: E402
from syncvp_ros import planner_outputs as po  # noqa: E402
from syncvp_ros.ros_io import qos_profile  # noqa: E402
from syncvp_ros.testing import camera_info_msg, ros_env  # noqa: E402

pytestmark = pytest.mark.ros
H, W, K = 24, 32, 2
S = 1_000_000_000
PARAMS = {"points": True, "points_organized": True, "points_decimation": 1, "points_stamp": "future",
          "color_std_encoding": "32FC1", "always_predict": False}


def _prediction(seed=0):
    r = np.random.default_rng(seed)
    rgb = r.integers(0, 256, (K, H, W, 3), dtype=np.uint8)
    depth = np.full((K, H, W), 2.0, np.float32)  # a plane at 2 m
    depth[1] = 3.0
    depth[:, 0, 0] = np.nan
    std_d = r.uniform(0, 0.5, (K, H, W)).astype(np.float32)
    std_d[0, 1, 1] = 0.0  # a zero spread is a value, not an invalid pixel
    std_c = r.uniform(0, 100, (K, H, W)).astype(np.float32)
    spread = Spread(np.stack([rgb, rgb]), np.stack([depth, depth]), std_c, std_d)
    return rgb, depth, spread


class Rig:
    """A node owning PlannerOutputs and a listener node, in a private context spun in a thread."""

    def __init__(self, params=None, subscribe=("points", "depth/std", "color/std")):
        self.domain = ros_env()
        self.ctx = Context()
        rclpy.init(context=self.ctx, domain_id=self.domain)
        self.node = rclpy.create_node("planner_test", context=self.ctx)
        self.listener = rclpy.create_node("planner_listener", context=self.ctx)
        self.problems = []
        self.params = {**PARAMS, **(params or {})}
        qos = qos_profile("RELIABLE", 2)
        self.out = po.PlannerOutputs(self.node, K, qos, self.params, lambda k, m: self.problems.append((k, m)))
        self.received = defaultdict(list)
        self._lock = threading.Lock()
        types = {"points": PointCloud2, "depth/std": Image, "color/std": Image}
        for k in range(1, K + 1):
            for name in subscribe:
                topic = f"/planner_test/pred/h{k}/{name}"
                self.listener.create_subscription(types[name], topic, self._rec(f"h{k}/{name}"), qos)
        self.ex = SingleThreadedExecutor(context=self.ctx)
        self.ex.add_node(self.node)
        self.ex.add_node(self.listener)
        self.thread = threading.Thread(target=self.ex.spin, daemon=True)
        self.thread.start()

    def _rec(self, key):
        def cb(msg):
            with self._lock:
                self.received[key].append(msg)
        return cb

    def wait(self, pred, timeout=10.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if pred():
                return True
            time.sleep(0.02)
        return False

    def close(self):
        self.out.destroy()
        self.ex.shutdown()
        self.node.destroy_node()
        self.listener.destroy_node()
        rclpy.shutdown(context=self.ctx)
        self.thread.join(timeout=5)


@pytest.fixture
def rig():
    made = []

    def make(**kw):
        r = Rig(**kw)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def _publish(r, spread=True, info=True):
    rgb, depth, sp = _prediction()
    stamps = [10 * S + k * S // 10 for k in range(1, K + 1)]
    r.out.publish(stamps, 10 * S, "camera_color_optical_frame", rgb, depth, sp if spread else None,
                  camera_info_msg(H, W, 10 * S) if info else None)
    return rgb, depth, sp, stamps


def test_clouds_and_spread_arrive_with_stamps_frames_and_layout(rig):
    r = rig()
    assert r.wait(lambda: r.out.has_subscribers() and all(
        p.get_subscription_count() for t in r.out._pubs for p in t))
    rgb, depth, sp, stamps = _publish(r)
    keys = [f"h{k}/{n}" for k in (1, 2) for n in ("points", "depth/std", "color/std")]
    assert r.wait(lambda: all(r.received[k] for k in keys))
    for k in (1, 2):
        for n in ("points", "depth/std", "color/std"):
            m = r.received[f"h{k}/{n}"][0]
            assert m.header.stamp.sec * S + m.header.stamp.nanosec == stamps[k - 1]
            assert m.header.frame_id == "camera_color_optical_frame"
        c = r.received[f"h{k}/points"][0]
        assert (c.height, c.width, c.point_step, c.row_step, c.is_bigendian, c.is_dense) == (H, W, 16, 16 * W,
                                                                                           False, False)
        assert [(f.name, f.offset, f.datatype, f.count) for f in c.fields] == [
            ("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1), ("rgb", 12, 7, 1)]
        xyz, col = read_cloud(bytes(c.data), c.height, c.width, c.point_step, c.row_step, c.fields)
        z = xyz[:, 2].reshape(H, W)
        assert np.isnan(z[0, 0]) and np.allclose(np.delete(z.ravel(), 0), [2.0, 3.0][k - 1])
        # The scaled camera_info of the harness: f = 0.8 W, principal point at the centre.
        f, cx = 0.8 * W, (W - 1) / 2
        assert xyz[W - 1, 0] == pytest.approx((W - 1 - cx) * z[0, W - 1] / f, rel=1e-5)
        np.testing.assert_array_equal(col.reshape(H, W, 3), rgb[k - 1])
        d = r.received[f"h{k}/depth/std"][0]
        assert (d.encoding, d.height, d.width, d.step) == ("32FC1", H, W, 4 * W)
        np.testing.assert_array_equal(np.frombuffer(bytes(d.data), "<f4").reshape(H, W), sp.depth_std[k - 1])
        cs = r.received[f"h{k}/color/std"][0]
        np.testing.assert_array_equal(np.frombuffer(bytes(cs.data), "<f4").reshape(H, W), sp.rgb_std[k - 1])
    assert np.frombuffer(bytes(r.received["h1/depth/std"][0].data), "<f4")[W + 1] == 0.0
    assert r.problems == []


def test_dense_decimated_cloud_and_mono8_colour_std(rig):
    r = rig(params={"points_organized": False, "points_decimation": 2, "color_std_encoding": "mono8"})
    assert r.wait(lambda: all(p.get_subscription_count() for t in r.out._pubs for p in t))
    rgb, depth, sp, _ = _publish(r)
    assert r.wait(lambda: r.received["h1/points"] and r.received["h1/color/std"])
    c = r.received["h1/points"][0]
    n = (H // 2) * (W // 2) - 1  # decimated grid minus the NaN pixel at (0, 0)
    assert (c.height, c.width, c.is_dense, c.row_step) == (1, n, True, 16 * n)
    cs = r.received["h1/color/std"][0]
    assert (cs.encoding, cs.step) == ("mono8", W)
    want = np.clip(np.round(sp.rgb_std[0] * 2), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(np.frombuffer(bytes(cs.data), np.uint8).reshape(H, W), want)


def test_nothing_is_computed_without_subscribers(rig, monkeypatch):
    calls = []
    real = po.depth_to_cloud
    monkeypatch.setattr(po, "depth_to_cloud", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    r = rig(subscribe=())
    assert not r.out.has_subscribers()
    _publish(r)
    assert calls == []
    r.params["always_predict"] = True  # the node's "publish even without subscribers" switch
    _publish(r)
    assert len(calls) == K
    r.params["points"] = False  # clouds switched off: not computed even then
    _publish(r)
    assert len(calls) == K


def test_context_stamp_option_stamps_clouds_with_the_newest_context_frame(rig):
    r = rig(params={"points_stamp": "context"}, subscribe=("points", "depth/std"))
    assert r.wait(lambda: r.out.has_subscribers() and r.out._pubs[1][0].get_subscription_count())
    _publish(r)
    assert r.wait(lambda: r.received["h2/points"] and r.received["h2/depth/std"])
    for k in (1, 2):
        c = r.received[f"h{k}/points"][0]
        assert c.header.stamp.sec * S + c.header.stamp.nanosec == 10 * S
    d = r.received["h2/depth/std"][0]  # the images keep the future stamp
    assert d.header.stamp.sec * S + d.header.stamp.nanosec == 10 * S + 2 * S // 10


def test_zero_focal_length_reports_a_problem_and_still_publishes_the_spread(rig):
    r = rig()
    assert r.wait(lambda: all(p.get_subscription_count() for t in r.out._pubs for p in t))
    rgb, depth, sp = _prediction()
    bad = camera_info_msg(H, W, 0)
    bad.k = [0.0] * 9
    r.out.publish([S, 2 * S], 0, "cam", rgb, depth, sp, bad)
    assert r.wait(lambda: r.received["h2/depth/std"])
    assert r.problems and r.problems[0][0] == "points_camera_info" and "fx=0" in r.problems[0][1]
    r.out.publish([S, 2 * S], 0, "cam", rgb, depth, sp, None)
    assert r.problems[-1][0] == "points_no_camera_info"
    time.sleep(0.2)
    assert not r.received["h1/points"]


def test_std_resize_keeps_zero_and_nan():
    std = np.array([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, np.nan, np.nan]], np.float32)
    out = po.resize_std(std, (1, 2))
    assert out[0, 0] == 0.0 and out[0, 1] == pytest.approx(1.0)


try:
    from sensor_msgs_py import point_cloud2 as pc2
except ImportError:
    if os.environ.get("SYNCVP_LAUNCH_TESTS_REQUIRED", "") == "1":  # test/launch/run.sh: must not skip
        raise
    pc2 = None
needs_sensor_msgs_py = pytest.mark.skipif(
    pc2 is None, reason="sensor_msgs_py (ROS 2 sources, not on PyPI) is not installed here: `make test-launch` "
    "runs these tests in the ROS 2 tool venv")


@needs_sensor_msgs_py
def test_sensor_msgs_py_reads_our_cloud_as_a_plane_at_two_metres():
    depth = np.full((H, W), 2.0, np.float32)
    depth[3, 4] = np.nan
    rgb = np.random.default_rng(3).integers(0, 256, (H, W, 3), dtype=np.uint8)
    k = np.array([[30.0, 0, 15.5], [0, 28.0, 11.5], [0, 0, 1]])
    msg = po.cloud_msg(depth_to_cloud(depth, k, rgb), Header(frame_id="cam"))
    pts = pc2.read_points(msg, field_names=("x", "y", "z", "rgb"), skip_nans=True)
    assert len(pts) == H * W - 1
    np.testing.assert_allclose(pts["z"], 2.0)
    v, u = np.divmod(np.delete(np.arange(H * W), 3 * W + 4), W)
    np.testing.assert_allclose(pts["x"], (u - 15.5) * 2.0 / 30.0, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(pts["y"], (v - 11.5) * 2.0 / 28.0, rtol=1e-6, atol=1e-7)
    bits = np.asarray(pts["rgb"], np.float32).view(np.uint32)
    flat = rgb.reshape(-1, 3)[np.delete(np.arange(H * W), 3 * W + 4)].astype(np.uint32)
    np.testing.assert_array_equal(bits, (flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2])
    # Row-major rows of row_step bytes. (Its reshape_organized_cloud=True gives (width, height) in
    # common_interfaces 5.4.2, so the grid is rebuilt here.)
    organised = pc2.read_points(msg, field_names=("x", "y", "z"), skip_nans=False).reshape(H, W)
    assert np.isnan(organised["z"][3, 4]) and np.isfinite(np.delete(organised["z"].ravel(), 3 * W + 4)).all()
    assert organised["x"][5, 7] == pytest.approx((7 - 15.5) * 2.0 / 30.0)


@needs_sensor_msgs_py
def test_sensor_msgs_py_create_cloud_gives_the_same_bytes():
    depth = np.random.default_rng(4).uniform(0.5, 4, (H, W)).astype(np.float32)
    ours = po.cloud_msg(depth_to_cloud(depth, [[20, 0, 16], [0, 20, 12], [0, 0, 1]], organized=False),
                        Header(frame_id="cam"))
    xyz, _ = read_cloud(bytes(ours.data), ours.height, ours.width, ours.point_step, ours.row_step, ours.fields)
    points = np.zeros(ours.width, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("rgb", "<f4")])
    points["x"], points["y"], points["z"] = xyz.T
    ref = pc2.create_cloud(Header(frame_id="cam"), ours.fields, points)
    assert (ref.point_step, ref.row_step, ref.height, ref.width) == (ours.point_step, ours.row_step, 1, ours.width)
    assert bytes(ref.data) == bytes(ours.data)
