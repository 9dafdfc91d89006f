"""Image encodings and depth units (syncvp_core.data.encodings)."""
from __future__ import annotations

import numpy as np
import pytest

from syncvp_core.data.encodings import (
    EncodingError,
    decode_color,
    decode_compressed,
    decode_compressed_color,
    decode_compressed_depth,
    decode_depth,
    decode_image,
    depth_to_mm,
    encode_color,
    encode_compressed_color,
    encode_compressed_depth,
    encode_depth,
    mm_to_depth,
)

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)


def _depth(h=5, w=7):
    d = RNG.uniform(0.3, 9.0, (h, w)).astype(np.float32)
    d[0, 0] = np.nan
    d[1, 2] = 0.0
    d[2, 3] = np.inf
    d[3, 4] = -1.0
    return d


@pytest.mark.parametrize("enc", ["rgb8", "bgr8", "rgba8", "bgra8"])
def test_color_round_trip(enc):
    e, h, w, step, data = encode_color(RGB, enc)
    assert (e, h, w) == (enc, 5, 7) and isinstance(data, bytes) and len(data) == step * h
    np.testing.assert_array_equal(decode_color(e, h, w, step, False, data), RGB)


def test_bgr_is_reordered():
    px = np.zeros((1, 1, 3), np.uint8)
    px[0, 0] = (10, 20, 30)  # B G R
    out = decode_image("bgr8", 1, 1, 3, 0, px.tobytes())
    assert out[0, 0].tolist() == [30, 20, 10]
    bgra = np.array([[[10, 20, 30, 40]]], np.uint8)
    assert decode_image("bgra8", 1, 1, 4, 0, bgra.tobytes())[0, 0].tolist() == [30, 20, 10]


def test_mono8_replicated():
    g = RNG.integers(0, 256, (4, 6), dtype=np.uint8)
    out = decode_color("mono8", 4, 6, 6, False, g.tobytes())
    assert out.shape == (4, 6, 3) and out.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], g)


def test_row_padding_honoured():
    pad = 5
    rows = np.concatenate([RGB.reshape(5, 21), np.full((5, pad), 77, np.uint8)], axis=1)
    out = decode_color("rgb8", 5, 7, 21 + pad, False, rows.tobytes())
    np.testing.assert_array_equal(out, RGB)
    mm = depth_to_mm(_depth())
    rows = np.concatenate([mm.view(np.uint8).reshape(5, 14), np.full((5, 2), 9, np.uint8)], axis=1)
    d = decode_depth("16UC1", 5, 7, 16, False, rows.tobytes())
    np.testing.assert_array_equal(d, mm_to_depth(mm))


def test_16uc1_millimetres_and_invalid():
    d = _depth()
    e, h, w, step, data = encode_depth(d, "16UC1")
    assert e == "16UC1" and step == 14
    raw = np.frombuffer(data, "<u2").reshape(h, w)
    assert raw[0, 0] == 0 and raw[1, 2] == 0 and raw[2, 3] == 0 and raw[3, 4] == 0
    assert raw[4, 4] == round(float(d[4, 4]) * 1000)
    out = decode_depth(e, h, w, step, False, data)
    assert out.dtype == np.float32
    valid = np.isfinite(d) & (d > 0)
    np.testing.assert_array_equal(np.isnan(out), ~valid)
    np.testing.assert_allclose(out[valid], d[valid], atol=0.0005 + 1e-6)


def test_16uc1_out_of_range_invalid():
    d = np.array([[70.0, 65.535, 0.0004]], np.float32)
    mm = depth_to_mm(d)
    assert mm.tolist() == [[0, 65535, 0]]


def test_32fc1_metres_nan_invalid():
    d = _depth()
    e, h, w, step, data = encode_depth(d, "32FC1")
    out = decode_depth(e, h, w, step, False, data)
    valid = np.isfinite(d) & (d > 0)
    np.testing.assert_array_equal(np.isnan(out), ~valid)
    np.testing.assert_array_equal(out[valid], d[valid])


def test_bigendian_depth():
    mm = np.array([[1, 1000, 65535]], np.uint16)
    out = decode_depth("16UC1", 1, 3, 6, True, mm.astype(">u2").tobytes())
    np.testing.assert_allclose(out, [[0.001, 1.0, 65.535]], rtol=1e-6)
    f = np.array([[1.5, 2.25]], np.float32)
    out = decode_depth("32FC1", 1, 2, 8, 1, f.astype(">f4").tobytes())
    np.testing.assert_array_equal(out, f)


