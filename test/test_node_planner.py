"""The predictor node's planner outputs in-process: point clouds, spread topics, laziness, bad camera_info.

Node under test + driver in a private rclpy context (syncvp_ros.testing.Harness), random-init ``tiny``
with 2 sampler steps, 48x64 synthetic frames (camera_info f = 0.8 W, principal point at the centre).
"""
import time

import numpy as np
import pytest

pytest.importorskip("rclpy")
import torch  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402

from syncvp_core.pointcloud import read_cloud  # noqa: E402
from syncvp_ros.testing import Harness, camera_info_msg  # noqa: E402

pytestmark = pytest.mark.ros
torch.set_num_threads(1)

FAST = {"checkpoint": "random:tiny", "steps": 2, "horizon": 2, "warmup": 1}
S = 1_000_000_000
H, W = 48, 64


@pytest.fixture
def harness():
    made = []

    def make(params, topics):
        h = Harness({**FAST, **params}, record=())
        made.append(h)
        base = h.node.get_fully_qualified_name()
        types = {"points": PointCloud2, "depth/std": Image, "color/std": Image, "depth/image": Image}
        for k in (1, 2):
            for t in topics:
                h.subscribe(types[t], f"{base}/pred/h{k}/{t}", f"h{k}/{t}")
        assert h.wait_for_subscribers()
        return h

    yield make
    for h in made:
        h.close()


def _stamp(m):
    return m.header.stamp.sec * S + m.header.stamp.nanosec


def test_samples_and_clouds_from_the_node(harness):
    topics = ("points", "depth/std", "color/std", "depth/image")
    h = harness({"num_samples": 3, "points_organized": True}, topics)
    h.stream(5)
    assert h.wait_until(lambda: all(h.count(f"h{k}/{t}") for k in (1, 2) for t in topics), 20)
    for k in (1, 2):
        # Outputs of one prediction share a stamp; pick the depth image of the cloud's prediction.
        cloud = h.received[f"h{k}/points"][0]
        depth_msgs = {_stamp(m): m for m in h.received[f"h{k}/depth/image"]}
        d = depth_msgs[_stamp(cloud)]
        assert cloud.header.frame_id == d.header.frame_id == "camera_color_optical_frame"
        assert (cloud.height, cloud.width, cloud.point_step) == (H, W, 16)
        xyz, _ = read_cloud(bytes(cloud.data), cloud.height, cloud.width, cloud.point_step, cloud.row_step,
                            cloud.fields)
        depth = np.frombuffer(bytes(d.data), "<f4").reshape(H, W)
        z = xyz[:, 2].reshape(H, W)
        np.testing.assert_array_equal(np.isnan(z), np.isnan(depth))
        np.testing.assert_allclose(z, depth, rtol=1e-6)  # the cloud is the published (mean) depth
        f, cx = 0.8 * W, (W - 1) / 2
        np.testing.assert_allclose(xyz[:, 0].reshape(H, W)[5], (np.arange(W) - cx) * depth[5] / f, rtol=1e-5)
        std = h.received[f"h{k}/depth/std"][0]
        assert (std.encoding, std.height, std.width) == ("32FC1", H, W)
        s = np.frombuffer(bytes(std.data), "<f4")
        assert np.nanmax(s) > 0 and np.nanmin(s) >= 0  # three different noises: a spread
        assert h.received[f"h{k}/color/std"][0].encoding == "32FC1"


def test_planner_topics_alone_keep_the_node_predicting_and_one_sample_has_no_spread(harness):
    h = harness({}, ("points", "depth/std"))
    h.stream(5)
    assert h.wait_until(lambda: h.count("h2/points") > 0, 20)  # no image subscriber, still not lazy
    c = h.received["h2/points"][0]
    assert c.height == 1 and c.is_dense and c.width > 0.5 * H * W  # dense by default
    assert h.count("h1/depth/std") == 0  # num_samples 1: no spread


def test_zero_focal_length_camera_info_no_cloud_a_diagnostic_and_the_rest_still_published(harness):
    h = harness({"num_samples": 2}, ("points", "depth/std"))
    pub_info = h.publisher(CameraInfo, h.node._p["color_info_topic"])
    for t in range(5):
        stamp = S + t * S // 10
        info = camera_info_msg(H, W, stamp)
        info.k = [0.0] * 9  # an uncalibrated driver
        pub_info.publish(info)
        h.publish_frame(t, stamp, info=False)
        time.sleep(0.1)
    assert h.wait_until(lambda: h.count("h1/depth/std") > 0, 20)
    assert h.count("h1/points") == 0 and h.count("h2/points") == 0
    kv = h.node.diagnostics()[1]
    assert int(kv["bad input: points_camera_info"]) >= 1


def test_output_size_scales_the_spread_and_the_cloud_intrinsics(harness):
    h = harness({"num_samples": 2, "output_height": 24, "output_width": 32, "points_organized": True,
                 "color_std_encoding": "mono8"}, ("points", "depth/std", "color/std", "depth/image"))
    h.stream(5)
    assert h.wait_until(lambda: all(h.count(f"h1/{t}") for t in ("points", "depth/std", "color/std",
                                                                 "depth/image")), 20)
    std, cstd = h.received["h1/depth/std"][0], h.received["h1/color/std"][0]
    assert (std.height, std.width, cstd.encoding, cstd.height, cstd.width) == (24, 32, "mono8", 24, 32)
    cloud = h.received["h1/points"][0]
    d = {_stamp(m): m for m in h.received["h1/depth/image"]}[_stamp(cloud)]
    xyz, _ = read_cloud(bytes(cloud.data), cloud.height, cloud.width, cloud.point_step, cloud.row_step,
                        cloud.fields)
    depth = np.frombuffer(bytes(d.data), "<f4").reshape(24, 32)
    # camera_info scaled by 1/2 per axis: f = 0.8 * 64 / 2, cx = (31.5 + 0.5) / 2 - 0.5
    f, cx = 0.8 * 64 / 2, (31.5 + 0.5) / 2 - 0.5
    np.testing.assert_allclose(xyz[:, 0].reshape(24, 32)[3], (np.arange(32) - cx) * depth[3] / f, rtol=1e-5)
