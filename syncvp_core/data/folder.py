"""RGB-D sequence folders: the ``real-rgbd`` layout and the native TUM RGB-D layout.

``real-rgbd`` (``shared/data/real-rgbd``)::

    rgb/NNNNNN.png      8-bit colour
    depth/NNNNNN.png    16-bit depth, 0 = invalid, unit from intrinsics.yaml (depth_scale_to_metres or
                        depth_unit: mm | cm | m)
    frames.csv          index, color_stamp_s, depth_stamp_s, color_file, depth_file (one row per pair;
                        the older colour_* spelling of the column names is read too)
    intrinsics.yaml     width, height, fx, fy, cx, cy for these images

TUM RGB-D (``rgbd_dataset_freiburgN_*``)::

    rgb/<stamp>.png, depth/<stamp>.png      depth: 16-bit, 5000 units per metre, 0 = invalid
    rgb.txt, depth.txt                      "timestamp filename" lines, '#' comments

TUM colour and depth are associated by timestamp with the project's one synchroniser
(:class:`~.sync.StampSynchronizer`, default slop 20 ms as in TUM's ``associate.py``); what stays unmatched
is reported. TUM folders carry no intrinsics: they come from ``--intrinsics FILE.yaml``, an
``intrinsics.yaml`` in the folder, or the published calibration of the freiburg1/2/3 cameras when the
folder name says which (scaled to the image size); otherwise K is unknown (a warning).

Every error names the file and, for text files, the line.
"""
from __future__ import annotations

import csv
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .encodings import UNITS_PER_METRE, depth_from_raw
from .frames import RGBDFrame, intrinsics_matrix
from .sync import SyncStats, synchronize

log = logging.getLogger(__name__)

TUM_UNITS_PER_METRE = 5000.0
# Published TUM RGB-D colour camera calibrations (640x480): fx, fy, cx, cy.
TUM_CALIBRATION = {
    "freiburg1": (517.3, 516.5, 318.6, 255.3),
    "freiburg2": (520.9, 521.0, 325.1, 249.7),
    "freiburg3": (535.4, 539.2, 320.1, 247.6),
}


class FolderError(ValueError):
    """A sequence folder is malformed; the message names the file (and line)."""


@dataclass
class FolderSequence:
    """A sequence folder, checked and indexed; iterate :meth:`frames` to read the images (streamed)."""

    path: Path
    layout: str  # "real-rgbd" | "tum"
    pairs: list[tuple[int, Path, int, Path]]  # (colour stamp ns, colour file, depth stamp ns, depth file)
    units_per_metre: float
    K: np.ndarray | None
    size: tuple[int, int] | None  # (H, W) declared by the intrinsics, if any
    sync_stats: SyncStats | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def rate_hz(self) -> float:
        s = np.array([p[0] for p in self.pairs], np.int64)
        d = np.diff(s)
        return float(1e9 / np.median(d)) if d.size else 0.0

    def source(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": f"folder:{self.layout}", "path": str(self.path),
                               "depth_units_per_metre": self.units_per_metre}
        if self.sync_stats is not None:
            out["sync"] = self.sync_stats.to_dict()
        if self.warnings:
            out["warnings"] = list(self.warnings)
        return out

    def frames(self, start: int = 0, stop: int | None = None) -> Iterator[RGBDFrame]:
        from PIL import Image

        K = self.K
        for cs, cf, ds, df in self.pairs[start:stop]:
            try:
                with Image.open(cf) as im:
                    rgb = np.array(im.convert("RGB"), dtype=np.uint8)
            except (OSError, ValueError) as e:
                raise FolderError(f"{cf}: cannot read colour image: {e}") from e
            try:
                with Image.open(df) as im:
                    raw = np.array(im)
            except (OSError, ValueError) as e:
                raise FolderError(f"{df}: cannot read depth image: {e}") from e
            if raw.dtype != np.uint16 or raw.ndim != 2:
                raise FolderError(f"{df}: depth must be a 16-bit single-channel PNG, got {raw.dtype} "
                                  f"{raw.shape}")
            if raw.shape != rgb.shape[:2]:
                raise FolderError(f"{df}: depth is {raw.shape[1]}x{raw.shape[0]} but colour {cf.name} is "
                                  f"{rgb.shape[1]}x{rgb.shape[0]}")
            if self.size is not None and raw.shape != self.size:
                raise FolderError(f"{cf}: image is {raw.shape[1]}x{raw.shape[0]} but the intrinsics are for "
                                  f"{self.size[1]}x{self.size[0]}")
            if K is None and self.size is None and self.layout == "tum":
                K = _tum_default_K(self.path, raw.shape)
            depth = depth_from_raw(raw, self.units_per_metre)
            yield RGBDFrame(cs, rgb, depth, None if K is None else K.copy(), ds)


