"""Sensor image encodings and depth units: the one place in the project that knows them.

ROS-free: every function works on the raw fields of a ``sensor_msgs/Image`` (``encoding``, ``height``,
``width``, ``step``, ``is_bigendian``, ``data``) or ``sensor_msgs/CompressedImage`` (``format``, ``data``),
so the bag reader, the folder importers and the ROS node share it.

Conventions (REP 118 / REP 117):

* Colour is returned as ``uint8 (H, W, 3)`` **RGB** whatever the input (bgr/rgba/bgra are reordered and
  alpha is dropped; mono8 is replicated to three channels).
* Depth is returned as ``float32 (H, W)`` **metres** with ``NaN`` for every invalid pixel:
  ``16UC1`` is millimetres with 0 = invalid; ``32FC1`` is metres where NaN, +-inf and values <= 0 are
  invalid.
* Row padding (``step`` > width * bytes per pixel) and ``is_bigendian`` are honoured.
* ``compressedDepth`` (image_transport_plugins' format): a 12-byte header (int32 format, float32
  depthQuantA, float32 depthQuantB, little endian) followed by a 16-bit PNG. For ``16UC1`` the PNG holds
  millimetres; for ``32FC1`` it holds quantised inverse depth ``q = A / d + B`` (0 = invalid), decoded as
  ``d = A / (q - B)``.

Everything that cannot be decoded raises :class:`EncodingError` (a ``ValueError``) naming the encoding and
the size problem.
"""
from __future__ import annotations

import io
import struct

import numpy as np

# encoding -> (numpy dtype of one channel, channels, kind)
_COLOR: dict[str, int] = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}
_DEPTH: dict[str, str] = {"16UC1": "u2", "32FC1": "f4"}
# Aliases some drivers publish for the same layouts (all lower case -> canonical).
_ALIASES = {"8uc1": "mono8", "8uc3": "bgr8", "16uc1": "16UC1", "32fc1": "32FC1",
            "type_16uc1": "16UC1", "type_32fc1": "32FC1"}

COLOR_ENCODINGS = tuple(_COLOR)
DEPTH_ENCODINGS = tuple(_DEPTH)

# 16UC1 can hold 1 mm .. 65.535 m.
MAX_DEPTH_16UC1_M = 65.535

# compressedDepth header: enum compressionFormat (int32; INV_DEPTH = 0) + float depthParam[2].
_CDEPTH_HEADER = struct.Struct("<iff")
CDEPTH_HEADER_SIZE = _CDEPTH_HEADER.size  # 12


class EncodingError(ValueError):
    """An image cannot be decoded or encoded; the message names the encoding and the problem."""


def canonical_encoding(encoding: str) -> str:
    """Map the spellings drivers use to our canonical names (``8UC3`` -> ``bgr8``, ``16uc1`` -> ``16UC1``)."""
    e = encoding.strip()
    if e in _COLOR or e in _DEPTH:
        return e
    return _ALIASES.get(e.lower(), e)


def encoding_kind(encoding: str) -> str:
    """``"color"``, ``"depth"`` or ``"unsupported"``."""
    e = canonical_encoding(encoding)
    if e in _COLOR:
        return "color"
    if e in _DEPTH:
        return "depth"
    return "unsupported"


def _bytes_per_pixel(encoding: str) -> int:
    if encoding in _COLOR:
        return _COLOR[encoding]
    return int(_DEPTH[encoding][1])


def _rows(encoding: str, height: int, width: int, step: int, data, bpp: int) -> np.ndarray:
    """Raw bytes -> uint8 (H, width*bpp) view without the row padding; checks every size."""
    if height <= 0 or width <= 0:
        raise EncodingError(f"{encoding}: image size {width}x{height} must be positive")
    row = width * bpp
    if step < row:
        raise EncodingError(
            f"{encoding}: step {step} is smaller than width*bytes_per_pixel = {width}*{bpp} = {row}")
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size != step * height:
        raise EncodingError(
            f"{encoding}: data has {buf.size} bytes but step*height = {step}*{height} = {step * height} "
            f"(image {width}x{height}); truncated or wrong size")
    return buf.reshape(height, step)[:, :row]


