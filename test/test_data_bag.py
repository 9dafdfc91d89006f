"""ROS 2 bag reading and writing (syncvp_core.data.bag / bag_writer)."""
from __future__ import annotations

import numpy as np
import pytest

from syncvp_core.data.bag import BagError, BagTopics, bag_info, read_rgbd_bag, typestore, write_rgbd_bag
from syncvp_core.data.bag_writer import RGBDBagWriter
from syncvp_core.data.encodings import depth_to_mm, encode_color, encode_depth, mm_to_depth
from syncvp_core.data.frames import RGBDFrame

H, W = 12, 16
T0 = 1_700_000_000_123_456_789
K = np.array([[20.0, 0, 7.5], [0, 21.0, 5.5], [0, 0, 1]])


def _frames(n=4, seed=0, h=H, w=W):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        d = rng.uniform(0.3, 8.0, (h, w)).astype(np.float32)
        d[0, i % w] = np.nan
        out.append(RGBDFrame(T0 + i * 100_000_000, rgb, d, K, depth_stamp_ns=T0 + i * 100_000_000 + 3_000_000))
    return out


def _raw_messages(path):
    """topic -> list of deserialised messages, straight from rosbags."""
    from rosbags.highlevel import AnyReader

    out: dict[str, list] = {}
    with AnyReader([path], default_typestore=typestore()) as r:
        for con, _, raw in r.messages():
            out.setdefault(con.topic, []).append(r.deserialize(raw, con.msgtype))
    return out


def _grey(rgb):
    g = np.round(rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).clip(0, 255)
    return np.repeat(g.astype(np.uint8)[..., None], 3, axis=2)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
@pytest.mark.parametrize("color_encoding", ["rgb8", "bgr8", "rgba8", "bgra8", "mono8"])
@pytest.mark.parametrize("depth_encoding", ["16UC1", "32FC1"])
def test_round_trip_exact(tmp_path, storage, color_encoding, depth_encoding):
    frames = _frames()
    path = tmp_path / "bag"
    n = write_rgbd_bag(path, frames, storage=storage, color_encoding=color_encoding,
                       depth_encoding=depth_encoding)
    assert n == len(frames)
    info = bag_info(path)
    assert info.storage == storage and info.message_count == 4 * n
    reader = read_rgbd_bag(path)
    out = list(reader)
    assert len(out) == n and reader.stats.pairs == n and reader.stats.unmatched_color == 0
    for a, b in zip(frames, out):
        assert (b.stamp_ns, b.depth_stamp_ns) == (a.stamp_ns, a.depth_stamp_ns)
        assert b.frame_id == "camera_color_optical_frame"
        expect_rgb = _grey(a.rgb) if color_encoding == "mono8" else a.rgb
        np.testing.assert_array_equal(b.rgb, expect_rgb)
        expect_d = mm_to_depth(depth_to_mm(a.depth)) if depth_encoding == "16UC1" else a.depth
        np.testing.assert_array_equal(b.depth, expect_d)
        np.testing.assert_array_equal(b.K, K)
    raw = _raw_messages(path)
    color = raw["/camera/color/image_raw"]
    depth = raw["/camera/aligned_depth_to_color/image_raw"]
    assert {m.encoding for m in color} == {color_encoding}
    assert {m.encoding for m in depth} == {depth_encoding}
    for name in ("/camera/color/camera_info", "/camera/aligned_depth_to_color/camera_info"):
        ci = raw[name]
        assert len(ci) == n and (ci[0].width, ci[0].height) == (W, H)
        np.testing.assert_array_equal(ci[0].k.reshape(3, 3), K)
        assert ci[0].header.frame_id == "camera_color_optical_frame"
    # one header stamp per frame, shared by colour and its camera_info
    assert [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in color] == [f.stamp_ns for f in frames]
    assert reader.camera_info.width == W and reader.camera_info.distortion_model == "plumb_bob"


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_compressed_topics(tmp_path, storage):
    frames = _frames(3)
    for f in frames:  # smooth colour so jpeg error is small
        f.rgb = np.broadcast_to(np.linspace(0, 255, W, dtype=np.uint8)[None, :, None], (H, W, 3)).copy()
    path = tmp_path / "bag"
    write_rgbd_bag(path, frames, storage=storage, color_encoding="png", depth_compressed=True)
    info = bag_info(path)
    assert "/camera/color/image_raw/compressed" in info.topics
    assert "/camera/aligned_depth_to_color/image_raw/compressedDepth" in info.topics
    out = list(read_rgbd_bag(path))  # topics auto-detected
    for a, b in zip(frames, out):
        np.testing.assert_array_equal(b.rgb, a.rgb)
        np.testing.assert_array_equal(b.depth, mm_to_depth(depth_to_mm(a.depth)))
    jpath = tmp_path / "jbag"
    write_rgbd_bag(jpath, frames, storage=storage, color_encoding="jpeg", depth_encoding="32FC1",
                   depth_compressed=True)
    out = list(read_rgbd_bag(jpath))
    assert len(out) == 3
    for a, b in zip(frames, out):
        assert np.abs(b.rgb.astype(int) - a.rgb).mean() < 3
        v = np.isfinite(a.depth)
        np.testing.assert_array_equal(np.isfinite(b.depth), v)
        np.testing.assert_allclose(b.depth[v], a.depth[v], rtol=0.004)


