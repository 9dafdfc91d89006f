"""Predicted depth -> a point cloud a planner can consume (the bytes of a ``sensor_msgs/PointCloud2``). No ROS.

    cloud = depth_to_cloud(depth_m, K, rgb, organized=False, decimation=2)
    cloud.data, cloud.height, cloud.width, cloud.point_step, cloud.row_step, cloud.is_dense, cloud.fields

Geometry (REP 103/105 optical frame: x right, y down, z forward): pixel ``(u, v)`` with depth ``z`` metres
back-projects to ``x = (u - cx) z / fx``, ``y = (v - cy) z / fy``. Pixel centres sit at integer
coordinates, as in ``sensor_msgs/CameraInfo``. ``K`` must describe the depth image as given, i.e. the
camera_info already scaled to the prediction's size (:func:`syncvp_core.imageops.scale_intrinsics`).

Layout: little-endian, 16 bytes per point: ``x, y, z`` float32 at offsets 0, 4, 8 and ``rgb`` at 12, a
float32 field whose four bytes are the uint32 ``0x00RRGGBB`` (the PCL / RViz packing). *Organised* clouds
keep the image grid (height x width, invalid depth -> NaN point, ``is_dense`` false when any is invalid);
*dense* clouds drop invalid points (height 1, ``is_dense`` true). ``decimation = d`` keeps every d-th row
and column (a d^2-times smaller cloud) with the full-resolution intrinsics.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# sensor_msgs/PointField datatypes (the message's constants; copied so this module needs no ROS).
FLOAT32 = 7
UINT32 = 6

POINT_DTYPE = np.dtype({"names": ["x", "y", "z", "rgb"], "formats": ["<f4", "<f4", "<f4", "<u4"],
                        "offsets": [0, 4, 8, 12], "itemsize": 16})
# (name, offset, datatype, count): what goes into PointCloud2.fields. rgb is declared FLOAT32 although we
# write uint32 bits: that is the convention RViz, PCL and Nav2 decode.
FIELDS: tuple[tuple[str, int, int, int], ...] = (
    ("x", 0, FLOAT32, 1), ("y", 4, FLOAT32, 1), ("z", 8, FLOAT32, 1), ("rgb", 12, FLOAT32, 1))


class PointCloudError(ValueError):
    """Inputs that cannot make a cloud (bad intrinsics, shapes); the message names the value and why."""


@dataclass(frozen=True)
class Cloud:
    data: bytes
    height: int
    width: int
    is_dense: bool
    point_step: int = POINT_DTYPE.itemsize
    fields: tuple[tuple[str, int, int, int], ...] = FIELDS
    is_bigendian: bool = False

    @property
    def row_step(self) -> int:
        return self.point_step * self.width

    @property
    def n_points(self) -> int:
        return self.height * self.width


def check_intrinsics(k: np.ndarray | list | tuple) -> np.ndarray:
    """``K`` (3x3 or its 9 row-major values) -> float64 3x3; raises PointCloudError on unusable values
    (a camera_info that is all zeros — an uncalibrated driver — is the usual cause)."""
    k = np.asarray(k, dtype=np.float64)
    if k.size != 9:
        raise PointCloudError(f"camera matrix K must have 9 values (3x3), got shape {k.shape}")
    k = k.reshape(3, 3)
    fx, fy, cx, cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
    for name, v in (("fx", fx), ("fy", fy)):
        if not np.isfinite(v) or v <= 0:
            raise PointCloudError(
                f"camera_info focal length {name}={v} is not a positive finite number: the camera is not "
                "calibrated (K is zero?), no point cloud can be computed")
    if not (np.isfinite(cx) and np.isfinite(cy)):
        raise PointCloudError(f"camera_info principal point (cx, cy)=({cx}, {cy}) is not finite")
    return k


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """uint8 (..., 3) -> uint32 (...) ``0x00RRGGBB``."""
    c = rgb.astype(np.uint32)
    return (c[..., 0] << 16) | (c[..., 1] << 8) | c[..., 2]


def depth_to_cloud(depth_m: np.ndarray, k, rgb: np.ndarray | None = None, *, organized: bool = True,
                   decimation: int = 1) -> Cloud:
    """Back-project float metres ``(H, W)`` (NaN / inf / <= 0 invalid) with ``K`` into a :class:`Cloud`.
    ``rgb`` uint8 ``(H, W, 3)`` colours the points (black without it)."""
    k = check_intrinsics(k)
    depth_m = np.asarray(depth_m)
    if depth_m.ndim != 2:
        raise PointCloudError(f"depth must be one (H, W) frame, got shape {depth_m.shape}")
    if rgb is not None and (rgb.shape != (*depth_m.shape, 3) or rgb.dtype != np.uint8):
        raise PointCloudError(f"rgb must be uint8 {(*depth_m.shape, 3)} like the depth, got {rgb.dtype} {rgb.shape}")
    if int(decimation) != decimation or decimation < 1:
        raise PointCloudError(f"decimation must be an integer >= 1, got {decimation}")
    d = int(decimation)
    z = depth_m[::d, ::d].astype(np.float32, copy=False)
    h, w = z.shape
    # Rays per column / row, broadcast over the grid: one multiply per coordinate, no per-point Python.
    ray_x = ((np.arange(0, depth_m.shape[1], d) - k[0, 2]) / k[0, 0]).astype(np.float32)
    ray_y = ((np.arange(0, depth_m.shape[0], d) - k[1, 2]) / k[1, 1]).astype(np.float32)
    valid = np.isfinite(z) & (z > 0)
    out = np.empty((h, w), dtype=POINT_DTYPE)
    zv = np.where(valid, z, np.float32(np.nan))
    out["x"] = ray_x[None, :] * zv
    out["y"] = ray_y[:, None] * zv
    out["z"] = zv
    out["rgb"] = pack_rgb(rgb[::d, ::d]) if rgb is not None else 0
    if organized:
        return Cloud(out.tobytes(), h, w, is_dense=bool(valid.all()))
    kept = out[valid]
    return Cloud(kept.tobytes(), 1, int(kept.shape[0]), is_dense=True)


def read_cloud(data: bytes, height: int, width: int, point_step: int, row_step: int, fields,
               is_bigendian: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Decode a PointCloud2 payload by its declared layout -> (xyz float32 (N, 3), rgb uint8 (N, 3) or None).

    Honours field offsets, ``point_step`` and ``row_step`` (row padding). ``fields`` are
    ``(name, offset, datatype, count)`` tuples or PointField-like objects. The reference decoder for our
    tests and for consumers without sensor_msgs_py."""
    by_name = {}
    for f in fields:
        name, offset, datatype = (f[0], f[1], f[2]) if isinstance(f, tuple) else (f.name, f.offset, f.datatype)
        by_name[name] = (int(offset), int(datatype))
    for name in ("x", "y", "z"):
        if by_name.get(name, (0, None))[1] != FLOAT32:
            raise PointCloudError(f"cloud has no float32 field {name!r}: fields {sorted(by_name)}")
    if row_step < point_step * width or len(data) < row_step * height:
        raise PointCloudError(f"cloud data is {len(data)} bytes, too short for {height} rows of {row_step} "
                              f"bytes ({width} points of {point_step})")
    end = ">" if is_bigendian else "<"
    rows = np.frombuffer(data, dtype=np.uint8, count=row_step * height).reshape(height, row_step)
    points = rows[:, :point_step * width].reshape(height * width, point_step)

    def column(name: str, fmt: str) -> np.ndarray:
        off = by_name[name][0]
        return points[:, off:off + 4].copy().view(end + fmt)[:, 0]

    xyz = np.stack([column(n, "f4") for n in ("x", "y", "z")], axis=1).astype(np.float32)
    if "rgb" not in by_name:
        return xyz, None
    bits = column("rgb", "u4")
    rgb = np.stack([(bits >> 16) & 255, (bits >> 8) & 255, bits & 255], axis=1).astype(np.uint8)
    return xyz, rgb