def decode_image(encoding: str, height: int, width: int, step: int, is_bigendian: bool | int,
                 data: bytes | memoryview) -> np.ndarray:
    """Decode a raw ``sensor_msgs/Image``: colour -> uint8 (H, W, 3) RGB; depth -> float32 (H, W) metres."""
    enc = canonical_encoding(encoding)
    if enc not in _COLOR and enc not in _DEPTH:
        raise EncodingError(
            f"unsupported image encoding {encoding!r}; supported colour: {', '.join(COLOR_ENCODINGS)}; "
            f"depth: {', '.join(DEPTH_ENCODINGS)}")
    height, width, step = int(height), int(width), int(step)
    bpp = _bytes_per_pixel(enc)
    rows = _rows(enc, height, width, step, data, bpp)
    if enc in _COLOR:
        px = rows.reshape(height, width, bpp)
        if enc == "rgb8":
            return px.copy()  # own, writable memory (the message buffer may be read-only or reused)
        if enc == "bgr8" or enc == "bgra8":
            return np.ascontiguousarray(px[..., 2::-1])
        if enc == "rgba8":
            return np.ascontiguousarray(px[..., :3])
        return np.repeat(px, 3, axis=2)  # mono8
    order = ">" if is_bigendian else "<"
    raw = np.ascontiguousarray(rows).view(order + _DEPTH[enc]).reshape(height, width)
    if enc == "16UC1":
        return depth_from_raw(raw, 1000.0)
    out = raw.astype(np.float32)
    out[~(np.isfinite(out) & (out > 0))] = np.nan
    return out


def _check_kind(encoding: str, want: str) -> None:
    kind = encoding_kind(encoding)
    if kind == "unsupported":
        return  # decode_image raises the detailed message
    if kind != want:
        other = ", ".join(DEPTH_ENCODINGS if want == "depth" else COLOR_ENCODINGS)
        raise EncodingError(f"expected a {want} image ({other}) but got encoding {encoding!r} ({kind})")


def decode_color(encoding: str, height: int, width: int, step: int, is_bigendian: bool | int,
                 data: bytes | memoryview) -> np.ndarray:
    """Like :func:`decode_image` but the encoding must be a colour one (-> uint8 (H, W, 3) RGB)."""
    _check_kind(encoding, "color")
    return decode_image(encoding, height, width, step, is_bigendian, data)


def decode_depth(encoding: str, height: int, width: int, step: int, is_bigendian: bool | int,
                 data: bytes | memoryview) -> np.ndarray:
    """Like :func:`decode_image` but the encoding must be a depth one (-> float32 (H, W) m, NaN invalid)."""
    _check_kind(encoding, "depth")
    return decode_image(encoding, height, width, step, is_bigendian, data)


# ----------------------------------------------------------------------------------------------------
# Encoding raw images (what the bag writer and the ROS node publish).


def encode_color(rgb: np.ndarray, encoding: str = "rgb8") -> tuple[str, int, int, int, bytes]:
    """uint8 (H, W, 3) RGB -> ``(encoding, height, width, step, data)`` of a raw Image (no row padding)."""
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise EncodingError(f"{encoding}: colour must be uint8 (H, W, 3), got {rgb.dtype} {rgb.shape}")
    enc = canonical_encoding(encoding)
    h, w = rgb.shape[:2]
    if enc == "rgb8":
        px = rgb
    elif enc == "bgr8":
        px = rgb[..., ::-1]
    elif enc in ("rgba8", "bgra8"):
        px = np.empty((h, w, 4), np.uint8)
        px[..., :3] = rgb if enc == "rgba8" else rgb[..., ::-1]
        px[..., 3] = 255
    elif enc == "mono8":
        # ITU-R BT.601 luma, the usual grey conversion.
        px = np.round(rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))
        px = px.clip(0, 255).astype(np.uint8)[..., None]
    else:
        raise EncodingError(f"cannot encode colour as {encoding!r}; supported: {', '.join(COLOR_ENCODINGS)}")
    data = np.ascontiguousarray(px).tobytes()
    return enc, h, w, w * px.shape[2], data


# Integer depth units per metre of the formats we know (PNG folders, 16UC1).
UNITS_PER_METRE = {"mm": 1000.0, "millimetre": 1000.0, "millimeter": 1000.0, "cm": 100.0, "m": 1.0,
                   "tum": 5000.0}


def depth_from_raw(raw: np.ndarray, units_per_metre: float) -> np.ndarray:
    """Integer depth (e.g. uint16 PNG; 0 = invalid) in 1/units_per_metre metres -> float32 metres, NaN invalid.

    ``units_per_metre``: 1000 for millimetres (16UC1, RealSense, real-rgbd folders), 5000 for TUM RGB-D.
    """
    if not units_per_metre > 0:
        raise EncodingError(f"depth scale must be positive units per metre, got {units_per_metre}")
    raw = np.asarray(raw)
    out = raw.astype(np.float32) / np.float32(units_per_metre)
    out[raw == 0] = np.nan
    return out


