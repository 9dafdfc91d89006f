"""ROS 2 bags of RGB-D video: read any user's bag as synchronised frames, write RealSense-layout bags.

Pure Python (``rosbags``): no ROS installation is needed, and nothing here imports rclpy.

Reading (streaming, bounded memory: only the synchroniser's queues of undecoded messages are held)::

    from syncvp_core.data.bag import BagTopics, read_rgbd_bag, bag_info
    reader = read_rgbd_bag("run.bag_dir", topics=BagTopics(), slop_s=0.02)   # topics=None: auto-detect
    for frame in reader:            # RGBDFrame(stamp_ns, rgb uint8 HxWx3, depth float32 m HxW, K 3x3|None)
        ...
    reader.stats                    # SyncStats (pairs, unmatched, gaps, ...) once iteration has finished
    reader.events                   # the SyncEvents (gaps, unmatched, backwards, duplicates)
    reader.camera_info              # CameraInfo of the colour camera (K, D, size, frame_id) or None
    bag_info("run.bag_dir")         # BagInfo: topics (type, count), duration, storage

* Accepted paths: a rosbag2 directory (``metadata.yaml``; mcap or sqlite3 storage), a bare ``.mcap`` or
  ``.db3`` file, or a ROS 1 ``.bag`` file.
* Colour topics: ``sensor_msgs/Image`` (rgb8, bgr8, rgba8, bgra8, mono8) or ``CompressedImage`` (jpeg, png).
  Depth topics: ``Image`` (16UC1 mm, 32FC1 m; ``step`` padding and ``is_bigendian`` honoured) or
  ``CompressedImage`` in the ``compressedDepth`` png format. Decoding lives in :mod:`.encodings`.
* Colour and depth are paired by **header stamp** with :class:`~.sync.StampSynchronizer` (approximate time,
  ``slop_s``); what cannot be paired is counted and reported, never dropped silently. Messages are fed in
  recording order, as a live subscriber would have received them. Header stamps of 0 fall back to the
  recording time (with a warning).
* ``K`` comes from the colour ``camera_info`` topic (the latest message; the first one for frames before
  it). When its size differs from the images, K is None and a warning says why.
* Errors (:class:`BagError`, a ``ValueError``) name the file and the topic or encoding: missing topic (with
  the topics that exist), unsupported encoding, colour/depth of different sizes, truncated or corrupt bag,
  empty bag, no pair within the slop.

Writing (RealSense ``realsense2_camera`` layout, REP 118 depth)::

    from syncvp_core.data.bag import write_rgbd_bag
    write_rgbd_bag("out_bag", frames, storage="mcap", depth_encoding="16UC1")

writes ``/camera/color/image_raw`` (rgb8), ``/camera/aligned_depth_to_color/image_raw`` (16UC1 mm, or 32FC1
m), ``/camera/color/camera_info`` and ``/camera/aligned_depth_to_color/camera_info``, one header stamp per
frame, frame_id ``camera_color_optical_frame``. See :mod:`.bag_writer` for compressed topics and options.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .encodings import EncodingError, decode_color, decode_compressed, decode_depth
from .frames import RGBDFrame
from .sync import StampSynchronizer, SyncEvent, SyncStats

log = logging.getLogger(__name__)

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
IMAGE_TYPES = (IMAGE, COMPRESSED)

DEFAULT_FRAME_ID = "camera_color_optical_frame"


class BagError(ValueError):
    """A bag cannot be read or written as RGB-D video; the message names the file and the topic."""


@dataclass(frozen=True)
class BagTopics:
    """Topic names of one RGB-D camera. The defaults are those of the RealSense ROS 2 driver."""

    color: str = "/camera/color/image_raw"
    depth: str = "/camera/aligned_depth_to_color/image_raw"
    color_info: str | None = "/camera/color/camera_info"
    depth_info: str | None = "/camera/aligned_depth_to_color/camera_info"


@dataclass
class CameraInfo:
    width: int
    height: int
    K: np.ndarray  # 3x3
    D: list[float] = field(default_factory=list)
    distortion_model: str = ""
    frame_id: str = ""


@dataclass
class TopicStat:
    msgtype: str
    count: int


@dataclass
class BagInfo:
    path: str
    storage: str  # "mcap" | "sqlite3" | "rosbag1"
    topics: dict[str, TopicStat]
    message_count: int
    start_ns: int
    end_ns: int

    @property
    def duration_s(self) -> float:
        return max(0, self.end_ns - self.start_ns) / 1e9 if self.message_count else 0.0

    def describe(self) -> str:
        lines = [f"{self.path}: {self.storage}, {self.message_count} messages, {self.duration_s:.2f} s"]
        for name in sorted(self.topics):
            t = self.topics[name]
            lines.append(f"  {name}  [{t.msgtype}]  {t.count} messages")
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------
# opening


@lru_cache(maxsize=1)
def typestore():
    """The ROS 2 Kilted message types (their Image hash equals rclpy's, so written bags are compatible)."""
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_KILTED)


