"""Write RGB-D video as a ROS 2 bag in the layout of the RealSense driver (``realsense2_camera``).

Default topics (``BagTopics()``): ``/camera/color/image_raw`` (rgb8), ``/camera/aligned_depth_to_color/
image_raw`` (16UC1 millimetres, REP 118; 32FC1 metres with ``depth_encoding="32FC1"``) and both
``camera_info`` topics, every message of a frame with the frame's header stamp and frame_id
``camera_color_optical_frame``. The recording (log) time of each message is its header stamp, so the
output is deterministic.

Options that mimic other recordings (used by the tests and for users' own experiments): raw colour in any
encoding of :mod:`.encodings`, ``color_encoding="jpeg"|"png"`` (``CompressedImage`` on ``.../compressed``),
``depth_compressed=True`` (``compressedDepth`` png on ``.../compressedDepth``), ``storage="sqlite3"``,
``compression="zstd"`` (mcap chunk compression; rosbag2's mcap plugin reads it transparently).
"""
from __future__ import annotations

import logging
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .bag import CAMERA_INFO, COMPRESSED, DEFAULT_FRAME_ID, IMAGE, BagError, BagTopics, typestore
from .encodings import (
    COLOR_ENCODINGS,
    DEPTH_ENCODINGS,
    EncodingError,
    encode_color,
    encode_compressed_color,
    encode_compressed_depth,
    encode_depth,
)
from .frames import RGBDFrame

log = logging.getLogger(__name__)

STORAGES = ("mcap", "sqlite3")


def _split(stamp_ns: int) -> tuple[int, int]:
    return int(stamp_ns) // 1_000_000_000, int(stamp_ns) % 1_000_000_000


class RGBDBagWriter:
    """Low-level writer: one message at a time, any topic. Use as a context manager."""

    def __init__(self, path: str | Path, storage: str = "mcap", compression: str = "none",
                 overwrite: bool = False) -> None:
        from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer

        if storage not in STORAGES:
            raise BagError(f"{path}: unknown bag storage {storage!r}; use one of {STORAGES}")
        if compression not in ("none", "zstd"):
            raise BagError(f"{path}: unknown compression {compression!r}; use none or zstd")
        if compression == "zstd" and storage != "mcap":
            raise BagError(f"{path}: zstd compression needs storage='mcap'")
        self.path = Path(path)
        if self.path.exists():
            is_bag = self.path.is_dir() and ((self.path / "metadata.yaml").exists()
                                             or not any(self.path.iterdir()))
            if not overwrite:
                raise BagError(f"{self.path} already exists (pass overwrite=True / --overwrite to replace it)")
            if not is_bag:
                raise BagError(f"{self.path} exists and is not a bag directory; refusing to overwrite it")
            shutil.rmtree(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self._w = Writer(self.path, version=9, storage_plugin=plugin)
        if compression == "zstd":
            self._w.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        self._w.open()
        self._ts = typestore()
        self._conns: dict[str, Any] = {}
        self.count = 0

    def _conn(self, topic: str, msgtype: str):
        con = self._conns.get(topic)
        if con is None:
            con = self._conns[topic] = self._w.add_connection(topic, msgtype, typestore=self._ts)
        elif con.msgtype != msgtype:
            raise BagError(f"{self.path}: topic {topic!r} already has type {con.msgtype}, not {msgtype}")
        return con

    def _header(self, stamp_ns: int, frame_id: str):
        T = self._ts.types
        sec, nsec = _split(stamp_ns)
        return T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=sec, nanosec=nsec),
                                        frame_id=frame_id)

    def _write(self, topic: str, msgtype: str, msg: Any, log_ns: int) -> None:
        self._w.write(self._conn(topic, msgtype), int(log_ns), self._ts.serialize_cdr(msg, msgtype))
        self.count += 1

    def write_image(self, topic: str, stamp_ns: int, encoding: str, height: int, width: int, step: int,
                    data: bytes, is_bigendian: int = 0, frame_id: str = DEFAULT_FRAME_ID,
                    log_ns: int | None = None) -> None:
        msg = self._ts.types[IMAGE](header=self._header(stamp_ns, frame_id), height=height, width=width,
                                    encoding=encoding, is_bigendian=int(is_bigendian), step=step,
                                    data=np.frombuffer(data, np.uint8))
        self._write(topic, IMAGE, msg, stamp_ns if log_ns is None else log_ns)

    def write_compressed(self, topic: str, stamp_ns: int, format: str, data: bytes,
                         frame_id: str = DEFAULT_FRAME_ID, log_ns: int | None = None) -> None:
        msg = self._ts.types[COMPRESSED](header=self._header(stamp_ns, frame_id), format=format,
                                         data=np.frombuffer(data, np.uint8))
        self._write(topic, COMPRESSED, msg, stamp_ns if log_ns is None else log_ns)

    def write_camera_info(self, topic: str, stamp_ns: int, K: np.ndarray, width: int, height: int,
                          frame_id: str = DEFAULT_FRAME_ID, D: list[float] | None = None,
                          distortion_model: str = "plumb_bob", log_ns: int | None = None) -> None:
        T = self._ts.types
        k = np.asarray(K, dtype=np.float64).reshape(3, 3)
        p = np.zeros((3, 4))
        p[:, :3] = k
        roi = T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                     do_rectify=False)
        msg = T[CAMERA_INFO](header=self._header(stamp_ns, frame_id), height=height, width=width,
                             distortion_model=distortion_model,
                             d=np.asarray(D if D is not None else [0.0] * 5, dtype=np.float64),
                             k=k.reshape(9), r=np.eye(3).reshape(9), p=p.reshape(12), binning_x=0,
                             binning_y=0, roi=roi)
        self._write(topic, CAMERA_INFO, msg, stamp_ns if log_ns is None else log_ns)

    def close(self) -> None:
        self._w.close()

    def __enter__(self) -> RGBDBagWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            # Keep what was written readable (a partial bag) rather than leaving a broken one behind.
            try:
                self.close()
            except Exception:  # noqa: BLE001 - the original exception matters more
                log.exception("closing %s after an error failed", self.path)