def depth_to_raw(depth_m: np.ndarray, units_per_metre: float) -> np.ndarray:
    """float metres -> uint16 in 1/units_per_metre metres: rounded; invalid or out of range -> 0."""
    d = np.asarray(depth_m, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        r = np.round(d * float(units_per_metre))
    # A depth that rounds to 0 would read back as "invalid"; one beyond 65535 units cannot be stored.
    valid = np.isfinite(r) & (r >= 1) & (r <= 65535)
    out = np.zeros(d.shape, np.uint16)
    out[valid] = r[valid].astype(np.uint16)
    return out


def depth_to_mm(depth_m: np.ndarray) -> np.ndarray:
    """float metres -> uint16 millimetres (REP 118 16UC1): rounded; invalid or out of range -> 0."""
    return depth_to_raw(depth_m, 1000.0)


def mm_to_depth(mm: np.ndarray) -> np.ndarray:
    """uint16 millimetres (0 = invalid) -> float32 metres (NaN = invalid)."""
    return depth_from_raw(mm, 1000.0)


def encode_depth(depth_m: np.ndarray, encoding: str = "32FC1") -> tuple[str, int, int, int, bytes]:
    """float (H, W) metres -> ``(encoding, height, width, step, data)`` of a raw little-endian Image.

    ``32FC1``: metres, invalid = NaN. ``16UC1``: millimetres rounded, invalid or > 65.535 m = 0.
    """
    d = np.asarray(depth_m)
    if d.ndim != 2 or not np.issubdtype(d.dtype, np.floating):
        raise EncodingError(f"{encoding}: depth must be float (H, W) metres, got {d.dtype} {d.shape}")
    enc = canonical_encoding(encoding)
    h, w = d.shape
    if enc == "32FC1":
        out = d.astype("<f4")
        out[~(np.isfinite(out) & (out > 0))] = np.nan
        return enc, h, w, 4 * w, out.tobytes()
    if enc == "16UC1":
        return enc, h, w, 2 * w, depth_to_mm(d).astype("<u2").tobytes()
    raise EncodingError(f"cannot encode depth as {encoding!r}; supported: {', '.join(DEPTH_ENCODINGS)}")


# ----------------------------------------------------------------------------------------------------
# Compressed images (sensor_msgs/CompressedImage).


def _pil():
    try:
        from PIL import Image
    except ImportError as e:  # pillow is a core dependency; this only helps a broken install
        raise EncodingError("decoding compressed images needs pillow (pip install pillow)") from e
    return Image


def _compressed_codec(fmt: str) -> str:
    f = fmt.lower()
    if "jpeg" in f or "jpg" in f:
        return "jpeg"
    if "png" in f:
        return "png"
    raise EncodingError(f"unsupported CompressedImage format {fmt!r}; supported: jpeg, png")


def decode_compressed_color(format: str, data: bytes | memoryview) -> np.ndarray:
    """``CompressedImage`` colour (jpeg or png; format strings like ``"jpeg"`` or ``"rgb8; jpeg compressed
    bgr8"``) -> uint8 (H, W, 3) RGB."""
    if "compresseddepth" in format.lower():
        raise EncodingError(f"CompressedImage format {format!r} is a depth format, expected colour "
                            "(jpeg/png)")
    _compressed_codec(format)
    Image = _pil()
    try:
        im = Image.open(io.BytesIO(bytes(data)))
        im.load()
    except Exception as e:  # PIL raises several types for corrupt data
        raise EncodingError(f"CompressedImage ({format!r}): cannot decode {len(data)} bytes: {e}") from e
    if im.mode in ("I;16", "I;16B", "I", "F"):
        raise EncodingError(f"CompressedImage ({format!r}) holds a {im.mode} image, expected 8-bit colour")
    return np.array(im.convert("RGB"), dtype=np.uint8)


def encode_compressed_color(rgb: np.ndarray, codec: str = "jpeg", quality: int = 95) -> tuple[str, bytes]:
    """uint8 (H, W, 3) RGB -> ``(format, data)`` as image_transport's compressed plugin writes it."""
    Image = _pil()
    buf = io.BytesIO()
    im = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB")
    if codec == "jpeg":
        im.save(buf, format="JPEG", quality=quality)
    elif codec == "png":
        im.save(buf, format="PNG")
    else:
        raise EncodingError(f"cannot compress colour as {codec!r}; supported: jpeg, png")
    return f"rgb8; {codec} compressed bgr8", buf.getvalue()


def _png_to_uint16(fmt: str, png: bytes) -> np.ndarray:
    Image = _pil()
    try:
        im = Image.open(io.BytesIO(png))
        im.load()
    except Exception as e:
        raise EncodingError(f"compressedDepth ({fmt!r}): cannot decode the PNG payload "
                            f"({len(png)} bytes): {e}") from e
    arr = np.asarray(im)
    if arr.ndim != 2:
        raise EncodingError(f"compressedDepth ({fmt!r}): PNG has shape {arr.shape}, expected one channel")
    return arr.astype(np.uint16)


def decode_compressed_depth(format: str, data: bytes | memoryview) -> np.ndarray:
    """``CompressedImage`` in the ``compressedDepth`` format -> float32 (H, W) metres (NaN = invalid).

    ``format`` looks like ``"16UC1; compressedDepth png"`` (or the older ``"16UC1; compressedDepth"``).
    """
    parts = [p.strip() for p in format.split(";")]
    enc = canonical_encoding(parts[0]) if parts else ""
    rest = " ".join(parts[1:]).lower()
    if "compresseddepth" not in rest:
        raise EncodingError(f"CompressedImage format {format!r} is not compressedDepth "
                            f"(expected e.g. '16UC1; compressedDepth png')")
    if "rvl" in rest:
        raise EncodingError(f"compressedDepth format {format!r}: RVL compression is not supported, only png")
    data = bytes(data)
    if len(data) <= CDEPTH_HEADER_SIZE:
        raise EncodingError(f"compressedDepth ({format!r}): {len(data)} bytes is shorter than the "
                            f"{CDEPTH_HEADER_SIZE}-byte header plus a PNG")
    _fmt_id, quant_a, quant_b = _CDEPTH_HEADER.unpack_from(data)
    q = _png_to_uint16(format, data[CDEPTH_HEADER_SIZE:])
    if enc == "16UC1":
        return mm_to_depth(q)
    if enc == "32FC1":
        out = np.full(q.shape, np.nan, np.float32)
        nz = q != 0
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.float32(quant_a) / (q[nz].astype(np.float32) - np.float32(quant_b))
        d[~(np.isfinite(d) & (d > 0))] = np.nan
        out[nz] = d
        return out
    raise EncodingError(f"compressedDepth format {format!r}: unsupported depth encoding {parts[0]!r}; "
                        f"supported: {', '.join(DEPTH_ENCODINGS)}")


def encode_compressed_depth(depth_m: np.ndarray, encoding: str = "16UC1", depth_max_m: float = 10.0,
                            depth_quantization: float = 100.0) -> tuple[str, bytes]:
    """float (H, W) metres -> ``(format, data)`` in the compressedDepth png format (the plugin's defaults:
    depth_max 10 m, depth_quantization 100). Depth beyond ``depth_max_m`` becomes invalid, as there."""
    Image = _pil()
    d = np.asarray(depth_m, dtype=np.float32)
    enc = canonical_encoding(encoding)
    valid = np.isfinite(d) & (d > 0) & (d <= depth_max_m)
    if enc == "16UC1":
        q = depth_to_mm(np.where(valid, d, np.nan))
        header = _CDEPTH_HEADER.pack(0, 0.0, 0.0)
    elif enc == "32FC1":
        quant_a = np.float32(depth_quantization * (depth_quantization + 1.0))
        quant_b = np.float32(1.0 - quant_a / depth_max_m)
        q = np.zeros(d.shape, np.uint16)
        with np.errstate(divide="ignore"):
            qv = quant_a / d[valid] + quant_b
        q[valid] = np.clip(np.round(qv), 1, 65535).astype(np.uint16)
        header = _CDEPTH_HEADER.pack(0, float(quant_a), float(quant_b))
    else:
        raise EncodingError(f"cannot compress depth as {encoding!r}; supported: {', '.join(DEPTH_ENCODINGS)}")
    buf = io.BytesIO()
    Image.fromarray(q).save(buf, format="PNG")
    return f"{enc}; compressedDepth png", header + buf.getvalue()


def decode_compressed(format: str, data: bytes | memoryview, kind: str) -> np.ndarray:
    """Decode a CompressedImage expected to be ``kind`` (``"color"`` or ``"depth"``)."""
    is_depth = "compresseddepth" in format.lower()
    if kind == "depth":
        if not is_depth:
            raise EncodingError(
                f"expected a depth CompressedImage (compressedDepth) but got format {format!r}")
        return decode_compressed_depth(format, data)
    return decode_compressed_color(format, data)