def _storage_of(p: Path) -> str:
    if p.is_dir():
        meta = p / "metadata.yaml"
        text = meta.read_text(errors="replace") if meta.exists() else ""
        return "mcap" if "storage_identifier: mcap" in text else "sqlite3" if "sqlite3" in text else "unknown"
    return {".mcap": "mcap", ".db3": "sqlite3", ".bag": "rosbag1"}.get(p.suffix, "unknown")


def open_reader(path: str | Path):
    """An opened rosbags AnyReader; every failure becomes a BagError naming the file."""
    from rosbags.highlevel import AnyReader

    p = Path(path)
    if not p.exists():
        raise BagError(f"{p}: no such bag (expected a rosbag2 directory, a .mcap/.db3 file or a ROS 1 .bag)")
    if p.is_dir() and not (p / "metadata.yaml").exists():
        files = sorted(x.name for x in p.iterdir())[:10]
        raise BagError(f"{p}: not a rosbag2 directory (no metadata.yaml; contains {files}). Pass the "
                       f"directory of a bag or a .mcap/.db3 file directly")
    reader = AnyReader([p], default_typestore=typestore())
    try:
        reader.open()
    except Exception as e:  # rosbags raises many types for corrupt input (struct, zstd, sqlite, ...)
        raise BagError(f"{p}: cannot open bag (truncated or corrupt?): {type(e).__name__}: {e}") from e
    return reader


def iter_raw_messages(path: str | Path, topics: list[str] | None = None) -> Iterator[tuple[str, str, int, bytes]]:
    """``(topic, msgtype, record time ns, CDR bytes)`` in recording order, for replaying a bag as-is
    (ROS 1 messages are converted to CDR)."""
    reader = open_reader(path)
    try:
        conns = [c for c in reader.connections if not topics or c.topic in topics]
        is_ros1 = Path(path).suffix == ".bag"
        ts = typestore()
        for conn, t_ns, raw in reader.messages(connections=conns):
            data = ts.ros1_to_cdr(raw, conn.msgtype) if is_ros1 else bytes(raw)
            yield conn.topic, conn.msgtype, int(t_ns), data
    finally:
        reader.close()


def bag_info(path: str | Path) -> BagInfo:
    """Topics (type, message count), message count and time span of a bag, without reading messages."""
    reader = open_reader(path)
    try:
        topics: dict[str, TopicStat] = {}
        for c in reader.connections:
            t = topics.setdefault(c.topic, TopicStat(c.msgtype, 0))
            t.count += c.msgcount
        count = sum(t.count for t in topics.values())
        return BagInfo(str(path), _storage_of(Path(path)), topics, count,
                       reader.start_time if count else 0, reader.end_time if count else 0)
    finally:
        reader.close()


def guess_topics(info: BagInfo) -> BagTopics:
    """The RealSense defaults when present, else the one colour and one depth image topic of the bag."""
    d = BagTopics()
    if d.color in info.topics and d.depth in info.topics:
        return d
    images = {n: t for n, t in info.topics.items() if t.msgtype in IMAGE_TYPES and t.count > 0}
    depth = [n for n in images if "depth" in n.lower() and "colorized" not in n.lower()]
    # Prefer depth registered to the colour camera.
    aligned = [n for n in depth if "aligned" in n.lower() or "registered" in n.lower()]
    depth = aligned or depth
    color = [n for n in images if n not in depth and "depth" not in n.lower() and "infra" not in n.lower()
             and "ir" not in n.lower().split("/")]
    pref = [n for n in color if "color" in n.lower() or "rgb" in n.lower()]
    color = pref or color
    if len(color) != 1 or len(depth) != 1:
        raise BagError(f"{info.path}: cannot tell which topics are colour and depth (colour candidates "
                       f"{color}, depth candidates {depth}); pass them explicitly. Topics:\n"
                       + info.describe())

    def info_of(topic: str) -> str | None:
        base = topic
        for suffix in ("/compressedDepth", "/compressed"):
            if base.endswith(suffix):
                base = base[: -len(suffix)]
        cand = base.rsplit("/", 1)[0] + "/camera_info"
        return cand if cand in info.topics else None

    return BagTopics(color[0], depth[0], info_of(color[0]), info_of(depth[0]))


