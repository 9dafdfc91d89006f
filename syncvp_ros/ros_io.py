"""Message <-> array glue for the node: thin wrappers over :mod:`syncvp_core.data.encodings`.

The encodings module is the project's only image conversion; this file only moves message fields in and
out of it, scales camera_info, builds QoS profiles from the ``*_qos`` parameter strings and the
``/diagnostics`` message.
"""
from __future__ import annotations

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
)
from sensor_msgs.msg import CameraInfo, Image

from syncvp_core.data.encodings import decode_color, decode_depth, encode_color, encode_depth
from syncvp_core.imageops import scale_intrinsics

_BEST_EFFORT = ("SENSOR_DATA", "BEST_EFFORT")


def qos_profile(name: str, depth: int) -> QoSProfile:
    """``SENSOR_DATA``/``BEST_EFFORT`` -> best effort; ``DEFAULT``/``RELIABLE`` -> reliable. Keep-last
    ``depth``, volatile (REP 2003: sensor data consumers are best effort)."""
    name = name.upper()
    if name in _BEST_EFFORT:
        reliability = ReliabilityPolicy.BEST_EFFORT
    elif name in ("DEFAULT", "RELIABLE"):
        reliability = ReliabilityPolicy.RELIABLE
    else:
        raise ValueError(f"unknown QoS {name!r}: use SENSOR_DATA, BEST_EFFORT, DEFAULT or RELIABLE")
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=int(depth), reliability=reliability,
                      durability=DurabilityPolicy.VOLATILE)


def color_from_msg(msg: Image) -> np.ndarray:
    """sensor_msgs/Image -> uint8 (H, W, 3) RGB. Raises EncodingError."""
    return decode_color(msg.encoding, msg.height, msg.width, msg.step, msg.is_bigendian, msg.data)


def depth_from_msg(msg: Image) -> np.ndarray:
    """sensor_msgs/Image (16UC1 mm or 32FC1 m) -> float32 (H, W) metres, NaN invalid. Raises EncodingError."""
    return decode_depth(msg.encoding, msg.height, msg.width, msg.step, msg.is_bigendian, msg.data)


def _fill(msg: Image, fields: tuple[str, int, int, int, bytes]) -> Image:
    msg.encoding, msg.height, msg.width, msg.step, data = fields
    msg.is_bigendian = 0
    msg.data = data  # bytes: assigning a numpy array is ~60x slower in rclpy
    return msg


def color_msg(rgb: np.ndarray, header) -> Image:
    return _fill(Image(header=header), encode_color(rgb, "rgb8"))


def depth_msg(depth_m: np.ndarray, header, encoding: str = "32FC1") -> Image:
    return _fill(Image(header=header), encode_depth(depth_m, encoding))


def scaled_camera_info(info: CameraInfo, out_hw: tuple[int, int], header) -> CameraInfo:
    """``info`` for images resized (no crop) from ``(info.height, info.width)`` to ``out_hw``.

    K and the first three columns of P scale per axis (syncvp_core.imageops.scale_intrinsics); P's
    translation column scales with fx/fy; distortion and rectification are resolution-free.
    """
    src_hw = (int(info.height), int(info.width))
    out = CameraInfo(header=header)
    out.height, out.width = int(out_hw[0]), int(out_hw[1])
    out.distortion_model = info.distortion_model
    out.d = list(info.d)
    out.r = list(info.r)
    if src_hw[0] <= 0 or src_hw[1] <= 0 or src_hw == tuple(out_hw):
        out.k, out.p = list(info.k), list(info.p)
        return out
    k = scale_intrinsics(np.asarray(info.k, dtype=np.float64).reshape(3, 3), src_hw, out_hw)
    out.k = [float(v) for v in k.reshape(-1)]
    p = np.asarray(info.p, dtype=np.float64).reshape(3, 4).copy()
    p3 = scale_intrinsics(p[:, :3], src_hw, out_hw)
    sx, sy = out_hw[1] / src_hw[1], out_hw[0] / src_hw[0]
    p[:, :3] = p3
    p[0, 3] *= sx
    p[1, 3] *= sy
    out.p = [float(v) for v in p.reshape(-1)]
    return out


def stamp_ns(header) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def set_stamp(header, ns: int) -> None:
    header.stamp.sec, header.stamp.nanosec = divmod(int(ns), 1_000_000_000)


def diagnostic_array(name: str, hardware_id: str, level: int, message: str, values: dict[str, str],
                     now) -> DiagnosticArray:
    """One status (``level`` as in diagnostic_msgs: OK 0, WARN 1, ERROR 2) stamped ``now`` (a rclpy Time)."""
    st = DiagnosticStatus(level=bytes([level]), name=name, message=message, hardware_id=hardware_id,
                          values=[KeyValue(key=k, value=v) for k, v in values.items()])
    arr = DiagnosticArray(status=[st])
    arr.header.stamp = now.to_msg()
    return arr