def write_rgbd_bag(path: str | Path, frames: Iterable[RGBDFrame], *, storage: str = "mcap",
                   color_encoding: str = "rgb8", depth_encoding: str = "16UC1", depth_compressed: bool = False,
                   topics: BagTopics | None = None, frame_id: str | None = None, K: np.ndarray | None = None,
                   compression: str = "none", overwrite: bool = False, jpeg_quality: int = 95,
                   progress: bool = False, total: int | None = None) -> int:
    """Write frames as a RealSense-layout bag; returns the number of frames written.

    ``K`` (3x3) is used when a frame has none; without any K no camera_info is written (warned).
    ``frame_id`` overrides the frames' own frame_id (default ``camera_color_optical_frame``).
    """
    compressed_color = color_encoding in ("jpeg", "png")
    if not compressed_color and color_encoding not in COLOR_ENCODINGS:
        raise BagError(f"{path}: unsupported colour encoding {color_encoding!r}; use one of "
                       f"{COLOR_ENCODINGS + ('jpeg', 'png')}")
    if depth_encoding not in DEPTH_ENCODINGS:
        raise BagError(f"{path}: unsupported depth encoding {depth_encoding!r}; use one of {DEPTH_ENCODINGS}")
    if topics is None:
        d = BagTopics()
        topics = BagTopics(d.color + ("/compressed" if compressed_color else ""),
                           d.depth + ("/compressedDepth" if depth_compressed else ""), d.color_info, d.depth_info)
    it: Iterable[RGBDFrame] = frames
    if progress:
        from tqdm import tqdm

        it = tqdm(frames, total=total, desc=f"writing {Path(path).name}", unit="frame")
    n = 0
    warned = False
    with RGBDBagWriter(path, storage=storage, compression=compression, overwrite=overwrite) as w:
        for f in it:
            rgb, depth = np.asarray(f.rgb), np.asarray(f.depth)
            if rgb.shape[:2] != depth.shape:
                raise BagError(f"{path}: frame {n} (stamp {f.stamp_ns} ns): colour {rgb.shape} and depth "
                               f"{depth.shape} differ in size")
            fid = frame_id or f.frame_id or DEFAULT_FRAME_ID
            h, wd = depth.shape
            ds = f.depth_stamp_ns if f.depth_stamp_ns is not None else f.stamp_ns
            try:
                if compressed_color:
                    fmt, data = encode_compressed_color(rgb, color_encoding, quality=jpeg_quality)
                    w.write_compressed(topics.color, f.stamp_ns, fmt, data, fid)
                else:
                    enc, hh, ww, step, data = encode_color(rgb, color_encoding)
                    w.write_image(topics.color, f.stamp_ns, enc, hh, ww, step, data, frame_id=fid)
                if depth_compressed:
                    fmt, data = encode_compressed_depth(depth, depth_encoding)
                    w.write_compressed(topics.depth, ds, fmt, data, fid)
                else:
                    enc, hh, ww, step, data = encode_depth(depth, depth_encoding)
                    w.write_image(topics.depth, ds, enc, hh, ww, step, data, frame_id=fid)
            except EncodingError as e:
                raise BagError(f"{path}: frame {n} (stamp {f.stamp_ns} ns): {e}") from e
            k = f.K if f.K is not None else K
            if k is not None:
                if topics.color_info:
                    w.write_camera_info(topics.color_info, f.stamp_ns, k, wd, h, fid)
                if topics.depth_info:
                    w.write_camera_info(topics.depth_info, ds, k, wd, h, fid)
            elif not warned:
                warned = True
                log.warning("%s: frames have no intrinsics (K); camera_info topics not written", path)
            n += 1
    if n == 0:
        raise BagError(f"{path}: no frames to write (the bag was created empty)")
    return n