def _camera_info(msg: Any) -> CameraInfo:
    return CameraInfo(int(msg.width), int(msg.height), np.array(msg.k, dtype=np.float64).reshape(3, 3),
                      [float(x) for x in msg.d], str(msg.distortion_model), str(msg.header.frame_id))


def _stamp_ns(msg: Any) -> int:
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


# ----------------------------------------------------------------------------------------------------
# reading


class RGBDBagReader:
    """Iterable of synchronised :class:`RGBDFrame` from one bag (see the module docstring).

    The constructor checks the bag and the topics (so bad input fails before any work); iterating reads
    the bag from the start each time. ``stats``/``events`` describe the latest iteration.
    """

    def __init__(self, path: str | Path, topics: BagTopics | None = None, slop_s: float = 0.02,
                 max_frames: int | None = None, max_queue: int = 30, gap_factor: float = 2.5,
                 on_event: Any = None) -> None:
        self.path = Path(path)
        self.info = bag_info(self.path)
        if self.info.message_count == 0:
            raise BagError(f"{self.path}: the bag is empty (no messages)")
        self.topics = topics if topics is not None else guess_topics(self.info)
        self.slop_s = float(slop_s)
        self.max_frames = max_frames
        self._sync_kwargs = {"max_queue": max_queue, "gap_factor": gap_factor}
        self._user_on_event = on_event
        self.warnings: list[str] = []
        self.events: list[SyncEvent] = []
        self.stats: SyncStats | None = None
        self._check_topics()
        self.camera_info: CameraInfo | None = self._first_camera_info()

    def _warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)
            log.warning(text)

    def _check_topics(self) -> None:
        t, info = self.topics, self.info
        for role, name in (("colour", t.color), ("depth", t.depth)):
            if name not in info.topics:
                raise BagError(f"{self.path}: {role} topic {name!r} not in the bag. Topics:\n"
                               + info.describe().split("\n", 1)[-1])
            ts = info.topics[name]
            if ts.msgtype not in IMAGE_TYPES:
                raise BagError(f"{self.path}: {role} topic {name!r} has type {ts.msgtype}, expected "
                               f"{IMAGE} or {COMPRESSED}")
            if ts.count == 0:
                raise BagError(f"{self.path}: {role} topic {name!r} has no messages (empty)")
        for role, name in (("colour camera_info", t.color_info), ("depth camera_info", t.depth_info)):
            if name is None:
                continue
            if name not in info.topics:
                if role.startswith("colour"):
                    self._warn(f"{self.path}: {role} topic {name!r} not in the bag; intrinsics unknown")
                else:  # depth is registered to colour: its camera_info adds nothing
                    log.info("%s: %s topic %r not in the bag", self.path, role, name)
            elif info.topics[name].msgtype != CAMERA_INFO:
                raise BagError(f"{self.path}: {role} topic {name!r} has type {info.topics[name].msgtype}, "
                               f"expected {CAMERA_INFO}")

    def _first_camera_info(self) -> CameraInfo | None:
        name = self.topics.color_info
        if name is None or name not in self.info.topics:
            return None
        reader = open_reader(self.path)
        try:
            conns = [c for c in reader.connections if c.topic == name]
            for con, _, raw in reader.messages(connections=conns):
                return _camera_info(reader.deserialize(raw, con.msgtype))
        except BagError:
            raise
        except Exception as e:
            raise BagError(f"{self.path}: cannot read {name!r} (truncated or corrupt?): "
                           f"{type(e).__name__}: {e}") from e
        finally:
            reader.close()
        return None

    def _on_event(self, ev: SyncEvent) -> None:
        if len(self.events) < 10000:
            self.events.append(ev)
        if self._user_on_event is not None:
            self._user_on_event(ev)

    def _decode(self, msg: Any, msgtype: str, topic: str, kind: str, stamp: int) -> np.ndarray:
        try:
            if msgtype == COMPRESSED:
                return decode_compressed(msg.format, msg.data, kind)
            fn = decode_color if kind == "color" else decode_depth
            return fn(msg.encoding, msg.height, msg.width, msg.step, msg.is_bigendian, msg.data)
        except EncodingError as e:
            raise BagError(f"{self.path}: topic {topic!r} at stamp {stamp} ns: {e}") from e

    def _frame(self, pair, cam: CameraInfo | None) -> RGBDFrame:
        (cmsg, ctype), (dmsg, dtype) = pair.color, pair.depth
        rgb = self._decode(cmsg, ctype, self.topics.color, "color", pair.color_stamp_ns)
        depth = self._decode(dmsg, dtype, self.topics.depth, "depth", pair.depth_stamp_ns)
        if rgb.shape[:2] != depth.shape:
            raise BagError(
                f"{self.path}: colour {self.topics.color!r} is {rgb.shape[1]}x{rgb.shape[0]} but depth "
                f"{self.topics.depth!r} is {depth.shape[1]}x{depth.shape[0]} (stamp {pair.stamp_ns} ns); depth "
                f"must be registered to the colour image (e.g. RealSense aligned_depth_to_color)")
        K = None
        if cam is not None:
            if (cam.height, cam.width) == rgb.shape[:2]:
                K = cam.K.copy()
            else:
                self._warn(f"{self.path}: {self.topics.color_info!r} is for {cam.width}x{cam.height} but "
                           f"the images are {rgb.shape[1]}x{rgb.shape[0]}; intrinsics unknown (K=None)")
        frame_id = str(cmsg.header.frame_id) or DEFAULT_FRAME_ID
        return RGBDFrame(pair.stamp_ns, rgb, depth, K, pair.depth_stamp_ns, frame_id)

    def __iter__(self) -> Iterator[RGBDFrame]:
        self.events = []
        sync = StampSynchronizer(slop_s=self.slop_s, on_event=self._on_event, **self._sync_kwargs)
        self.stats = sync.stats
        t = self.topics
        cam = self.camera_info
        emitted = 0
        seen: dict[str, int] = {}
        reader = open_reader(self.path)
        try:
            conns = [c for c in reader.connections if c.topic in (t.color, t.depth, t.color_info)]
            messages = reader.messages(connections=conns)
            while True:
                try:
                    item = next(messages, None)
                    if item is None:
                        break
                    con, log_ns, raw = item
                    msg = reader.deserialize(raw, con.msgtype)
                except Exception as e:
                    raise BagError(f"{self.path}: cannot read messages (truncated or corrupt?): "
                                   f"{type(e).__name__}: {e}") from e
                seen[con.topic] = seen.get(con.topic, 0) + 1
                if con.topic == t.color_info:
                    cam = _camera_info(msg)
                    continue
                stamp = _stamp_ns(msg)
                if stamp == 0:
                    self._warn(f"{self.path}: topic {con.topic!r} has header stamps of 0; using the "
                               f"recording time instead")
                    stamp = int(log_ns)
                if con.topic == t.color:
                    pairs = sync.add_color(stamp, (msg, con.msgtype))
                else:
                    pairs = sync.add_depth(stamp, (msg, con.msgtype))
                for p in pairs:
                    yield self._frame(p, cam)
                    emitted += 1
                    if self.max_frames is not None and emitted >= self.max_frames:
                        return
            for topic in (t.color, t.depth):
                want, got = self.info.topics[topic].count, seen.get(topic, 0)
                if got != want:
                    raise BagError(f"{self.path}: read {got} of the {want} messages the bag's index lists for "
                                   f"{topic!r}: truncated or corrupt bag")
            for p in sync.flush():
                yield self._frame(p, cam)
                emitted += 1
                if self.max_frames is not None and emitted >= self.max_frames:
                    return
        finally:
            reader.close()
        self.stats = sync.stats
        if emitted == 0:
            raise BagError(f"{self.path}: no colour/depth pair within the slop of {self.slop_s * 1e3:.0f} ms "
                           f"({t.color!r}, {t.depth!r}): {sync.stats.summary()}")


def read_rgbd_bag(path: str | Path, topics: BagTopics | None = None, slop_s: float = 0.02,
                  **kwargs: Any) -> RGBDBagReader:
    """Synchronised RGB-D frames of a bag, streamed. ``topics=None`` auto-detects (RealSense defaults
    first). Returns an iterable :class:`RGBDBagReader` (``.stats``, ``.events``, ``.camera_info``)."""
    return RGBDBagReader(path, topics, slop_s, **kwargs)


def write_rgbd_bag(path: str | Path, frames: Iterable[RGBDFrame], **kwargs: Any) -> int:
    """Write frames as a RealSense-layout bag; see :func:`.bag_writer.write_rgbd_bag`."""
    from .bag_writer import write_rgbd_bag as _write

    return _write(path, frames, **kwargs)