def test_errors_name_encoding_and_size():
    with pytest.raises(EncodingError, match="mono16"):
        decode_image("mono16", 2, 2, 4, False, bytes(8))
    with pytest.raises(EncodingError, match="expected a depth image.*rgb8"):
        decode_depth("rgb8", 2, 2, 6, False, bytes(12))
    with pytest.raises(EncodingError, match="expected a color image.*16UC1"):
        decode_color("16UC1", 2, 2, 4, False, bytes(8))
    with pytest.raises(EncodingError, match=r"16UC1: data has 7 bytes but step\*height"):
        decode_depth("16UC1", 2, 2, 4, False, bytes(7))
    with pytest.raises(EncodingError, match="rgb8: step 5 is smaller"):
        decode_color("rgb8", 2, 2, 5, False, bytes(10))
    with pytest.raises(EncodingError, match="positive"):
        decode_color("rgb8", 0, 2, 6, False, b"")
    with pytest.raises(EncodingError):
        encode_color(RGB.astype(np.float32))
    with pytest.raises(EncodingError, match="16UC2"):
        encode_depth(_depth(), "16UC2")


def test_driver_aliases():
    px = RGB[:1, :1]
    assert decode_color("8UC3", 1, 1, 3, False, px.tobytes())[0, 0].tolist() == px[0, 0, ::-1].tolist()
    mm = np.array([[1234]], np.uint16)
    assert decode_depth("16uc1", 1, 1, 2, False, mm.tobytes())[0, 0] == pytest.approx(1.234)


@pytest.mark.parametrize("codec", ["png", "jpeg"])
def test_compressed_color(codec):
    smooth = np.zeros((16, 24, 3), np.uint8)
    smooth[..., 0] = np.arange(24, dtype=np.uint8)[None] * 10
    smooth[..., 1] = np.arange(16, dtype=np.uint8)[:, None] * 15
    smooth[..., 2] = 100
    fmt, data = encode_compressed_color(smooth, codec)
    out = decode_compressed_color(fmt, data)
    assert out.shape == smooth.shape and out.dtype == np.uint8
    if codec == "png":
        np.testing.assert_array_equal(out, smooth)
    else:
        assert np.abs(out.astype(int) - smooth).mean() < 3
    assert decode_compressed(fmt, data, "color").shape == smooth.shape


def test_compressed_depth_16uc1_exact():
    d = _depth(12, 10)
    fmt, data = encode_compressed_depth(d, "16UC1")
    assert fmt == "16UC1; compressedDepth png"
    out = decode_compressed_depth(fmt, data)
    expect = mm_to_depth(depth_to_mm(np.where(d <= 10.0, d, np.nan)))
    np.testing.assert_array_equal(out, expect)
    # the older format string without the codec name decodes too
    np.testing.assert_array_equal(decode_compressed_depth("16UC1; compressedDepth", data), expect)


def test_compressed_depth_32fc1_quantised():
    d = _depth(12, 10)
    fmt, data = encode_compressed_depth(d, "32FC1", depth_max_m=10.0, depth_quantization=100.0)
    out = decode_compressed(fmt, data, "depth")
    valid = np.isfinite(d) & (d > 0)
    np.testing.assert_array_equal(np.isnan(out), ~valid)
    # inverse-depth quantisation: the error grows with d^2 / (A); A = 10100
    err = np.abs(out[valid] - d[valid])
    assert (err <= d[valid] ** 2 / 10100 * 0.51 + 1e-5).all()


def test_compressed_errors():
    with pytest.raises(EncodingError, match="not compressedDepth"):
        decode_compressed_depth("png", b"x" * 40)
    with pytest.raises(EncodingError, match="shorter than the 12-byte header"):
        decode_compressed_depth("16UC1; compressedDepth png", b"abc")
    with pytest.raises(EncodingError, match="cannot decode the PNG"):
        decode_compressed_depth("16UC1; compressedDepth png", bytes(12) + b"garbage")
    with pytest.raises(EncodingError, match="RVL"):
        decode_compressed_depth("16UC1; compressedDepth rvl", bytes(40))
    with pytest.raises(EncodingError, match="cannot decode"):
        decode_compressed_color("jpeg", b"\xff\xd8garbage")
    with pytest.raises(EncodingError, match="unsupported CompressedImage format 'tiff'"):
        decode_compressed_color("tiff", b"1234")
    fmt, data = encode_compressed_color(RGB, "png")
    with pytest.raises(EncodingError, match="expected a depth CompressedImage"):
        decode_compressed(fmt, data, "depth")
    fmt, data = encode_compressed_depth(_depth(), "16UC1")
    with pytest.raises(EncodingError, match="depth format"):
        decode_compressed_color(fmt, data)