def test_padding_and_bigendian(tmp_path):
    f = _frames(1)[0]
    path = tmp_path / "bag"
    t = BagTopics()
    with RGBDBagWriter(path) as w:
        _, h, wd, step, data = encode_color(f.rgb, "rgb8")
        rows = np.frombuffer(data, np.uint8).reshape(h, step)
        padded = np.concatenate([rows, np.zeros((h, 8), np.uint8)], axis=1)
        w.write_image(t.color, f.stamp_ns, "rgb8", h, wd, step + 8, padded.tobytes())
        mm = depth_to_mm(f.depth).astype(">u2")
        pad = np.concatenate([mm.view(np.uint8).reshape(h, 2 * wd), np.zeros((h, 4), np.uint8)], axis=1)
        w.write_image(t.depth, f.stamp_ns, "16UC1", h, wd, 2 * wd + 4, pad.tobytes(), is_bigendian=1)
        w.write_image(t.color, f.stamp_ns + 10**8, "rgb8", h, wd, step, data)
        w.write_image(t.depth, f.stamp_ns + 10**8, "32FC1", h, wd, 4 * wd, f.depth.astype(">f4").tobytes(),
                      is_bigendian=1)
    out = list(read_rgbd_bag(path, BagTopics(color_info=None, depth_info=None)))
    assert len(out) == 2 and out[0].K is None
    np.testing.assert_array_equal(out[0].rgb, f.rgb)
    np.testing.assert_array_equal(out[0].depth, mm_to_depth(depth_to_mm(f.depth)))
    np.testing.assert_array_equal(out[1].depth, f.depth)


def test_missing_topic_lists_existing(tmp_path):
    path = tmp_path / "bag"
    write_rgbd_bag(path, _frames(2))
    with pytest.raises(BagError, match=r"colour topic '/nope' not in the bag(.|\n)*/camera/color/image_raw"):
        read_rgbd_bag(path, BagTopics(color="/nope"))
    with pytest.raises(BagError, match="depth topic '/camera/color/camera_info' has type"):
        read_rgbd_bag(path, BagTopics(depth="/camera/color/camera_info"))


def test_unsupported_encoding_names_topic(tmp_path):
    path = tmp_path / "bag"
    t = BagTopics()
    with RGBDBagWriter(path) as w:
        w.write_image(t.color, T0, "mono16", H, W, 2 * W, bytes(2 * W * H))
        enc, h, wd, step, data = encode_depth(np.ones((H, W), np.float32), "16UC1")
        w.write_image(t.depth, T0, enc, h, wd, step, data)
    with pytest.raises(BagError, match=r"topic '/camera/color/image_raw'.*'mono16'"):
        list(read_rgbd_bag(path))
    path2 = tmp_path / "bag2"
    with RGBDBagWriter(path2) as w:  # colour image on the depth topic
        enc, h, wd, step, data = encode_color(np.zeros((H, W, 3), np.uint8))
        w.write_image(t.color, T0, enc, h, wd, step, data)
        w.write_image(t.depth, T0, enc, h, wd, step, data)
    with pytest.raises(BagError, match=r"aligned_depth_to_color/image_raw.*expected a depth image.*rgb8"):
        list(read_rgbd_bag(path2))