def _stamp_ns(text: str, where: str) -> int:
    try:
        # Parse the decimal string exactly (a float loses nanoseconds of a Unix time in seconds).
        if "." in text:
            whole, frac = text.strip().split(".", 1)
            frac = (frac + "000000000")[:9]
            sign = -1 if whole.startswith("-") else 1
            return int(whole) * 1_000_000_000 + sign * int(frac)
        return int(text.strip()) * 1_000_000_000
    except ValueError as e:
        raise FolderError(f"{where}: cannot parse timestamp {text!r}") from e


def detect_layout(path: str | Path) -> str:
    p = Path(path)
    if not p.is_dir():
        raise FolderError(f"{p}: not a folder")
    if (p / "frames.csv").exists():
        return "real-rgbd"
    if (p / "rgb.txt").exists() and (p / "depth.txt").exists():
        return "tum"
    raise FolderError(f"{p}: unknown layout: expected frames.csv + intrinsics.yaml (real-rgbd layout) or "
                      f"rgb.txt + depth.txt (TUM RGB-D layout)")


def _line_of_key(path: Path, key: str) -> int:
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if re.match(rf"\s*{re.escape(key)}\s*:", line):
            return i
    return 0


def read_intrinsics(path: str | Path) -> tuple[np.ndarray, tuple[int, int] | None, float | None]:
    """intrinsics.yaml -> (K, (H, W) or None, depth units per metre or None if not stated)."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise FolderError(f"{path}: invalid YAML: {e}") from e
    if not isinstance(doc, dict):
        raise FolderError(f"{path}: expected a mapping with fx, fy, cx, cy")
    missing = [k for k in ("fx", "fy", "cx", "cy") if k not in doc]
    if missing:
        raise FolderError(f"{path}: missing {missing} (need fx, fy, cx, cy)")
    try:
        K = intrinsics_matrix(float(doc["fx"]), float(doc["fy"]), float(doc["cx"]), float(doc["cy"]))
    except (TypeError, ValueError) as e:
        raise FolderError(f"{path}: fx, fy, cx, cy must be numbers: {e}") from e
    size = (int(doc["height"]), int(doc["width"])) if "height" in doc and "width" in doc else None
    units = None
    if "depth_scale_to_metres" in doc:
        scale = float(doc["depth_scale_to_metres"])
        if not scale > 0:
            raise FolderError(f"{path}:{_line_of_key(path, 'depth_scale_to_metres')}: depth_scale_to_metres "
                              f"must be > 0, got {scale}")
        units = 1.0 / scale
    elif "depth_unit" in doc:
        unit = str(doc["depth_unit"]).strip().lower()
        if unit not in UNITS_PER_METRE:
            raise FolderError(f"{path}:{_line_of_key(path, 'depth_unit')}: unknown depth scale: depth_unit "
                              f"{doc['depth_unit']!r}; use one of {sorted(UNITS_PER_METRE)} or set "
                              f"depth_scale_to_metres")
        units = UNITS_PER_METRE[unit]
    return K, size, units


def _tum_default_K(path: Path, hw: tuple[int, int]) -> np.ndarray | None:
    m = re.search(r"freiburg([123])", str(path.resolve()))
    if not m:
        return None
    fx, fy, cx, cy = TUM_CALIBRATION[f"freiburg{m.group(1)}"]
    from ..imageops import scale_intrinsics

    return scale_intrinsics(intrinsics_matrix(fx, fy, cx, cy), (480, 640), hw)



def _column(name: str) -> str:
    """frames.csv column names are spelled color_*; colour_* (written before) is read as the same column."""
    name = name.strip()
    return "color" + name[len("colour"):] if name.startswith("colour_") else name

def _read_real_rgbd(p: Path, units_override: float | None, slop_s: float) -> FolderSequence:
    listing = p / "frames.csv"
    intr = p / "intrinsics.yaml"
    if not intr.exists():
        raise FolderError(f"{p}: no intrinsics.yaml (the real-rgbd layout needs fx, fy, cx, cy and the depth "
                          f"unit)")
    K, size, units = read_intrinsics(intr)
    if units_override is not None:
        units = units_override
    if units is None:
        raise FolderError(f"{intr}: unknown depth scale: add depth_unit (mm, cm, m) or depth_scale_to_metres, "
                          f"or pass --depth-scale UNITS_PER_METRE")
    n_rgb = len(list((p / "rgb").glob("*.png")))
    n_depth = len(list((p / "depth").glob("*.png")))
    if n_rgb != n_depth:
        raise FolderError(f"{p}: colour/depth count mismatch: rgb/ has {n_rgb} PNG files, depth/ has {n_depth}; "
                          f"frames.csv pairs them one to one")
    need = ["color_stamp_s", "depth_stamp_s", "color_file", "depth_file"]
    pairs: list[tuple[int, Path, int, Path]] = []
    with open(listing, newline="") as f:
        reader = csv.DictReader(f)
        columns = {_column(c) for c in reader.fieldnames or []}
        if not set(need) <= columns:
            raise FolderError(f"{listing}:1: expected columns {need}, got {reader.fieldnames}")
        for row in reader:
            line = reader.line_num
            row = {_column(k): (v or "").strip() for k, v in row.items() if k is not None}
            where = f"{listing}:{line}"
            if not row["color_file"] or not row["depth_file"] or not row["depth_stamp_s"]:
                raise FolderError(f"{where}: missing association (colour {row['color_file'] or '-'}, depth "
                                  f"{row['depth_file'] or '-'})")
            cs, ds = _stamp_ns(row["color_stamp_s"], where), _stamp_ns(row["depth_stamp_s"], where)
            cf, df = p / row["color_file"], p / row["depth_file"]
            for fpath in (cf, df):
                if not fpath.exists():
                    raise FolderError(f"{where}: file {fpath} does not exist")
            if abs(cs - ds) > slop_s * 1e9:
                raise FolderError(f"{where}: colour and depth stamps differ by {abs(cs - ds) / 1e6:.1f} ms, more "
                                  f"than the slop of {slop_s * 1e3:.0f} ms (missing association?)")
            if pairs and cs <= pairs[-1][0]:
                raise FolderError(f"{where}: non-monotonic stamps: colour stamp {row['color_stamp_s']} is not "
                                  f"after the previous row's")
            if pairs and ds <= pairs[-1][2]:
                raise FolderError(f"{where}: non-monotonic stamps: depth stamp {row['depth_stamp_s']} is not "
                                  f"after the previous row's")
            pairs.append((cs, cf, ds, df))
    if not pairs:
        raise FolderError(f"{listing}: no frames")
    if len(pairs) != n_rgb:
        log.info("%s lists %d of the %d image pairs in the folder", listing, len(pairs), n_rgb)
    return FolderSequence(p, "real-rgbd", pairs, float(units), K, size)


def _read_tum_list(path: Path) -> list[tuple[int, Path, str]]:
    out: list[tuple[int, Path, str]] = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        parts = s.split()
        where = f"{path}:{i}"
        if len(parts) < 2:
            raise FolderError(f"{where}: expected 'timestamp filename', got {s!r}")
        t = _stamp_ns(parts[0], where)
        if out and t <= out[-1][0]:
            raise FolderError(f"{where}: non-monotonic stamps: {parts[0]} is not after the previous line's")
        f = path.parent / parts[1]
        if not f.exists():
            raise FolderError(f"{where}: file {f} does not exist")
        out.append((t, f, where))
    if not out:
        raise FolderError(f"{path}: no entries (only comments or empty)")
    return out


def _read_tum(p: Path, units_override: float | None, slop_s: float, K_override: np.ndarray | None
              ) -> FolderSequence:
    colour = _read_tum_list(p / "rgb.txt")
    depth = _read_tum_list(p / "depth.txt")
    pairs_s, stats, events = synchronize([(t, (f, w)) for t, f, w in colour],
                                         [(t, (f, w)) for t, f, w in depth], slop_s=slop_s)
    if not pairs_s:
        raise FolderError(f"{p}: missing association: no colour entry of rgb.txt has a depth entry of "
                          f"depth.txt within {slop_s * 1e3:.0f} ms ({stats.summary()})")
    warnings = []
    if stats.unmatched_color or stats.unmatched_depth:
        first = next((e for e in events if e.kind == "unmatched"), None)
        warnings.append(f"{p}: association left {stats.unmatched_color} colour and {stats.unmatched_depth} "
                        f"depth frames unmatched" + (f" (first: {first.message})" if first else ""))
        log.warning(warnings[-1])
    K, size, units = None, None, None
    intr = p / "intrinsics.yaml"
    if intr.exists():
        K, size, units = read_intrinsics(intr)
    if K_override is not None:
        K, size = K_override, None
    units = units_override or units or TUM_UNITS_PER_METRE
    if K is None and _tum_default_K(p, (480, 640)) is None:
        warnings.append(f"{p}: no intrinsics (pass --intrinsics FILE.yaml); K unknown")
        log.warning(warnings[-1])
    pairs = [(x.color_stamp_ns, x.color[0], x.depth_stamp_ns, x.depth[0]) for x in pairs_s]
    return FolderSequence(p, "tum", pairs, float(units), K, size, stats, warnings)


def read_folder(path: str | Path, depth_units_per_metre: float | None = None, slop_s: float = 0.02,
                K: np.ndarray | None = None) -> FolderSequence:
    """Check and index one sequence folder (either layout). Images are read when frames are iterated."""
    p = Path(path)
    layout = detect_layout(p)
    if depth_units_per_metre is not None and not depth_units_per_metre > 0:
        raise FolderError(f"{p}: depth scale must be > 0 units per metre, got {depth_units_per_metre}")
    if layout == "real-rgbd":
        seq = _read_real_rgbd(p, depth_units_per_metre, slop_s)
        if K is not None:
            seq.K, seq.size = K, None
        return seq
    return _read_tum(p, depth_units_per_metre, slop_s, K)


def folder_to_bag(path: str | Path, out: str | Path, depth_encoding: str = "auto", storage: str = "mcap",
                  compression: str = "none", overwrite: bool = False, progress: bool = True,
                  start: int = 0, stop: int | None = None, **read_kwargs: Any) -> int:
    """Write a sequence folder as a RealSense-layout bag (see :mod:`.bag_writer`); returns frames written.

    ``depth_encoding="auto"``: 16UC1 when the folder stores millimetres (lossless), else 32FC1 metres (TUM's
    1/5000 m units do not fit millimetres exactly).
    """
    from .bag_writer import write_rgbd_bag

    seq = read_folder(path, **read_kwargs)
    if depth_encoding == "auto":
        depth_encoding = "16UC1" if seq.units_per_metre == 1000.0 else "32FC1"
    n = len(seq.pairs[start:stop])
    return write_rgbd_bag(out, seq.frames(start, stop), storage=storage, depth_encoding=depth_encoding,
                          compression=compression, overwrite=overwrite, progress=progress, total=n)
