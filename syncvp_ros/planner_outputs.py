"""Outputs for planners: predicted point clouds and per-pixel spread, per horizon step.

* ``~/pred/h{k}/points`` (``sensor_msgs/PointCloud2``): the predicted depth back-projected with the
  camera_info scaled to the output size, XYZ metres + packed RGB (:mod:`syncvp_core.pointcloud`);
* ``~/pred/h{k}/depth/std`` (``32FC1`` metres) and ``~/pred/h{k}/color/std`` (``32FC1`` 8-bit intensity
  units, or ``mono8`` = 2 x std saturated at 255): the spread of ``num_samples`` > 1 forecasts
  (:mod:`syncvp_core.spread`); not published with one sample.

Same ``header`` as the image topics of that step (stamp = the step's future time, frame_id = the camera's
optical frame), except that ``points_stamp: context`` stamps the clouds with the newest context frame's
time: tf2 cannot look up a future pose, so a consumer that transforms clouds by their stamp (a Nav2
costmap) would otherwise hold a forecast until its time has come.

Lazy: an output nobody subscribes to is neither computed nor published (unless ``always_predict``); the
clouds also need ``points: true``. A camera_info that cannot make a cloud (zero focal length, none
received) is reported through the node's problem counter (log + ``/diagnostics``); the other outputs are
still published.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from std_msgs.msg import Header

from syncvp_core.imageops import resize_depth
from syncvp_core.pointcloud import Cloud, PointCloudError, check_intrinsics, depth_to_cloud
from syncvp_core.spread import Spread

from . import ros_io

# mono8 colour std: the std of 8-bit values is at most 127.5, so x2 uses the whole byte.
MONO8_STD_SCALE = 2.0


def cloud_msg(cloud: Cloud, header: Header) -> PointCloud2:
    return PointCloud2(
        header=header, height=cloud.height, width=cloud.width, is_bigendian=cloud.is_bigendian,
        point_step=cloud.point_step, row_step=cloud.row_step, is_dense=cloud.is_dense, data=cloud.data,
        fields=[PointField(name=n, offset=o, datatype=t, count=c) for n, o, t, c in cloud.fields])


def std_msg(std: np.ndarray, header: Header, encoding: str = "32FC1", mono8_scale: float = MONO8_STD_SCALE) -> Image:
    """float (H, W) std -> Image. 32FC1 keeps the value (0 is a valid std, unlike a depth); mono8 scales."""
    h, w = std.shape
    if encoding == "mono8":
        px = np.nan_to_num(np.round(std * mono8_scale), nan=0.0).clip(0, 255).astype(np.uint8)
        return Image(header=header, height=h, width=w, encoding="mono8", is_bigendian=0, step=w, data=px.tobytes())
    if encoding != "32FC1":
        raise ValueError(f"std encoding must be 32FC1 or mono8, got {encoding!r}")
    return Image(header=header, height=h, width=w, encoding="32FC1", is_bigendian=0, step=4 * w,
                 data=std.astype("<f4").tobytes())


def resize_std(std: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a std map like depth (validity-weighted), shifted by 1 so that a std of 0 is not taken for
    an invalid depth; NaN stays NaN."""
    if tuple(std.shape[-2:]) == tuple(size):
        return std
    return resize_depth(std + 1.0, size) - 1.0


class PlannerOutputs:
    """Publishers and per-prediction publishing of the planner topics for horizon steps 1..K.

    ``params`` is the node's live parameter dict (``points``, ``points_organized``, ``points_decimation``,
    ``points_stamp``, ``color_std_encoding``, ``always_predict``); ``problem(kind, message)`` reports bad
    input."""

    def __init__(self, node: Any, horizon: int, qos: Any, params: dict, problem: Callable[[str, str], None],
                 event_callbacks: Callable[[str], Any] | None = None) -> None:
        self._node, self._p, self._problem = node, params, problem
        self._pubs: list[tuple[Any, Any, Any]] = []  # per step: (points or None, depth std, colour std)

        def create(t, name):
            kw = {"event_callbacks": event_callbacks(name)} if event_callbacks else {}
            return node.create_publisher(t, name, qos, **kw)

        for k in range(1, horizon + 1):
            self._pubs.append((create(PointCloud2, f"~/pred/h{k}/points"),
                               create(Image, f"~/pred/h{k}/depth/std"), create(Image, f"~/pred/h{k}/color/std")))

    def destroy(self) -> None:
        for triple in self._pubs:
            for pub in triple:
                self._node.destroy_publisher(pub)
        self._pubs = []

    def _wanted(self, pub) -> bool:
        return pub.get_subscription_count() > 0 or bool(self._p.get("always_predict"))

    def _points_wanted(self, pub) -> bool:
        return bool(self._p["points"]) and self._wanted(pub)

    def has_subscribers(self) -> bool:
        return any(pub.get_subscription_count() > 0 for triple in self._pubs for pub in triple)

    def publish(self, stamps_ns: list[int], context_stamp_ns: int, frame_id: str, rgb: np.ndarray,
                depth: np.ndarray, spread: Spread | None, camera_info: CameraInfo | None,
                with_depth: bool = True) -> None:
        """One prediction: rgb uint8 (K, H, W, 3) and depth float32 (K, H, W) as published on the image
        topics; spread at the predictor's output size (resized here when the node resized the images).
        ``with_depth`` False (depth withheld by the node): colour spread only, no clouds."""
        out_hw = depth.shape[1:3]
        clouds = with_depth and any(self._points_wanted(t[0]) for t in self._pubs)
        k_matrix = self._intrinsics(camera_info, out_hw) if clouds else None
        for k, (stamp, (pub_pts, pub_dstd, pub_cstd)) in enumerate(zip(stamps_ns, self._pubs)):
            header = Header(frame_id=frame_id)
            ros_io.set_stamp(header, stamp)
            if k_matrix is not None and self._points_wanted(pub_pts):
                cloud = depth_to_cloud(depth[k], k_matrix, rgb[k], organized=bool(self._p["points_organized"]),
                                       decimation=int(self._p["points_decimation"]))
                cloud_header = header
                if self._p["points_stamp"] == "context":
                    cloud_header = Header(frame_id=frame_id)
                    ros_io.set_stamp(cloud_header, context_stamp_ns)
                pub_pts.publish(cloud_msg(cloud, cloud_header))
            if spread is None:
                continue
            if with_depth and self._wanted(pub_dstd):
                pub_dstd.publish(std_msg(resize_std(spread.depth_std[k], out_hw), header))
            if self._wanted(pub_cstd):
                pub_cstd.publish(std_msg(resize_std(spread.rgb_std[k], out_hw), header,
                                         self._p["color_std_encoding"]))

    def _intrinsics(self, info: CameraInfo | None, out_hw) -> np.ndarray | None:
        if info is None:
            self._problem("points_no_camera_info", "no camera_info received yet: no point clouds (they need "
                                                   "the intrinsics; check color_info_topic / depth_info_topic)")
            return None
        try:  # the same scaled K as the step's published camera_info
            return check_intrinsics(ros_io.scaled_camera_info(info, out_hw, Header()).k)
        except PointCloudError as e:
            self._problem("points_camera_info", f"no point clouds: {e}")
            return None