def test_size_mismatch(tmp_path):
    path = tmp_path / "bag"
    t = BagTopics()
    with RGBDBagWriter(path) as w:
        enc, h, wd, step, data = encode_color(np.zeros((H, W, 3), np.uint8))
        w.write_image(t.color, T0, enc, h, wd, step, data)
        enc, h, wd, step, data = encode_depth(np.ones((6, 8), np.float32))
        w.write_image(t.depth, T0, enc, h, wd, step, data)
    with pytest.raises(BagError, match=r"colour '/camera/color/image_raw' is 16x12 but depth .* is 8x6"):
        list(read_rgbd_bag(path))


def test_truncated_and_corrupt(tmp_path):
    path = tmp_path / "bag"
    write_rgbd_bag(path, _frames(20, h=48, w=64))
    mcap = path / "bag.mcap"
    data = mcap.read_bytes()
    mcap.write_bytes(data[: len(data) // 2])
    with pytest.raises(BagError, match=r"bag.*truncated or corrupt"):
        list(read_rgbd_bag(path))
    mcap.write_bytes(data[:200] + b"\x00garbage" * 500 + data[200 + 4000:])
    with pytest.raises(BagError, match="truncated or corrupt"):
        list(read_rgbd_bag(path))
    # sqlite: a file that is not a database
    spath = tmp_path / "sbag"
    write_rgbd_bag(spath, _frames(2), storage="sqlite3")
    (spath / "sbag.db3").write_bytes(b"not a database" * 100)
    with pytest.raises(BagError, match=r"sbag.*truncated or corrupt"):
        list(read_rgbd_bag(spath))


def test_empty_and_missing(tmp_path):
    path = tmp_path / "empty"
    with RGBDBagWriter(path):
        pass
    with pytest.raises(BagError, match="empty"):
        read_rgbd_bag(path)
    path2 = tmp_path / "nodepth"
    t = BagTopics()
    with RGBDBagWriter(path2) as w:
        enc, h, wd, step, data = encode_color(np.zeros((H, W, 3), np.uint8))
        w.write_image(t.color, T0, enc, h, wd, step, data)
    with pytest.raises(BagError, match="not in the bag"):
        read_rgbd_bag(path2, BagTopics())
    with pytest.raises(BagError, match="no such bag"):
        read_rgbd_bag(tmp_path / "absent")
    (tmp_path / "plain").mkdir()
    with pytest.raises(BagError, match="no metadata.yaml"):
        read_rgbd_bag(tmp_path / "plain")
    with pytest.raises(BagError, match="no frames to write"):
        write_rgbd_bag(tmp_path / "none", [])


def test_no_pairs_within_slop(tmp_path):
    frames = _frames(3)
    for f in frames:
        f.depth_stamp_ns = f.stamp_ns + 50_000_000
    path = tmp_path / "bag"
    write_rgbd_bag(path, frames)
    with pytest.raises(BagError, match=r"no colour/depth pair within the slop of 20 ms.*unmatched colour 3"):
        list(read_rgbd_bag(path))
    assert len(list(read_rgbd_bag(path, slop_s=0.06))) == 3


def test_gap_reported_and_streaming(tmp_path):
    frames = _frames(30, h=6, w=8)
    path = tmp_path / "bag"
    t = BagTopics()
    with RGBDBagWriter(path) as w:
        for i, f in enumerate(frames):
            enc, h, wd, step, data = encode_color(f.rgb)
            w.write_image(t.color, f.stamp_ns, enc, h, wd, step, data)
            if not 10 <= i < 15:
                enc, h, wd, step, data = encode_depth(f.depth, "32FC1")
                w.write_image(t.depth, f.stamp_ns, enc, h, wd, step, data)
    reader = read_rgbd_bag(path)
    it = iter(reader)
    first = next(it)  # frames come out before the whole bag is read
    assert first.stamp_ns == frames[0].stamp_ns
    rest = list(it)
    assert 1 + len(rest) == 25
    assert reader.stats.gaps == 1 and reader.stats.unmatched_color == 5
    assert any(e.kind == "gap" and e.stream == "depth" for e in reader.events)
    assert len(list(read_rgbd_bag(path, max_frames=4))) == 4


def test_zero_header_stamps_fall_back_to_log_time(tmp_path):
    path = tmp_path / "bag"
    t = BagTopics()
    f = _frames(2)
    with RGBDBagWriter(path) as w:
        for i, fr in enumerate(f):
            enc, h, wd, step, data = encode_color(fr.rgb)
            w.write_image(t.color, 0, enc, h, wd, step, data, log_ns=T0 + i * 10**8)
            enc, h, wd, step, data = encode_depth(fr.depth)
            w.write_image(t.depth, 0, enc, h, wd, step, data, log_ns=T0 + i * 10**8 + 1000)
    reader = read_rgbd_bag(path)
    out = list(reader)
    assert [o.stamp_ns for o in out] == [T0, T0 + 10**8]
    assert any("stamps of 0" in w for w in reader.warnings)


def test_camera_info_size_mismatch_warns(tmp_path):
    path = tmp_path / "bag"
    f = _frames(1)[0]
    t = BagTopics()
    with RGBDBagWriter(path) as w:
        w.write_camera_info(t.color_info, f.stamp_ns, K, 640, 480)
        enc, h, wd, step, data = encode_color(f.rgb)
        w.write_image(t.color, f.stamp_ns, enc, h, wd, step, data)
        enc, h, wd, step, data = encode_depth(f.depth)
        w.write_image(t.depth, f.stamp_ns, enc, h, wd, step, data)
    reader = read_rgbd_bag(path)
    out = list(reader)
    assert out[0].K is None and any("640x480" in w for w in reader.warnings)


def test_writer_refuses_to_clobber(tmp_path):
    path = tmp_path / "bag"
    write_rgbd_bag(path, _frames(1))
    with pytest.raises(BagError, match="already exists"):
        write_rgbd_bag(path, _frames(1))
    write_rgbd_bag(path, _frames(2), overwrite=True, compression="zstd")
    assert len(list(read_rgbd_bag(path))) == 2
    (tmp_path / "notabag").mkdir()
    (tmp_path / "notabag" / "precious.txt").write_text("x")
    with pytest.raises(BagError, match="not a bag directory"):
        write_rgbd_bag(tmp_path / "notabag", _frames(1), overwrite=True)


def test_ros1_bag(tmp_path):
    from rosbags.rosbag1 import Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS1_NOETIC)
    Img = ts.types["sensor_msgs/msg/Image"]
    Hdr, Time = ts.types["std_msgs/msg/Header"], ts.types["builtin_interfaces/msg/Time"]
    frames = _frames(3)
    t = BagTopics()
    with Writer(tmp_path / "r1.bag") as w:
        cc = w.add_connection(t.color, Img.__msgtype__, typestore=ts)
        cd = w.add_connection(t.depth, Img.__msgtype__, typestore=ts)
        for i, f in enumerate(frames):
            h = Hdr(seq=i, stamp=Time(sec=f.stamp_ns // 10**9, nanosec=f.stamp_ns % 10**9), frame_id="cam")
            enc, hh, ww, step, data = encode_color(f.rgb, "bgr8")
            w.write(cc, f.stamp_ns, ts.serialize_ros1(Img(header=h, height=hh, width=ww, encoding=enc,
                                                          is_bigendian=0, step=step,
                                                          data=np.frombuffer(data, np.uint8)), Img.__msgtype__))
            enc, hh, ww, step, data = encode_depth(f.depth, "16UC1")
            w.write(cd, f.stamp_ns, ts.serialize_ros1(Img(header=h, height=hh, width=ww, encoding=enc,
                                                          is_bigendian=0, step=step,
                                                          data=np.frombuffer(data, np.uint8)), Img.__msgtype__))
    assert bag_info(tmp_path / "r1.bag").storage == "rosbag1"
    out = list(read_rgbd_bag(tmp_path / "r1.bag"))
    assert len(out) == 3 and out[0].frame_id == "cam"
    np.testing.assert_array_equal(out[2].rgb, frames[2].rgb)
    np.testing.assert_array_equal(out[2].depth, mm_to_depth(depth_to_mm(frames[2].depth)))
