"""A training pack: the trainable frames of every training sequence, as the trainer holds them, in one file.

For a machine that has neither the recordings nor the simulator: the lent GPU, where the repository and
everything it carries must fit in 64 MiB (bench/device_train.sh). ``syncvp pack-data --config X`` reads the
config's data exactly as training would (folders, data sets, the simulator mix; at the model resolution),
keeps only frames that may train (held-out tails and validation sequences never leave this machine), and
stores colour as uint8 and depth as float16 metres (relative precision 2**-11, 0.05 %: far below any depth
error the model makes; NaN stays NaN). ``data.pack: FILE`` then trains from it instead of the sources.

Layout (``numpy.savez``, every entry a uint8 array; read with ``allow_pickle=False``)::

    meta                 a JSON document: format, model resolution, holdout_fraction, per sequence name,
                         rate_hz, fingerprint, frames (in the source), train_end, segments, source, reversible
    s<i>_rgb             LZMA of the trainable frames [0, train_end) of sequence i, uint8 (n, H, W, 3)
    s<i>_depth           LZMA of their float16 depth bits, differenced along each row (mod 2**16) and split
                         into a high-byte and a low-byte plane

LZMA and the depth transform are lossless; they are there because they make the mix of issue #12 fit the
device's 64 MiB beside the repository (39.6 MiB with numpy's deflate, 27 MiB like this).
"""
from __future__ import annotations

import json
import lzma
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .data import DataError, Sequence, trainable_end

FORMAT = "syncvp-train-pack-1"


def write_pack(seqs: list[Sequence], holdout_fraction: float, resolution: tuple[int, int],
               path: str | Path) -> dict[str, Any]:
    """Write the pack; returns its summary (sequences, frames, bytes)."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    rows = []
    for s in seqs:
        end = max(0, min(len(s), trainable_end(s, holdout_fraction)))
        if end == 0:
            continue
        segments = [(int(a), int(min(b, end))) for a, b in (s.segments or [(0, len(s))]) if min(b, end) > a]
        depth = np.asarray(s.depth[:end], np.float32)
        finite = depth[np.isfinite(depth)]
        if finite.size and float(np.abs(finite).max()) > np.finfo(np.float16).max:
            raise DataError(f"{s.name}: depth up to {float(np.abs(finite).max()):g} m does not fit float16")
        k = len(rows)
        arrays[f"s{k}_rgb"] = _lzma(np.ascontiguousarray(s.rgb[:end], np.uint8).tobytes())
        arrays[f"s{k}_depth"] = _lzma(_depth_bytes(depth.astype(np.float16)))
        rows.append({"name": s.name, "rate_hz": s.rate_hz, "fingerprint": s.fingerprint, "frames": len(s),
                     "train_end": end, "segments": segments, "source": s.source, "reversible": s.reversible})
    if not rows:
        raise DataError("nothing to pack: no sequence has a frame that may train")
    doc = {"format": FORMAT, "resolution": [int(r) for r in resolution], "holdout_fraction": holdout_fraction,
           "sequences": rows}
    arrays["meta"] = np.frombuffer(json.dumps(doc).encode(), np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)  # a pack cut short is never mistaken for a finished one
    return {"sequences": len(rows), "frames": sum(r["train_end"] for r in rows), "bytes": path.stat().st_size}


def read_pack(path: str | Path, resolution: tuple[int, int]) -> list[Sequence]:
    """The packed sequences (depth back to float32). Every frame of a packed sequence may train: its held-out
    tail was left out when packing. Raises :class:`DataError` naming the file on any defect."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"training pack {path} not found (write it with `syncvp pack-data --config ...`)")
    try:
        with np.load(path, allow_pickle=False) as z:
            doc = json.loads(z["meta"].tobytes().decode())
            if doc.get("format") != FORMAT:
                raise DataError(f"{path}: not a training pack (format {doc.get('format')!r}, want {FORMAT})")
            if tuple(doc["resolution"]) != tuple(resolution):
                raise DataError(f"{path}: packed at {doc['resolution']}, the model runs at {list(resolution)}: "
                                f"pack again with this config")
            seqs = []
            for k, r in enumerate(doc["sequences"]):
                n, (h, w) = int(r["train_end"]), doc["resolution"]
                rgb = np.frombuffer(lzma.decompress(z[f"s{k}_rgb"].tobytes()), np.uint8)
                bits = lzma.decompress(z[f"s{k}_depth"].tobytes())
                if rgb.size != n * h * w * 3 or len(bits) != n * h * w * 2:
                    raise DataError(f"{path}: sequence {r['name']}: {rgb.size} colour and {len(bits)} depth "
                                    f"bytes do not make its {n} frames of {w}x{h}")
                rgb, depth = rgb.reshape(n, h, w, 3), _depth_from_bytes(bits, (n, h, w)).astype(np.float32)
                # "+fp16": the frames are not the sources' bit for bit, so neither is the data fingerprint.
                seqs.append(Sequence(r["name"], rgb, depth, float(r["rate_hz"]), f"{r['fingerprint']}+fp16", n,
                                     [tuple(s) for s in r["segments"]], dict(r["source"]), bool(r["reversible"])))
    except DataError:
        raise
    except (OSError, KeyError, ValueError, TypeError, zipfile.BadZipFile, lzma.LZMAError) as e:
        raise DataError(f"{path}: unreadable training pack ({type(e).__name__}: {e})") from e
    return seqs


def _lzma(data: bytes) -> np.ndarray:
    return np.frombuffer(lzma.compress(data, preset=6), np.uint8)


def _depth_bytes(depth16: np.ndarray) -> bytes:
    """float16 depth -> row-differenced bits as a high-byte plane then a low-byte plane: neighbouring depths
    share their high bits, so the planes compress far better than the interleaved floats."""
    u = depth16.view(np.uint16)
    d = np.diff(u, axis=-1, prepend=np.zeros(u.shape[:-1] + (1,), np.uint16))  # wraps mod 2**16
    return (d >> 8).astype(np.uint8).tobytes() + (d & 0xFF).astype(np.uint8).tobytes()


def _depth_from_bytes(bits: bytes, shape: tuple[int, ...]) -> np.ndarray:
    planes = np.frombuffer(bits, np.uint8).reshape((2, *shape)).astype(np.uint16)
    d = (planes[0] << 8) | planes[1]
    return np.cumsum(d, axis=-1, dtype=np.uint16).view(np.float16)
